//! Value types of the config file that are more than a number or a string: byte sizes, listen
//! addresses, core lists, task-queue shares. Each parses the same from the file and from a flag.

use crate::route::Transport;
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;

/// A size in bytes: `4194304`, `"4MiB"`, `"512 KiB"`, `"1GB"`.
///
/// Units (case-insensitive): `B`; `KiB`, `MiB`, `GiB`, `TiB` (powers of 1024); `KB`, `MB`,
/// `GB`, `TB` (powers of 1000). Printed with the largest binary unit that divides it exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ByteSize(pub u64);

impl ByteSize {
    /// The number of bytes.
    pub fn bytes(self) -> u64 {
        self.0
    }

    /// `n` KiB.
    pub const fn kib(n: u64) -> ByteSize {
        ByteSize(n * 1024)
    }

    /// `n` MiB.
    pub const fn mib(n: u64) -> ByteSize {
        ByteSize(n * 1024 * 1024)
    }
}

const UNITS: &[(&str, u64)] = &[
    ("b", 1),
    ("kib", 1 << 10),
    ("mib", 1 << 20),
    ("gib", 1 << 30),
    ("tib", 1 << 40),
    ("kb", 1_000),
    ("mb", 1_000_000),
    ("gb", 1_000_000_000),
    ("tb", 1_000_000_000_000),
];

impl FromStr for ByteSize {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        let split = t
            .find(|c: char| !(c.is_ascii_digit() || c == '_'))
            .unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let num: String = num.chars().filter(|c| *c != '_').collect();
        let bad = || {
            format!(
                "`{s}` is not a size: write bytes (4194304) or a number and a unit \
                 (4MiB, 512KiB, 1GiB, 10MB)"
            )
        };
        if num.is_empty() {
            return Err(bad());
        }
        let n: u64 = num.parse().map_err(|_| bad())?;
        let unit = unit.trim().to_ascii_lowercase();
        let mult = if unit.is_empty() {
            1
        } else {
            UNITS
                .iter()
                .find(|(u, _)| *u == unit)
                .map(|(_, m)| *m)
                .ok_or_else(bad)?
        };
        n.checked_mul(mult)
            .map(ByteSize)
            .ok_or_else(|| format!("`{s}` is too large"))
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (unit, m) in [
            ("TiB", 1u64 << 40),
            ("GiB", 1 << 30),
            ("MiB", 1 << 20),
            ("KiB", 1 << 10),
        ] {
            if self.0 >= m && self.0 % m == 0 {
                return write!(f, "{}{unit}", self.0 / m);
            }
        }
        write!(f, "{}", self.0)
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0 >= 1024 && self.0 % 1024 == 0 {
            s.collect_str(self)
        } else {
            s.serialize_u64(self.0)
        }
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = ByteSize;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a size in bytes (4194304) or with a unit (\"4MiB\")")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ByteSize, E> {
                u64::try_from(v)
                    .map(ByteSize)
                    .map_err(|_| E::custom(format!("a size cannot be negative ({v})")))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ByteSize, E> {
                Ok(ByteSize(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ByteSize, E> {
                v.parse().map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// A listen address: `udp:127.0.0.1:5060`, `tcp:[::1]:5060`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Listen {
    /// Transport.
    pub transport: Transport,
    /// Local address to bind.
    pub addr: SocketAddr,
}

impl FromStr for Listen {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (t, a) = s
            .split_once(':')
            .ok_or_else(|| format!("`{s}` is not TRANSPORT:IP:PORT (like udp:127.0.0.1:5060)"))?;
        let transport = t.parse()?;
        let addr = a.parse().map_err(|_| {
            format!("`{s}`: `{a}` is not IP:PORT (like 127.0.0.1:5060 or [::1]:5060)")
        })?;
        Ok(Listen { transport, addr })
    }
}

impl fmt::Display for Listen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.transport, self.addr)
    }
}

impl Serialize for Listen {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Listen {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(de::Error::custom)
    }
}

/// CPU cores to pin shards to: `"0-3,6"`. Shard `i` runs on the `i`-th core listed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CoreList(pub Vec<usize>);

/// The highest core number accepted.
const MAX_CORE: usize = 4095;

impl FromStr for CoreList {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let mut out: Vec<usize> = Vec::new();
        let bad = |part: &str| {
            format!("`{s}`: `{part}` is not a core number or range (write like \"0-3,6\")")
        };
        for part in s.split(',') {
            let part = part.trim();
            let (lo, hi) = match part.split_once('-') {
                Some((a, b)) => (a.trim(), b.trim()),
                None => (part, part),
            };
            let lo: usize = lo.parse().map_err(|_| bad(part))?;
            let hi: usize = hi.parse().map_err(|_| bad(part))?;
            if lo > hi {
                return Err(format!("`{s}`: range `{part}` runs backwards"));
            }
            if hi > MAX_CORE {
                return Err(format!("`{s}`: core {hi} is above {MAX_CORE}"));
            }
            for c in lo..=hi {
                if out.contains(&c) {
                    return Err(format!("`{s}`: core {c} is listed twice"));
                }
                out.push(c);
            }
        }
        Ok(CoreList(out))
    }
}

impl fmt::Display for CoreList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut i = 0;
        let v = &self.0;
        while i < v.len() {
            let mut j = i;
            while j + 1 < v.len() && v[j + 1] == v[j] + 1 {
                j += 1;
            }
            if i > 0 {
                f.write_str(",")?;
            }
            if j > i {
                write!(f, "{}-{}", v[i], v[j])?;
            } else {
                write!(f, "{}", v[i])?;
            }
            i = j + 1;
        }
        Ok(())
    }
}

impl Serialize for CoreList {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for CoreList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(de::Error::custom)
    }
}

/// Task-queue shares by group, from a flag: `default=100,bulk=10`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shares(pub BTreeMap<String, u32>);

impl FromStr for Shares {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let mut out = BTreeMap::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (g, n) = part
                .split_once('=')
                .ok_or_else(|| format!("`{part}` is not GROUP=SHARES (like bulk=10)"))?;
            let n: u32 = n
                .trim()
                .parse()
                .map_err(|_| format!("`{part}`: shares must be a number"))?;
            out.insert(g.trim().to_owned(), n);
        }
        Ok(Shares(out))
    }
}
