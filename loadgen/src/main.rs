//! The `sipshard-load` binary: parses the flags and hands over to the library.

use clap::Parser;
use sipshard_load::config::{Cli, Command, Config};
use sipshard_load::responder::{Responder, ResponderConfig};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigint(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::Relaxed);
}

/// Ctrl-C ends the run early: outstanding requests count as timeouts and the report is written.
fn stop_on_interrupt() -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, on_sigint as *const () as libc::sighandler_t);
    }
    let s = stop.clone();
    std::thread::spawn(move || loop {
        if INTERRUPTED.load(Ordering::Relaxed) {
            s.store(true, Ordering::Relaxed);
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    });
    stop
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut stdout = std::io::stdout();
    match cli.command {
        Some(Command::Report(a)) => {
            match sipshard_load::compare::report(&a.runs, &a.svg, a.metric.as_deref(), &mut stdout)
            {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(&e.to_string()),
            }
        }
        Some(Command::Responder(a)) => {
            let cfg = ResponderConfig {
                park: a.park,
                expire: a.expire,
                stall: None,
            };
            match Responder::start(a.listen, cfg) {
                Ok(r) => {
                    eprintln!("responder on {} (Ctrl-C to stop)", r.addr());
                    loop {
                        std::thread::park();
                    }
                }
                Err(e) => fail(&format!("cannot listen on {}: {e}", a.listen)),
            }
        }
        None => {
            let cfg = match Config::try_from(cli.run) {
                Ok(c) => c,
                Err(e) => return fail(&e.to_string()),
            };
            let stop = stop_on_interrupt();
            let verdict = if cfg.ramp.is_some() {
                sipshard_load::run::ramp(&cfg, &mut stdout, stop).map(|(_, best)| {
                    best.is_none()
                        .then(|| format!("no rate met the SLO (p99 <= {:?})", cfg.slo))
                })
            } else {
                sipshard_load::run::run_and_report_with_stop(&cfg, &mut stdout, stop)
                    .map(|s| sipshard_load::report::failure_line(&s, cfg.max_failures))
            };
            match verdict {
                Ok(None) => ExitCode::SUCCESS,
                Ok(Some(why)) => {
                    eprintln!("sipshard-load: {why}");
                    ExitCode::from(EXIT_CALLS_FAILED)
                }
                Err(e) => fail(&e.to_string()),
            }
        }
    }
}

/// Exit status when the run was made and reported but more calls failed than
/// `--max-failures` allows (or, with `--ramp`, no rate met the SLO): 1, as SIPp's for failed
/// calls.
const EXIT_CALLS_FAILED: u8 = 1;

/// Exit status when the tool could not do what it was asked (flags, sockets, report files,
/// `report`'s inputs): 2, as clap's own usage errors, so a script tells it from a run whose
/// calls failed.
const EXIT_CANNOT_RUN: u8 = 2;

fn fail(msg: &str) -> ExitCode {
    eprintln!("sipshard-load: {msg}");
    ExitCode::from(EXIT_CANNOT_RUN)
}
