//! Name resolution for the gateway's requests (RFC 3263 §4.2): with a port in the URI, the
//! name's A/AAAA records; without, its `_sip._udp` SRV records in priority order, then A/AAAA
//! with 5060. hickory-resolver reads the system's configuration (`/etc/resolv.conf`, and
//! `/etc/hosts`, which is what answers on loopback in tests).
//!
//! hickory is asynchronous on tokio; a lookup runs on the executor's blocking thread (glommio's
//! `spawn_blocking`), where one small tokio runtime and one resolver live for the thread's
//! life, so a slow DNS server never stalls a shard.

use hickory_resolver::TokioResolver;
use std::cell::RefCell;
use std::net::SocketAddr;

thread_local! {
    static RESOLVER: RefCell<Option<(tokio::runtime::Runtime, TokioResolver)>> =
        const { RefCell::new(None) };
}

/// The addresses of `name` (with `port`, or as SRV says), best first; empty when it does not
/// resolve.
pub(super) fn resolve(name: &str, port: Option<u16>) -> Vec<SocketAddr> {
    RESOLVER.with(|cell| {
        let mut cell = cell.borrow_mut();
        if cell.is_none() {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    tracing::warn!("resolver: cannot start its runtime: {e}");
                    return Vec::new();
                }
            };
            let resolver = match TokioResolver::builder_tokio() {
                Ok(b) => b.build(),
                Err(e) => {
                    tracing::warn!("resolver: cannot read the system configuration: {e}");
                    return Vec::new();
                }
            };
            *cell = Some((rt, resolver));
        }
        let (rt, resolver) = cell.as_ref().expect("made above");
        rt.block_on(lookup(resolver, name, port))
    })
}

async fn lookup(resolver: &TokioResolver, name: &str, port: Option<u16>) -> Vec<SocketAddr> {
    let ips = |host: String, port: u16| async move {
        match resolver.lookup_ip(host.as_str()).await {
            Ok(l) => l.iter().map(|ip| SocketAddr::new(ip, port)).collect(),
            Err(e) => {
                tracing::debug!("resolver: {host}: {e}");
                Vec::new()
            }
        }
    };
    if let Some(port) = port {
        return ips(name.to_owned(), port).await;
    }
    let mut out = Vec::new();
    if let Ok(srv) = resolver.srv_lookup(format!("_sip._udp.{name}.")).await {
        let mut records: Vec<_> = srv.iter().cloned().collect();
        // RFC 2782: lowest priority first; weights are not drawn here, the highest first.
        records.sort_by_key(|r| (r.priority(), std::cmp::Reverse(r.weight())));
        for r in records {
            let target = r.target().to_utf8();
            out.extend(ips(target.trim_end_matches('.').to_owned(), r.port()).await);
        }
    }
    if out.is_empty() {
        out = ips(name.to_owned(), 5060).await;
    }
    out
}
