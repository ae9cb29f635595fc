//! The `[route]` section exactly as written: serde shapes with source spans, fed to the compiler.
//!
//! Nothing here is used at run time. Every table denies unknown keys, so a misspelt key is a load
//! error at its line instead of a silently ignored setting.

use serde::de::{self, Deserializer, IntoDeserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use std::fmt;
use std::marker::PhantomData;
use toml::Spanned;

/// A TOML table read in document order, keys and values kept with their spans.
#[derive(Debug, Clone)]
pub(crate) struct OrderedMap<K, V>(pub Vec<(K, V)>);

impl<K, V> Default for OrderedMap<K, V> {
    fn default() -> Self {
        OrderedMap(Vec::new())
    }
}

impl<'de, K: Deserialize<'de>, V: Deserialize<'de>> Deserialize<'de> for OrderedMap<K, V> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V2<K, V>(PhantomData<(K, V)>);
        impl<'de, K: Deserialize<'de>, V: Deserialize<'de>> Visitor<'de> for V2<K, V> {
            type Value = OrderedMap<K, V>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a table")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = map.next_entry()? {
                    out.push((k, v));
                }
                Ok(OrderedMap(out))
            }
        }
        d.deserialize_map(V2(PhantomData))
    }
}

/// One value or an array of them: `method = "MESSAGE"` and `method = ["MESSAGE", "INVITE"]`.
#[derive(Debug, Clone)]
pub(crate) struct OneOrMany<T>(pub Vec<T>);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for OneOrMany<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V2<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V2<T> {
            type Value = OneOrMany<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a value or an array of values")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some(v) = seq.next_element()? {
                    out.push(v);
                }
                Ok(OneOrMany(out))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                T::deserialize(v.into_deserializer()).map(|v| OneOrMany(vec![v]))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                T::deserialize(v.into_deserializer()).map(|v| OneOrMany(vec![v]))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                T::deserialize(v.into_deserializer()).map(|v| OneOrMany(vec![v]))
            }
        }
        d.deserialize_any(V2(PhantomData))
    }
}

/// A string with its span.
pub(crate) type Str = Spanned<String>;

/// `[route]`: route name -> route.
pub(crate) type RawRoutes = OrderedMap<Str, Spanned<RawRoute>>;

/// `[route.NAME]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRoute {
    pub rules: Spanned<Vec<Spanned<RawRule>>>,
}

/// One rule: `{ match = {...}, actions = [...], continue = false }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRule {
    #[serde(rename = "match")]
    pub cond: Option<Spanned<RawMatch>>,
    pub actions: Spanned<Vec<Spanned<RawAction>>>,
    #[serde(rename = "continue")]
    pub cont: Option<Spanned<bool>>,
}

/// A status code (`200`) or class (`"4xx"`) in a `status` match.
#[derive(Debug, Clone)]
pub(crate) enum StatusSpec {
    Code(i64),
    Class(String),
}

impl<'de> Deserialize<'de> for StatusSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V2;
        impl<'de> Visitor<'de> for V2 {
            type Value = StatusSpec;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a status code like 404 or a class like \"4xx\"")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<StatusSpec, E> {
                Ok(StatusSpec::Code(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<StatusSpec, E> {
                Ok(StatusSpec::Class(v.to_owned()))
            }
        }
        d.deserialize_any(V2)
    }
}

/// `match = { ... }`: every present condition must hold.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMatch {
    pub method: Option<Spanned<OneOrMany<String>>>,
    pub ruri_prefix: Option<Str>,
    pub ruri_regex: Option<Str>,
    pub header_present: Option<Spanned<OneOrMany<String>>>,
    pub header_absent: Option<Spanned<OneOrMany<String>>>,
    pub header_equals: Option<OrderedMap<Str, Str>>,
    pub header_regex: Option<OrderedMap<Str, Str>>,
    pub source: Option<Spanned<OneOrMany<String>>>,
    pub transport: Option<Spanned<OneOrMany<String>>>,
    pub status: Option<Spanned<OneOrMany<StatusSpec>>>,
}

/// One action: exactly one action key, plus `on_<result>` branches.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAction {
    pub reply: Option<Spanned<RawReply>>,
    pub forward: Option<Spanned<RawForward>>,
    pub push: Option<Spanned<RawPush>>,
    pub pull: Option<Spanned<RawPull>>,
    pub async_pull: Option<Spanned<RawAsyncPull>>,
    pub rm: Option<Spanned<RawRm>>,
    pub check: Option<Spanned<RawCheck>>,
    pub set: Option<Spanned<OrderedMap<Str, Str>>>,
    pub set_header: Option<Spanned<RawSetHeader>>,
    pub remove_header: Option<Str>,
    pub route: Option<Str>,
    pub drop: Option<Spanned<bool>>,
    pub exit: Option<Spanned<bool>>,
    #[serde(rename = "return")]
    pub ret: Option<Spanned<bool>>,
    pub log: Option<Spanned<RawLog>>,
    /// `msrp_gw_answer` is the seed's name for the same action.
    #[serde(alias = "msrp_gw_answer")]
    pub msrp_answer: Option<Spanned<RawMsrpAnswer>>,
    pub msg_to_msrp: Option<Spanned<RawMsgToMsrp>>,
    pub send_message: Option<Spanned<RawSendMessage>>,

    pub on_stored: Option<Str>,
    pub on_duplicate: Option<Str>,
    pub on_retransmission: Option<Str>,
    pub on_full: Option<Str>,
    pub on_pulled: Option<Str>,
    pub on_queued: Option<Str>,
    pub on_not_found: Option<Str>,
    pub on_removed: Option<Str>,
    pub on_found: Option<Str>,
    pub on_sent: Option<Str>,
    pub on_error: Option<Str>,
    pub on_answered: Option<Str>,
    pub on_refused: Option<Str>,
    pub on_delivered: Option<Str>,
    pub on_failed: Option<Str>,
}

impl RawAction {
    /// The `on_<result>` keys that were written, as (result name, target route).
    pub fn branches(&self) -> Vec<(&'static str, &Str)> {
        let all: [(&'static str, &Option<Str>); 15] = [
            ("stored", &self.on_stored),
            ("duplicate", &self.on_duplicate),
            ("retransmission", &self.on_retransmission),
            ("full", &self.on_full),
            ("pulled", &self.on_pulled),
            ("queued", &self.on_queued),
            ("not_found", &self.on_not_found),
            ("removed", &self.on_removed),
            ("found", &self.on_found),
            ("sent", &self.on_sent),
            ("error", &self.on_error),
            ("answered", &self.on_answered),
            ("refused", &self.on_refused),
            ("delivered", &self.on_delivered),
            ("failed", &self.on_failed),
        ];
        all.into_iter()
            .filter_map(|(n, v)| v.as_ref().map(|v| (n, v)))
            .collect()
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawReply {
    pub code: Spanned<i64>,
    pub reason: Option<Str>,
    pub headers: Option<OrderedMap<Str, Str>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawForward {
    pub to: Str,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPush {
    pub msgid: Str,
    pub expire: Option<Spanned<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPull {
    pub callid: Str,
    pub msgid: Str,
    pub route: Str,
    pub remove: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAsyncPull {
    pub callid: Str,
    pub msgid: Str,
    pub group: Option<Str>,
    pub route: Str,
    pub remove: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRm {
    pub callid: Str,
    pub msgid: Str,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCheck {
    pub callid: Option<Str>,
    pub msgid: Option<Str>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSetHeader {
    pub name: Str,
    pub value: Str,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLog {
    pub level: Option<Str>,
    pub message: Str,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMsrpAnswer {
    pub key: Str,
    pub content_types: Str,
    pub from: Str,
    pub to: Str,
    pub ruri: Str,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMsgToMsrp {
    pub key: Str,
    pub content_types: Str,
    pub mode: Option<Str>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSendMessage {
    pub ruri: Str,
    pub from: Str,
    pub to: Str,
    pub body: Str,
    pub content_type: Option<Str>,
}
