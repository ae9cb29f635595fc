//! The `sipshard` command line.

use clap::{Parser, Subcommand};
use sipshard::inspect::{self, Options};
use std::io::Read;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "sipshard", version, about = "Thread-per-core SIP message repository and SIP/MSRP gateway")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Parse {
            msrp,
            stream,
            json,
            files,
        } => run_parse(&files, Options { msrp, stream, json }),
    }
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
    for (name, data) in &inputs {
        for (i, r) in inspect::inspect(data, opts).iter().enumerate() {
            all_ok &= r.ok;
            let line = if opts.json {
                inspect::format_json(name, i, r)
            } else {
                inspect::format_text(name, i, r)
            };
            println!("{line}");
        }
    }
    if all_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
