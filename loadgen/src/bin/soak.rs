//! `sipshard-soak`: a soak run against `sipshard serve -c docs/examples/siprepo.toml`. Every
//! parked message must get exactly one outcome, the server's counters must agree with what was
//! sent, and RSS, descriptors and queues are sampled every second into a report
//! (docs/loadgen.md, "Soak"; `bench/soak/run.sh` starts a server and runs this against it).
//!
//! ```text
//! sipshard-soak --target 127.0.0.1:5060 --control 127.0.0.1:5080 --pid PID \
//!     --duration 1800 --rate 5000 --out soak-report
//! ```
//!
//! Exit status 0 when nothing was wrong, 1 when the report lists violations, 2 when the run
//! could not be made.

use clap::Parser;
use sipshard_load::soak::{run, Args};
use std::process::ExitCode;

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(r) => {
            print!("{}", r.text);
            println!(
                "report: {} (report.txt, report.svg, samples.csv)",
                args.out.display()
            );
            if r.pass {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("sipshard-soak: {e}");
            ExitCode::from(2)
        }
    }
}
