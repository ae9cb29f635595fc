//! Per-shard counters and gauges, readable from any thread without locks (relaxed atomics):
//! the shard that owns them writes, the control endpoint reads and renders Prometheus text.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Upper bounds (microseconds) of the processing-time histogram buckets.
pub const PROCESSING_BUCKETS_US: [u64; 12] =
    [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 5000, 20000];

/// Parse error labels, as `sipshard_parser::sip::Error::label` gives them.
pub const PARSE_ERROR_LABELS: [&str; 13] = sipshard_parser::sip::Error::LABELS;

macro_rules! counters {
    ($($name:ident: $help:literal),* $(,)?) => {
        /// The counters of one shard.
        #[derive(Debug, Default)]
        pub struct ShardStats {
            $( #[doc = $help] pub $name: AtomicU64, )*
            /// Parse errors, indexed like [`PARSE_ERROR_LABELS`].
            pub parse_errors: [AtomicU64; PARSE_ERROR_LABELS.len()],
            /// Processing-time histogram bucket counts (last = overflow).
            pub processing_buckets: [AtomicU64; PROCESSING_BUCKETS_US.len() + 1],
            /// Sum of processing times, nanoseconds.
            pub processing_ns_sum: AtomicU64,
        }

        impl ShardStats {
            /// (name, help, value) of every plain counter.
            pub fn counters(&self) -> Vec<(&'static str, &'static str, u64)> {
                vec![$( (stringify!($name), $help, self.$name.load(Relaxed)), )*]
            }
        }
    };
}

counters! {
    received: "SIP messages received by this shard's sockets",
    received_bytes: "bytes of SIP messages received",
    forwarded_out: "messages this shard moved to their owning shard",
    forwarded_in: "messages other shards moved to this shard",
    cross_shard_ops: "operations (repository, gateway) sent to the shard owning their key, and answers",
    remote_timeouts: "route runs dropped because another shard's answer never came",
    mesh_dropped: "messages to another shard dropped because its outbox was full",
    sent: "SIP messages sent: datagrams sent, and messages queued on their TCP connection",
    send_errors: "sends that failed",
    dropped_responses: "malformed responses dropped",
    stored: "repository push: stored",
    duplicates: "repository push: duplicate key",
    retransmissions: "repository push: retransmission absorbed",
    full: "repository push: refused, repository full",
    pulled: "repository pull: pulled",
    pull_not_found: "repository pull: not found",
    async_queued: "repository async_pull: queued",
    removed: "repository rm: removed",
    expired: "repository items expired",
    items: "repository items stored now (gauge)",
    bytes: "repository bytes stored now (gauge)",
    tcp_connections: "open TCP connections (gauge)",
    tcp_framing_errors: "TCP connections closed for framing errors",
    tcp_message_timeouts: "TCP connections closed because a message did not arrive whole in time",
    connections_refused: "TCP and MSRP connections closed at once: max_connections reached",
    gw_sessions: "gateway sessions on this shard now (gauge)",
    gw_queued: "gateway messages queued for a session being set up, now (gauge)",
    gw_sessions_created: "gateway sessions created",
    gw_sessions_ended: "gateway sessions ended",
    gw_setup_failed: "gateway sessions that could not be set up",
    gw_sip_to_msrp: "SIP MESSAGEs taken for an MSRP session",
    gw_msrp_to_sip: "MSRP messages sent on as SIP MESSAGEs",
    gw_delivered: "messages whose far side confirmed them (MSRP 200 or SIP 2xx)",
    gw_failed: "messages that failed (error, timeout, session ended)",
    gw_queue_full: "MESSAGEs refused because their session's queue was full",
    msrp_connections: "open MSRP connections (gauge)",
    msrp_frames_in: "MSRP frames received",
    msrp_frames_out: "MSRP frames sent",
    msrp_errors: "MSRP frames refused or connections closed for framing errors",
    sip_transactions: "SIP transactions alive now (gauge)",
}

impl ShardStats {
    /// Counts one parse error by its label.
    pub fn parse_error(&self, label: &str) {
        if let Some(i) = PARSE_ERROR_LABELS.iter().position(|l| *l == label) {
            self.parse_errors[i].fetch_add(1, Relaxed);
        }
    }

    /// Records the time one message took to process.
    pub fn processing(&self, ns: u64) {
        let us = ns / 1000;
        let i = PROCESSING_BUCKETS_US
            .iter()
            .position(|&b| us <= b)
            .unwrap_or(PROCESSING_BUCKETS_US.len());
        self.processing_buckets[i].fetch_add(1, Relaxed);
        self.processing_ns_sum.fetch_add(ns, Relaxed);
    }

    /// Total parse errors.
    pub fn parse_errors_total(&self) -> u64 {
        self.parse_errors.iter().map(|c| c.load(Relaxed)).sum()
    }
}

/// The process's own metrics: its build (`sipshard_build_info`, always 1, the version in a
/// label, so a dashboard can join on it) and when it started (`process_start_time_seconds`,
/// as Prometheus client libraries name it, so restarts show).
pub fn render_process(start_unix_s: f64) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# HELP sipshard_build_info the running build (always 1)\n\
         # TYPE sipshard_build_info gauge\n\
         sipshard_build_info{{version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    );
    let _ = writeln!(
        out,
        "# HELP process_start_time_seconds when the process started, seconds since the Unix epoch\n\
         # TYPE process_start_time_seconds gauge\n\
         process_start_time_seconds {start_unix_s:.3}"
    );
    out
}

/// Renders every shard's counters in the Prometheus text exposition format.
pub fn render_prometheus(shards: &[std::sync::Arc<ShardStats>]) -> String {
    let mut out = String::new();
    let Some(first) = shards.first() else {
        return out;
    };
    for (i, (name, help, _)) in first.counters().into_iter().enumerate() {
        // Gauges say so in their help text; the rest only ever grow.
        let gauge = help.ends_with("(gauge)");
        // The repository's own say so in their names, as its gauges do.
        let repo = help.starts_with("repository");
        let metric = match (gauge, repo) {
            (true, true) => format!("sipshard_repo_{name}"),
            (true, false) => format!("sipshard_{name}"),
            (false, true) => format!("sipshard_repo_{name}_total"),
            (false, false) => format!("sipshard_{name}_total"),
        };
        let _ = writeln!(out, "# HELP {metric} {help}");
        let _ = writeln!(
            out,
            "# TYPE {metric} {}",
            if gauge { "gauge" } else { "counter" }
        );
        for (s, st) in shards.iter().enumerate() {
            let _ = writeln!(out, "{metric}{{shard=\"{s}\"}} {}", st.counters()[i].2);
        }
    }
    let _ = writeln!(
        out,
        "# HELP sipshard_parse_errors_total SIP parse errors by reason"
    );
    let _ = writeln!(out, "# TYPE sipshard_parse_errors_total counter");
    for (s, st) in shards.iter().enumerate() {
        for (i, label) in PARSE_ERROR_LABELS.iter().enumerate() {
            let _ = writeln!(
                out,
                "sipshard_parse_errors_total{{shard=\"{s}\",reason=\"{label}\"}} {}",
                st.parse_errors[i].load(Relaxed)
            );
        }
    }
    let _ = writeln!(
        out,
        "# HELP sipshard_processing_seconds time to process one message"
    );
    let _ = writeln!(out, "# TYPE sipshard_processing_seconds histogram");
    for (s, st) in shards.iter().enumerate() {
        let mut cum = 0;
        for (i, b) in PROCESSING_BUCKETS_US.iter().enumerate() {
            cum += st.processing_buckets[i].load(Relaxed);
            let _ = writeln!(
                out,
                "sipshard_processing_seconds_bucket{{shard=\"{s}\",le=\"{}\"}} {cum}",
                *b as f64 / 1e6
            );
        }
        cum += st.processing_buckets[PROCESSING_BUCKETS_US.len()].load(Relaxed);
        let _ = writeln!(
            out,
            "sipshard_processing_seconds_bucket{{shard=\"{s}\",le=\"+Inf\"}} {cum}"
        );
        let _ = writeln!(
            out,
            "sipshard_processing_seconds_sum{{shard=\"{s}\"}} {}",
            st.processing_ns_sum.load(Relaxed) as f64 / 1e9
        );
        let _ = writeln!(
            out,
            "sipshard_processing_seconds_count{{shard=\"{s}\"}} {cum}"
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn renders_every_shard() {
        let a = Arc::new(ShardStats::default());
        let b = Arc::new(ShardStats::default());
        a.stored.fetch_add(3, Relaxed);
        b.items.store(7, Relaxed);
        a.parse_error("version");
        a.processing(3_000);
        let text = render_prometheus(&[a, b]);
        assert!(text.contains("sipshard_repo_stored_total{shard=\"0\"} 3"));
        assert!(text.contains("sipshard_repo_items{shard=\"1\"} 7"));
        assert!(text.contains("sipshard_parse_errors_total{shard=\"0\",reason=\"version\"} 1"));
        assert!(text.contains("sipshard_processing_seconds_count{shard=\"0\"} 1"));
        assert!(text.contains("# TYPE sipshard_repo_items gauge"));
    }
}
