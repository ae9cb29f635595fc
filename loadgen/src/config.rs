//! Command line and run configuration.
//!
//! This module exists so that everything a run depends on is decided once, up front, from the
//! flags: `RunArgs` is what clap reads, [`Config`] is the checked, typed result the engine uses
//! (durations parsed, the target resolved, the template loaded and validated). Tests build a
//! [`Config`] the same way the binary does, from a list of flags.

use crate::scenario::{ScenarioKind, Template, TriggerMethod};
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

/// A problem with the flags, said so the operator can fix the command line.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A flag's value could not be read.
    #[error("--{flag}: {reason}")]
    Invalid {
        /// The flag, without dashes.
        flag: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The target did not resolve.
    #[error("target {0}: cannot resolve to an address")]
    Target(String),
    /// The template file could not be read or is not a valid SIP request.
    #[error("--template {path}: {reason}")]
    Template {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

fn invalid(flag: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        flag,
        reason: reason.into(),
    }
}

/// `sipshard-load`: open-loop SIP load generator with HdrHistogram latency reports.
#[derive(Debug, Parser)]
#[command(
    name = "sipshard-load",
    version,
    about,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
pub struct Cli {
    /// Something other than a load run.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// The load run (the default when no subcommand is given).
    #[command(flatten)]
    pub run: RunArgs,
}

/// Subcommands besides the load run.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Lay several runs (their --out directories) and .hgrm files side by side: a table and
    /// one SVG.
    Report(ReportArgs),
    /// A minimal SIP responder (UDP and TCP on one port) that imitates sipshard's answers, for
    /// trying the load generator itself; not a server.
    Responder(ResponderArgs),
}

/// Flags of `sipshard-load report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Run directories written by `--out` (each holds summary.json), and `.hgrm` files (HdrHistogram
    /// percentile distributions, e.g. from `sipshard ctl shard.latency`), each one series named
    /// after its file stem.
    #[arg(required = true, value_name = "RUN_DIR|FILE.hgrm")]
    pub runs: Vec<PathBuf>,
    /// Where to write the overlaid percentile spectrum.
    #[arg(long, default_value = "compare.svg")]
    pub svg: PathBuf,
    /// Only this latency of the run directories (e.g. `park`; .hgrm files are always shown);
    /// one that no run has is refused, naming those they have. Default: every latency.
    #[arg(long)]
    pub metric: Option<String>,
}

/// Flags of `sipshard-load responder`.
#[derive(Debug, Args)]
pub struct ResponderArgs {
    /// Address to listen on, UDP and TCP (the same port).
    #[arg(long, default_value = "127.0.0.1:5060")]
    pub listen: SocketAddr,
    /// Park MESSAGEs (202 + X-Repo-Msgid) instead of answering them 200.
    #[arg(long)]
    pub park: bool,
    /// With --park: answer parked MESSAGEs 408 after this long (e.g. 2s).
    #[arg(long, value_parser = parse_duration)]
    pub expire: Option<Duration>,
}

/// Transport for the load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// SIP over UDP, batched with sendmmsg/recvmmsg.
    Udp,
    /// SIP over TCP, one stream per connection.
    Tcp,
}

impl Transport {
    /// The Via transport token.
    pub fn via_token(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
        }
    }
}

/// Flags of a load run.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// The server, HOST:PORT.
    #[arg(default_value = "127.0.0.1:5060")]
    pub target: String,
    /// What each call does.
    #[arg(long, value_enum, default_value_t = ScenarioKind::Options)]
    pub scenario: ScenarioKind,
    /// udp or tcp.
    #[arg(long, value_enum, default_value_t = Transport::Udp)]
    pub transport: Transport,
    /// Calls started per second, on a fixed schedule (`5000`, `5000/s`, `20k`).
    #[arg(long, default_value = "1000", value_parser = parse_rate)]
    pub rate: f64,
    /// How long to offer load after the warmup (default 10s unless --requests is given).
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Stop after this many calls (warmup calls not included).
    #[arg(long)]
    pub requests: Option<u64>,
    /// Load offered before measuring starts; its replies are not recorded.
    #[arg(long, default_value = "0s", value_parser = parse_duration)]
    pub warmup: Duration,
    /// A request unanswered this long counts as a timeout.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Sender/receiver threads.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Pin thread i to the i-th core of this list (`0-3`, `0,2,4`); unpinned by default.
    #[arg(long)]
    pub cores: Option<String>,
    /// UDP sockets or TCP connections in all, spread over the threads (default: one per thread).
    /// More source ports spread the load over more of the server's SO_REUSEPORT shards.
    #[arg(long)]
    pub connections: Option<usize>,
    /// Most datagrams per sendmmsg/recvmmsg call; 1 uses plain send/recv.
    #[arg(long, default_value_t = 32)]
    pub batch: usize,
    /// Calls sharing one Call-ID (CSeq grows within it); 1 = unique Call-ID per call.
    #[arg(long, default_value_t = 1)]
    pub calls_per_callid: u64,
    /// Retransmit unanswered UDP requests per RFC 3261 (T1 = 500 ms doubling, T2 = 4 s).
    #[arg(long)]
    pub retransmit: bool,
    /// A SIP request to send as the scenario's first request, with placeholders
    /// ([call_id], [cseq], [branch], [from_tag], [seq], [local_ip], [local_port], [remote_ip],
    /// [remote_port], [transport], [len]).
    #[arg(long)]
    pub template: Option<PathBuf>,
    /// Body size of MESSAGE requests, in bytes.
    #[arg(long, default_value_t = 64)]
    pub body_size: usize,
    /// park-expire: the server's repository expiry; subtracted from the 408 latency and sent as
    /// `Expires:` on the parked MESSAGE (whole seconds). sipshard does not read that header: it
    /// keeps an item `[repo] expire` seconds (180 in docs/examples/siprepo.toml), so start it
    /// with `--repo-expire` set to this (`--repo-expire 1` for the default 1s), or every call
    /// times out.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub expire: Duration,
    /// park-pull: method of the trigger request.
    #[arg(long, value_enum, default_value_t = TriggerMethod::Options)]
    pub trigger: TriggerMethod,
    /// Request-URI (default `sip:sipshard@TARGET`).
    #[arg(long)]
    pub ruri: Option<String>,
    /// Step the rate START:STEP:MAX and report the highest rate whose p99 stays under --slo.
    #[arg(long)]
    pub ramp: Option<String>,
    /// The latency objective for --ramp (p99 of every latency, timeouts counted as over).
    #[arg(long, default_value = "10ms", value_parser = parse_duration)]
    pub slo: Duration,
    /// Exit with status 1 when more calls than this fail: time out (also when they could not be
    /// sent), get a final reply the scenario does not expect, or cannot be sent at all. 0 (the
    /// default): any failed call fails the run. Not applied to --ramp's steps.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub max_failures: u64,
    /// Write the reports here (summary.json, summary.txt, *.hgrm, latency.hlog, spectrum.svg).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// No progress line every second.
    #[arg(long, short)]
    pub quiet: bool,
    /// Socket send and receive buffer size, bytes.
    #[arg(long, default_value_t = 4 << 20)]
    pub sockbuf: usize,
    /// Gateway scenarios: user pairs (sessions) set up before the load, spread over the threads
    /// (gw-idle-sessions: the sessions to create).
    #[arg(long, default_value_t = 100)]
    pub sessions: usize,
}

/// A checked run configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The server.
    pub target: SocketAddr,
    /// What each call does.
    pub scenario: ScenarioKind,
    /// udp or tcp.
    pub transport: Transport,
    /// Calls per second.
    pub rate: f64,
    /// Measured load duration, if bounded by time.
    pub duration: Option<Duration>,
    /// Measured calls, if bounded by count.
    pub requests: Option<u64>,
    /// Unmeasured load before.
    pub warmup: Duration,
    /// When an unanswered request counts as a timeout.
    pub timeout: Duration,
    /// Threads.
    pub threads: usize,
    /// Cores to pin to, if any.
    pub cores: Option<Vec<usize>>,
    /// Sockets / connections in all.
    pub connections: usize,
    /// Batch size for sendmmsg/recvmmsg.
    pub batch: usize,
    /// Calls per Call-ID.
    pub calls_per_callid: u64,
    /// RFC 3261 UDP retransmissions.
    pub retransmit: bool,
    /// Custom first request.
    pub template: Option<Template>,
    /// MESSAGE body size.
    pub body_size: usize,
    /// Server-side expiry (park-expire).
    pub expire: Duration,
    /// Trigger method (park-pull).
    pub trigger: TriggerMethod,
    /// Request-URI.
    pub ruri: String,
    /// Ramp steps, if any.
    pub ramp: Option<Ramp>,
    /// Ramp objective.
    pub slo: Duration,
    /// Failed calls a run may have and still succeed.
    pub max_failures: u64,
    /// Report directory.
    pub out: Option<PathBuf>,
    /// No progress lines.
    pub quiet: bool,
    /// Socket buffer size.
    pub sockbuf: usize,
    /// Gateway scenarios: sessions.
    pub sessions: usize,
}

/// `--ramp START:STEP:MAX`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ramp {
    /// First rate.
    pub start: f64,
    /// Added each step.
    pub step: f64,
    /// Last rate tried.
    pub max: f64,
}

impl Ramp {
    /// The rates to try, in order.
    pub fn rates(&self) -> Vec<f64> {
        let mut v = Vec::new();
        let mut r = self.start;
        while r <= self.max + 1e-9 && v.len() < 10_000 {
            v.push(r);
            r += self.step;
        }
        v
    }
}

impl Config {
    /// Reads a configuration from command-line style arguments (without the program name).
    pub fn from_flags<I, S>(flags: I) -> Result<Config, String>
    where
        I: IntoIterator<Item = S>,
        S: Into<std::ffi::OsString> + Clone,
    {
        let args = std::iter::once(std::ffi::OsString::from("sipshard-load"))
            .chain(flags.into_iter().map(Into::into));
        let cli = Cli::try_parse_from(args).map_err(|e| e.to_string())?;
        Config::try_from(cli.run).map_err(|e| e.to_string())
    }

    /// When the scheduled (measured) load stops being offered, counted from the start.
    pub fn send_window(&self) -> Option<Duration> {
        self.duration.map(|d| self.warmup + d)
    }
}

impl TryFrom<RunArgs> for Config {
    type Error = ConfigError;

    fn try_from(a: RunArgs) -> Result<Config, ConfigError> {
        let target = a
            .target
            .to_socket_addrs()
            .map_err(|_| ConfigError::Target(a.target.clone()))?
            .next()
            .ok_or_else(|| ConfigError::Target(a.target.clone()))?;
        if !(a.rate.is_finite() && a.rate > 0.0) {
            return Err(invalid(
                "rate",
                "must be a positive number of calls per second",
            ));
        }
        if a.threads == 0 || a.threads > 1024 {
            return Err(invalid("threads", "must be 1 to 1024"));
        }
        let connections = a.connections.unwrap_or(a.threads);
        if connections < a.threads {
            return Err(invalid(
                "connections",
                format!("at least one per thread ({} threads)", a.threads),
            ));
        }
        if a.batch == 0 || a.batch > 1024 {
            return Err(invalid("batch", "must be 1 to 1024"));
        }
        if a.calls_per_callid == 0 {
            return Err(invalid("calls-per-callid", "must be at least 1"));
        }
        if a.timeout.is_zero() {
            return Err(invalid("timeout", "must be more than 0"));
        }
        if a.retransmit && a.transport == Transport::Tcp {
            return Err(invalid(
                "retransmit",
                "only for UDP (TCP is reliable, RFC 3261 §17.1.1.2)",
            ));
        }
        let cores = a.cores.as_deref().map(parse_cores).transpose()?;
        let ramp = a.ramp.as_deref().map(parse_ramp).transpose()?;
        check_gateway(&a)?;
        // gw-idle-sessions makes --sessions INVITEs, unless told otherwise.
        let requests = match (a.scenario, a.duration, a.requests) {
            (ScenarioKind::GwIdleSessions, None, None) => Some(a.sessions as u64),
            (_, _, r) => r,
        };
        let duration = match (a.duration, requests) {
            (None, None) => Some(Duration::from_secs(if ramp.is_some() { 5 } else { 10 })),
            (d, _) => d,
        };
        let template = match &a.template {
            None => None,
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Template {
                    path: path.clone(),
                    reason: e.to_string(),
                })?;
                Some(
                    Template::new(&text).map_err(|reason| ConfigError::Template {
                        path: path.clone(),
                        reason,
                    })?,
                )
            }
        };
        let ruri = a.ruri.unwrap_or_else(|| format!("sip:sipshard@{target}"));
        Ok(Config {
            target,
            scenario: a.scenario,
            transport: a.transport,
            rate: a.rate,
            duration,
            requests,
            warmup: a.warmup,
            timeout: a.timeout,
            threads: a.threads,
            cores,
            connections,
            batch: a.batch,
            calls_per_callid: a.calls_per_callid,
            retransmit: a.retransmit,
            template,
            body_size: a.body_size,
            expire: a.expire,
            trigger: a.trigger,
            ruri,
            ramp,
            slo: a.slo,
            max_failures: a.max_failures,
            out: a.out,
            quiet: a.quiet,
            sockbuf: a.sockbuf,
            sessions: a.sessions,
        })
    }
}

/// The gateway scenarios' own limits (docs/loadgen.md, "The gateway scenarios").
fn check_gateway(a: &RunArgs) -> Result<(), ConfigError> {
    if !a.scenario.is_gateway() {
        return Ok(());
    }
    let name = a.scenario.name();
    if a.transport != Transport::Udp {
        return Err(invalid(
            "transport",
            format!("{name} sends SIP over UDP only"),
        ));
    }
    if a.template.is_some() {
        return Err(invalid(
            "template",
            format!("{name} writes its own requests"),
        ));
    }
    if a.retransmit {
        return Err(invalid(
            "retransmit",
            format!("{name} does not retransmit (loopback loses nothing unless a buffer overflows, which the report shows as timeouts)"),
        ));
    }
    if a.calls_per_callid != 1 {
        return Err(invalid(
            "calls-per-callid",
            format!("{name} uses one Call-ID per call"),
        ));
    }
    if a.sessions < a.threads {
        return Err(invalid(
            "sessions",
            format!("at least one per thread ({} threads)", a.threads),
        ));
    }
    // The gateway's MESSAGE must fit a datagram (RFC 3261 §18.1.1: 1300 bytes), else it goes
    // over TCP, which the load generator's SIP side does not take.
    if a.scenario == ScenarioKind::GwMsrpToSip && a.body_size > MAX_GW_SIP_BODY {
        return Err(invalid(
            "body-size",
            format!("at most {MAX_GW_SIP_BODY} bytes for {name}, so that the gateway's MESSAGE fits a datagram"),
        ));
    }
    Ok(())
}

/// The largest body gw-msrp-to-sip sends: with the gateway's headers (about 400 bytes) the
/// MESSAGE stays under the 1300 bytes past which it would go over TCP.
pub const MAX_GW_SIP_BODY: usize = 800;

/// Parses `10s`, `250ms`, `1.5s`, `2m`, `100us`; a bare number is seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a duration (try 10s, 250ms, 2m)"))?;
    let secs = match unit.trim() {
        "" | "s" => n,
        "ms" => n / 1e3,
        "us" | "µs" => n / 1e6,
        "ns" => n / 1e9,
        "m" | "min" => n * 60.0,
        "h" => n * 3600.0,
        u => {
            return Err(format!(
                "unknown unit `{u}` in `{s}` (use ns, us, ms, s, m, h)"
            ))
        }
    };
    if !secs.is_finite() || secs < 0.0 {
        return Err(format!("`{s}` is not a duration"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Parses `5000`, `5000/s`, `20k`, `1.5M/s`.
pub fn parse_rate(s: &str) -> Result<f64, String> {
    let t = s.trim().trim_end_matches("/s");
    let (num, mult) = match t.as_bytes().last() {
        Some(b'k') | Some(b'K') => (&t[..t.len() - 1], 1e3),
        Some(b'M') => (&t[..t.len() - 1], 1e6),
        _ => (t, 1.0),
    };
    let v: f64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a rate (try 5000, 5000/s, 20k)"))?;
    if !(v.is_finite() && v > 0.0) {
        return Err(format!("`{s}`: the rate must be positive"));
    }
    Ok(v * mult)
}

fn parse_cores(s: &str) -> Result<Vec<usize>, ConfigError> {
    let mut cores = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let bad = || {
            invalid(
                "cores",
                format!("`{part}` is not a core or a range like 0-3"),
            )
        };
        match part.split_once('-') {
            Some((a, b)) => {
                let a: usize = a.trim().parse().map_err(|_| bad())?;
                let b: usize = b.trim().parse().map_err(|_| bad())?;
                if b < a {
                    return Err(bad());
                }
                cores.extend(a..=b);
            }
            None => cores.push(part.parse().map_err(|_| bad())?),
        }
    }
    if cores.is_empty() {
        return Err(invalid("cores", "empty core list"));
    }
    Ok(cores)
}

fn parse_ramp(s: &str) -> Result<Ramp, ConfigError> {
    let parts: Vec<&str> = s.split(':').collect();
    let bad = || {
        invalid(
            "ramp",
            format!("`{s}`: expected START:STEP:MAX, e.g. 1000:1000:20000"),
        )
    };
    if parts.len() != 3 {
        return Err(bad());
    }
    let start = parse_rate(parts[0]).map_err(|_| bad())?;
    let step = parse_rate(parts[1]).map_err(|_| bad())?;
    let max = parse_rate(parts[2]).map_err(|_| bad())?;
    if max < start {
        return Err(bad());
    }
    Ok(Ramp { start, step, max })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("2").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("5 parsecs").is_err());
    }

    #[test]
    fn rates() {
        assert_eq!(parse_rate("5000").unwrap(), 5000.0);
        assert_eq!(parse_rate("5000/s").unwrap(), 5000.0);
        assert_eq!(parse_rate("20k").unwrap(), 20000.0);
        assert!(parse_rate("0").is_err());
        assert!(parse_rate("fast").is_err());
    }

    #[test]
    fn cores_and_ramp() {
        assert_eq!(parse_cores("0-3").unwrap(), vec![0, 1, 2, 3]);
        assert_eq!(parse_cores("0,2, 4-5").unwrap(), vec![0, 2, 4, 5]);
        assert!(parse_cores("3-1").is_err());
        let r = parse_ramp("1000:1000:3000").unwrap();
        assert_eq!(r.rates(), vec![1000.0, 2000.0, 3000.0]);
        assert!(parse_ramp("1000:1000").is_err());
    }

    #[test]
    fn flags_to_config() {
        let c = Config::from_flags(["127.0.0.1:5070", "--rate", "2k", "--threads", "2"]).unwrap();
        assert_eq!(c.rate, 2000.0);
        assert_eq!(c.connections, 2);
        assert_eq!(c.duration, Some(Duration::from_secs(10)));
        assert!(Config::from_flags(["--threads", "2", "--connections", "1"]).is_err());
        assert!(Config::from_flags(["--transport", "tcp", "--retransmit"]).is_err());
    }

    #[test]
    fn gateway_flags() {
        let c =
            Config::from_flags(["--scenario", "gw-idle-sessions", "--sessions", "500"]).unwrap();
        assert_eq!(c.requests, Some(500));
        assert_eq!(c.duration, None);
        let c = Config::from_flags(["--scenario", "gw-sip-to-msrp", "--duration", "2s"]).unwrap();
        assert_eq!((c.sessions, c.requests), (100, None));
        assert!(c.scenario.is_gateway());
        for bad in [
            &["--scenario", "gw-sip-to-msrp", "--transport", "tcp"][..],
            &["--scenario", "gw-msrp-to-sip", "--body-size", "1200"],
            &[
                "--scenario",
                "gw-msrp-to-sip",
                "--threads",
                "4",
                "--sessions",
                "2",
            ],
            &["--scenario", "gw-sip-to-msrp", "--retransmit"],
        ] {
            assert!(Config::from_flags(bad.iter().copied()).is_err(), "{bad:?}");
        }
    }
}
