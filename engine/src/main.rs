//! The `sipshard` command line: `serve` runs the server, `ctl` talks to a running one, `parse`
//! inspects messages.

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use serde_json::Value;
use sipshard::inspect::{self, Options};
use sipshard::runtime::{self, RuntimeSpec, ShardTuning};
use sipshard_core::config::{self, Overrides};
use sipshard_core::shard::SharedState;
use sipshard_parser::sip::FrameOptions;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "sipshard",
    version,
    about = "Thread-per-core SIP message repository and SIP/MSRP gateway"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve(Box<ServeArgs>),
    /// Call a JSON-RPC method of a running server and print the result (methods below).
    Ctl {
        /// Control endpoint of the server.
        #[arg(long, default_value = "127.0.0.1:5080")]
        control: SocketAddr,
        /// The server's control token (its [control] token_file), sent as a bearer token.
        #[arg(
            long,
            value_name = "TOKEN",
            env = "SIPSHARD_CONTROL_TOKEN",
            hide_env_values = true,
            conflicts_with = "token_file"
        )]
        token: Option<String>,
        /// A file holding the token (a flag's value shows in `ps`; a file's does not).
        #[arg(long, value_name = "FILE")]
        token_file: Option<std::path::PathBuf>,
        /// The method, e.g. `repo.stats`; without one, the methods are listed.
        method: Option<String>,
        /// Parameters as key=value, typed as the method takes them.
        params: Vec<String>,
    },
    /// Parse SIP or MSRP messages from files and print the verdict and key fields of each.
    ///
    /// Exit status: 0 when every message parsed, 1 when any was rejected, 2 on a usage error.
    Parse {
        /// Parse MSRP (RFC 4975) instead of SIP.
        #[arg(long)]
        msrp: bool,
        /// Each file holds several messages back to back (a TCP byte stream).
        #[arg(long)]
        stream: bool,
        /// Print one JSON object per message (JSON Lines).
        #[arg(long)]
        json: bool,
        /// Files to read; `-` reads standard input.
        #[arg(required = true, value_name = "FILE")]
        files: Vec<String>,
    },
}

#[derive(Args)]
struct ServeArgs {
    /// The config file (TOML). See docs/configuration.md.
    #[arg(long, short = 'c')]
    config: PathBuf,
    /// Print the effective config (file, flags and defaults) and exit.
    #[arg(long)]
    print_config: bool,
    #[command(flatten)]
    overrides: Overrides,
}

fn main() -> ExitCode {
    // The methods `ctl` can call come from the server's own table, so the help never drifts.
    let command = Cli::command().mut_subcommand("ctl", |c| {
        c.after_help(format!(
            "Methods (params as KEY=VALUE):\n{}",
            sipshard_core::shard::control::help()
        ))
    });
    let cli = Cli::from_arg_matches(&command.get_matches()).unwrap_or_else(|e| e.exit());
    match cli.command {
        Command::Parse {
            msrp,
            stream,
            json,
            files,
        } => run_parse(&files, Options { msrp, stream, json }),
        Command::Ctl {
            control,
            token,
            token_file,
            method,
            params,
        } => {
            let token = match (token, token_file) {
                (Some(t), _) => Some(t),
                (None, Some(f)) => match std::fs::read_to_string(&f) {
                    Ok(t) => Some(t.trim().to_string()),
                    Err(e) => {
                        eprintln!("sipshard ctl: cannot read {}: {e}", f.display());
                        return ExitCode::from(2);
                    }
                },
                (None, None) => None,
            };
            match method {
                Some(method) => run_ctl(control, token.as_deref(), &method, &params),
                None => {
                    let text = format!(
                        "Methods (params as KEY=VALUE; `sipshard ctl METHOD ...`):\n{}",
                        sipshard_core::shard::control::help()
                    );
                    let _ = std::io::stdout().lock().write_all(text.as_bytes());
                    ExitCode::SUCCESS
                }
            }
        }
        Command::Serve(args) => run_serve(*args),
    }
}

fn run_ctl(control: SocketAddr, token: Option<&str>, method: &str, params: &[String]) -> ExitCode {
    let known = sipshard_core::shard::control::method(method);
    let params = match sipshard::control::params_from_args(params, known) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("sipshard ctl: {e}");
            return ExitCode::from(2);
        }
    };
    match sipshard::control::call(control, token, method, params) {
        Ok(v) => {
            // The configuration reads as the TOML it is and a latency distribution as the
            // .hgrm it is (for `sipshard-load report`), not as one escaped JSON string.
            let text = match (method, v.get("config"), v.get("hgrm")) {
                ("config.show", Some(Value::String(toml)), _) => format!(
                    "# generation {}\n{toml}",
                    v.get("generation").cloned().unwrap_or_default()
                ),
                ("shard.latency", _, Some(Value::String(hgrm))) => hgrm.clone(),
                _ => serde_json::to_string_pretty(&v).unwrap_or_default() + "\n",
            };
            // A reader that stops early (`| head`) is not an error of ours.
            let _ = std::io::stdout().lock().write_all(text.as_bytes());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("sipshard ctl: {e}");
            ExitCode::from(1)
        }
    }
}

fn run_serve(args: ServeArgs) -> ExitCode {
    let loaded = match config::load(&args.config, &args.overrides) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("sipshard: {e}");
            return ExitCode::from(1);
        }
    };
    if args.print_config {
        let _ = std::io::stdout()
            .lock()
            .write_all(loaded.config.to_toml_string().as_bytes());
        return ExitCode::SUCCESS;
    }
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(loaded.config.log.level.as_str()));
    // Colour only for a person at a terminal: escape codes are noise in a file or a journal,
    // and NO_COLOR (no-color.org) turns them off there too.
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
        .with_writer(std::io::stderr)
        // A log line that cannot be written (stderr a closed pipe, a full disk) is lost, not
        // reported on stderr again: that report panics the thread that logged, which for the
        // signal thread meant SIGTERM no longer stopped the server.
        .log_internal_errors(false)
        .init();
    for w in &loaded.warnings {
        tracing::warn!("{w}");
    }
    let c = &loaded.config;
    let spec = RuntimeSpec {
        listen: c
            .server
            .listen
            .iter()
            .map(|l| (l.transport, l.addr))
            .collect(),
        shards: (0..c.server.shards.max(1))
            .map(|i| {
                let t = c.server.tuning(i);
                ShardTuning {
                    cpu: t.core,
                    udp_batch: t.udp_batch as usize,
                    sockets: (
                        t.socket_recv_buffer
                            .unwrap_or(config::defaults::SOCKET_RECV_BUFFER)
                            .bytes() as usize,
                        t.socket_send_buffer.map_or(0, |b| b.bytes() as usize),
                    ),
                    spin_before_park: t.spin_before_park.unwrap_or(Duration::ZERO),
                    udp_coalesce: t.udp_coalesce,
                    io_memory: t.io_memory.map_or(0, |b| b.bytes() as usize),
                }
            })
            .collect(),
        control: c.control.enabled.then_some(c.control.listen),
        control_access: sipshard::control::Access {
            token: c.control.token.clone(),
            metrics_open: c.control.metrics_open,
        },
        tcp: FrameOptions {
            max_head: c.server.tcp_max_head.bytes() as usize,
            max_body: c.server.tcp_max_body.bytes() as usize,
            require_content_length: true,
        },
        tcp_idle: Duration::from_secs(c.server.tcp_idle_timeout_s.max(1)),
        tcp_message_timeout: Duration::from_secs(c.server.tcp_message_timeout_s.max(1)),
        groups: (0..c.server.shards.max(1))
            .map(|i| {
                c.server
                    .tuning(i)
                    .task_queue_shares
                    .into_iter()
                    .map(|(k, v)| (k, v as usize))
                    .collect()
            })
            .collect(),
        max_udp_payload: c.server.max_udp_payload.bytes() as usize,
        msrp: if loaded.program.uses_gateway() {
            c.gateway.msrp_listen.clone()
        } else {
            Vec::new()
        },
        // A peer may send a message as one chunk: the largest frame is the largest message
        // and a head.
        msrp_max_frame: c.gateway.max_message_size.bytes() as usize + (16 << 10),
        msrp_bind_timeout: Duration::from_secs(c.gateway.setup_timeout),
        msrp_idle_timeout: Duration::from_secs(
            c.gateway.idle_timeout + c.gateway.msrp_transaction_timeout,
        ),
        // Set below, once the open-files limit is known.
        max_connections: 0,
        max_connections_per_shard: c.server.max_connections_per_shard,
    };
    let mut spec = spec;
    spec.max_connections = open_files_for(c.server.max_connections);
    let shared = Arc::new(SharedState::new(
        loaded,
        Some(args.config.clone()),
        args.overrides,
    ));
    let stop = Arc::new(AtomicBool::new(false));
    spawn_signal_thread(stop.clone(), shared.clone());
    let report = runtime::run(spec, shared, stop, |listen, msrp, control| {
        let mut out = std::io::stdout().lock();
        for (t, a) in listen {
            let _ = writeln!(out, "sipshard: listening {t} {a}");
        }
        for a in msrp {
            let _ = writeln!(out, "sipshard: listening msrp {a}");
        }
        if let Some(c) = control {
            let _ = writeln!(out, "sipshard: control http://{c}");
        }
        let _ = writeln!(out, "sipshard: ready");
        let _ = out.flush();
    });
    match report {
        Ok(r) => {
            let total: u64 = r.items_left.iter().sum();
            tracing::info!(
                "stopped; {total} items were still stored (per shard: {:?}), each answered through repo:shutdown or repo:expired",
                r.items_left
            );
            // Not println!: with stdout a closed pipe it would panic at the very end.
            let _ = writeln!(
                std::io::stdout(),
                "sipshard: stopped; {total} items were still stored, each answered"
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("sipshard: {e}");
            ExitCode::from(1)
        }
    }
}

/// Raises the soft limit of open files to the hard limit and returns the connection limit to
/// use: every TCP connection holds two descriptors (its reader and its writer), so the usual
/// soft limit of 1,024 refused connections at about 500. Unset, `max_connections` is what the
/// limit allows (up to the default); set, it is kept, with a warning when the limit is too low
/// for it.
#[allow(unsafe_code)]
fn open_files_for(max_connections: Option<u64>) -> u64 {
    let fallback = max_connections.unwrap_or(config::defaults::MAX_CONNECTIONS);
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own; RLIMIT_NOFILE is a valid resource.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) } != 0 {
        return fallback;
    }
    if r.rlim_cur < r.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: r.rlim_max,
            rlim_max: r.rlim_max,
        };
        // SAFETY: setrlimit reads the struct we own; raising the soft limit up to the hard
        // limit needs no privilege.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            r = raised;
        }
    }
    // Two per connection, and room for the sockets, io_uring rings and files of the shards.
    let room = r.rlim_cur.saturating_sub(1024) / 2;
    match max_connections {
        Some(n) if n > room => {
            tracing::warn!(
                "open files are limited to {} (hard limit), under the {} that max_connections \
                 = {n} needs (two per TCP or MSRP connection): connections past about {room} \
                 will fail; raise the limit (ulimit -Hn, LimitNOFILE=) or lower max_connections",
                r.rlim_cur,
                n.saturating_mul(2).saturating_add(1024)
            );
            n
        }
        Some(n) => n,
        None if room < fallback => {
            tracing::info!(
                "max_connections is {room}: what the open-files limit of {} allows (raise it \
                 with ulimit -Hn or LimitNOFILE= for up to {fallback})",
                r.rlim_cur
            );
            room.max(1)
        }
        None => fallback,
    }
}

/// SIGTERM/SIGINT stop the shards (they finish what is in flight); SIGHUP reloads the config.
fn spawn_signal_thread(stop: Arc<AtomicBool>, shared: Arc<SharedState>) {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut signals = match signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGHUP]) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("cannot install signal handlers: {e}");
            return;
        }
    };
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for sig in signals.forever() {
                if sig == SIGHUP {
                    match shared.reload() {
                        Ok(w) => {
                            tracing::info!("config reloaded (SIGHUP)");
                            for w in w {
                                tracing::warn!("{w}");
                            }
                        }
                        Err(e) => tracing::error!("config reload refused: {e}"),
                    }
                } else {
                    // Stop first: nothing after this may keep the server from stopping.
                    stop.store(true, Ordering::Relaxed);
                    tracing::info!("signal {sig}: stopping");
                    break;
                }
            }
        })
        .ok();
}

fn run_parse(files: &[String], opts: Options) -> ExitCode {
    let mut inputs = Vec::with_capacity(files.len());
    for name in files {
        let data = if name == "-" {
            let mut v = Vec::new();
            std::io::stdin().read_to_end(&mut v).map(|_| v)
        } else {
            std::fs::read(name)
        };
        match data {
            Ok(d) => inputs.push((name, d)),
            Err(e) => {
                eprintln!("sipshard parse: cannot read {name}: {e}");
                return ExitCode::from(2);
            }
        }
    }
    let mut all_ok = true;
    let mut out = std::io::stdout().lock();
    for (name, data) in &inputs {
        for (i, r) in inspect::inspect(data, opts).iter().enumerate() {
            all_ok &= r.ok;
            let line = if opts.json {
                inspect::format_json(name, i, r)
            } else {
                inspect::format_text(name, i, r)
            };
            // A reader that stops early (`| head`) ends the listing, not with a panic.
            if writeln!(out, "{line}").is_err() {
                return if all_ok {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::from(1)
                };
            }
        }
    }
    if all_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
