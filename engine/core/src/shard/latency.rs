//! The server's own latency distributions, per shard, for `ctl shard.latency`: how long the
//! shard took to process each message, by kind, and (with the gateway) how long a message
//! took to be delivered across it. The driver measures processing (the core keeps no clock
//! but the virtual one) and hands the time in after each call; delivery is measured on the
//! core's clock, in milliseconds.
//!
//! Recording takes no lock and allocates nothing: each histogram is sized for its whole range
//! when the shard starts, and only the shard's own thread touches it.

use hdrhistogram::Histogram;
use serde_json::{json, Value};

/// What a recorded time was spent on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LatencyKind {
    /// A MESSAGE request.
    Message,
    /// An INVITE request.
    Invite,
    /// Any other request.
    Request,
    /// A response.
    Response,
    /// A message refused before any route (malformed, or a response to drop).
    Rejected,
    /// Work from another shard: a repository operation, an answer, a forwarded frame.
    Remote,
    /// An MSRP frame.
    Msrp,
    /// The gateway: a MESSAGE's arrival to its MSRP 200 (every chunk answered).
    GwSipToMsrp,
    /// The gateway: an MSRP message's arrival (whole) to the SIP 2xx of its MESSAGE.
    GwMsrpToSip,
}

impl LatencyKind {
    /// Every kind, in the order of [`Latency`]'s histograms.
    pub const ALL: [LatencyKind; 9] = [
        LatencyKind::Message,
        LatencyKind::Invite,
        LatencyKind::Request,
        LatencyKind::Response,
        LatencyKind::Rejected,
        LatencyKind::Remote,
        LatencyKind::Msrp,
        LatencyKind::GwSipToMsrp,
        LatencyKind::GwMsrpToSip,
    ];

    /// Its name in `ctl shard.latency kind=...`.
    pub fn name(self) -> &'static str {
        match self {
            LatencyKind::Message => "message",
            LatencyKind::Invite => "invite",
            LatencyKind::Request => "request",
            LatencyKind::Response => "response",
            LatencyKind::Rejected => "rejected",
            LatencyKind::Remote => "remote",
            LatencyKind::Msrp => "msrp",
            LatencyKind::GwSipToMsrp => "gw_sip_to_msrp",
            LatencyKind::GwMsrpToSip => "gw_msrp_to_sip",
        }
    }

    /// Whether it measures processing on one shard (rather than delivery across the gateway).
    pub fn is_processing(self) -> bool {
        !matches!(self, LatencyKind::GwSipToMsrp | LatencyKind::GwMsrpToSip)
    }

    /// The kind named `name`.
    pub fn named(name: &str) -> Option<LatencyKind> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }
}

/// Largest time recorded, in microseconds (an hour); anything longer counts as this.
const HIGHEST_US: u64 = 3_600_000_000;

/// One shard's histograms, in microseconds, 3 significant digits (as the load generator's).
#[derive(Debug)]
pub struct Latency {
    hists: Vec<Histogram<u64>>,
    /// The kind of the message being processed now, set by the core as it reads it.
    current: LatencyKind,
}

impl Default for Latency {
    fn default() -> Self {
        Latency {
            hists: LatencyKind::ALL
                .iter()
                .map(|_| {
                    let mut h = Histogram::new_with_bounds(1, HIGHEST_US, 3)
                        .expect("fixed bounds are valid");
                    h.auto(false);
                    h
                })
                .collect(),
            current: LatencyKind::Rejected,
        }
    }
}

impl Latency {
    /// The message now being processed is of this kind.
    pub fn set_kind(&mut self, kind: LatencyKind) {
        self.current = kind;
    }

    /// The time spent on the message just processed.
    pub fn record_processing(&mut self, ns: u64) {
        self.record_us(self.current, ns / 1000);
    }

    /// A delivery across the gateway that took `ms`.
    pub fn record_delivery(&mut self, kind: LatencyKind, ms: u64) {
        self.record_us(kind, ms.saturating_mul(1000));
    }

    fn record_us(&mut self, kind: LatencyKind, us: u64) {
        let h = &mut self.hists[kind as usize];
        h.saturating_record(us.clamp(1, HIGHEST_US));
    }

    /// The recorded values of `kinds` as `[[value_us, count], ...]` per kind name, to merge
    /// with other shards'.
    pub fn to_json(&self, kinds: &[LatencyKind]) -> Value {
        let mut m = serde_json::Map::new();
        for &k in kinds {
            let h = &self.hists[k as usize];
            let v: Vec<Value> = h
                .iter_recorded()
                .map(|r| json!([r.value_iterated_to(), r.count_at_value()]))
                .collect();
            m.insert(k.name().into(), Value::Array(v));
        }
        Value::Object(m)
    }

    /// Forgets everything recorded.
    pub fn reset(&mut self) {
        for h in &mut self.hists {
            h.reset();
        }
    }
}

/// A histogram of the `[[value_us, count], ...]` lists of every shard (and kind) in `parts`.
pub fn merge(parts: &[&Value]) -> Histogram<u64> {
    let mut h = Histogram::new_with_bounds(1, HIGHEST_US, 3).expect("fixed bounds are valid");
    for part in parts {
        for pair in part.as_array().into_iter().flatten() {
            let (Some(v), Some(n)) = (pair[0].as_u64(), pair[1].as_u64()) else {
                continue;
            };
            let _ = h.record_n(v.clamp(1, HIGHEST_US), n);
        }
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_times_come_back_by_kind_and_merge_over_shards() {
        let mut a = Latency::default();
        let mut b = Latency::default();
        a.set_kind(LatencyKind::Message);
        for ns in [5_000, 7_000, 9_000] {
            a.record_processing(ns);
        }
        b.set_kind(LatencyKind::Message);
        b.record_processing(1_000_000_000);
        b.set_kind(LatencyKind::Invite);
        b.record_processing(20_000);
        b.record_delivery(LatencyKind::GwSipToMsrp, 12);
        let kinds = [LatencyKind::Message, LatencyKind::Invite];
        let (ja, jb) = (a.to_json(&kinds), b.to_json(&kinds));
        let m = merge(&[&ja["message"], &jb["message"]]);
        assert_eq!(m.len(), 4);
        assert_eq!(m.min(), 5);
        assert!(m.max() >= 999_000 && m.max() <= 1_001_000, "{}", m.max());
        assert_eq!(merge(&[&ja["invite"], &jb["invite"]]).len(), 1);
        let d = b.to_json(&[LatencyKind::GwSipToMsrp]);
        let d = merge(&[&d["gw_sip_to_msrp"]]);
        assert!((11_990..=12_010).contains(&d.max()), "{}", d.max());
        b.reset();
        assert_eq!(merge(&[&b.to_json(&kinds)["invite"]]).len(), 0);
    }

    #[test]
    fn kinds_are_named_both_ways() {
        for k in LatencyKind::ALL {
            assert_eq!(LatencyKind::named(k.name()), Some(k));
        }
        assert_eq!(LatencyKind::named("nope"), None);
    }
}
