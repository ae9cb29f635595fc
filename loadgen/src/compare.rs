//! `sipshard-load report INPUT...`: several runs side by side.
//!
//! Tuning means comparing: before/after a config change, one core vs four, UDP vs TCP, and
//! what the client saw against what the server saw. This reads each run's `summary.json`
//! (written by `--out`) and any plain `.hgrm` file (the server's `shard.latency` writes the
//! same format, through sipshard-core's `hgrm`), prints one table row per run and latency, and
//! draws every spectrum on one SVG.

use crate::report::{parse_hgrm, HgrmRow, Summary, QUANTILES};
use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::io;
use std::path::{Path, PathBuf};

/// A run read back from its directory.
#[derive(Debug, Clone)]
pub struct LoadedRun {
    /// Its label (the directory name).
    pub label: String,
    /// Its summary.
    pub summary: Summary,
}

/// A `.hgrm` file read back: one latency distribution, without the run around it.
#[derive(Debug, Clone)]
pub struct LoadedHgrm {
    /// Its label (the file stem: `server-message.hgrm` is `server-message`).
    pub label: String,
    /// Its data lines.
    pub rows: Vec<HgrmRow>,
}

/// One input of `report`.
#[derive(Debug, Clone)]
pub enum Input {
    /// A `--out` directory.
    Run(Box<LoadedRun>),
    /// A `.hgrm` file.
    Hgrm(LoadedHgrm),
}

/// Reads `DIR/summary.json`.
pub fn load(dir: &Path) -> io::Result<LoadedRun> {
    let path = dir.join("summary.json");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
    let summary: Summary = serde_json::from_str(&text).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: {e}", path.display()),
        )
    })?;
    let label = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| dir.display().to_string());
    Ok(LoadedRun { label, summary })
}

/// Reads a `.hgrm` file.
pub fn load_hgrm(path: &Path) -> io::Result<LoadedHgrm> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
    let rows = parse_hgrm(&text).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: {e}", path.display()),
        )
    })?;
    let label = path
        .file_stem()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string());
    Ok(LoadedHgrm { label, rows })
}

/// Reads a run directory or a `.hgrm` file.
pub fn load_input(path: &Path) -> io::Result<Input> {
    if path.is_dir() {
        load(path).map(|r| Input::Run(Box::new(r)))
    } else if path.extension().is_some_and(|e| e == "hgrm") {
        load_hgrm(path).map(Input::Hgrm)
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{}: neither a run directory (--out) nor a .hgrm file",
                path.display()
            ),
        ))
    }
}

/// One row of the table, from either kind of input.
struct Row {
    run: String,
    latency: String,
    /// Offered and achieved rates and timeouts; a `.hgrm` file has none.
    rates: Option<(f64, f64, u64)>,
    count: u64,
    percentiles: [f64; 5],
    max: f64,
    spectrum: Vec<(f64, f64)>,
}

impl LoadedHgrm {
    /// The value at quantile `q`: the first line that reaches it, as HdrHistogram reads it.
    fn value_at(&self, q: f64) -> f64 {
        self.rows
            .iter()
            .find(|r| r.quantile >= q)
            .or(self.rows.last())
            .map_or(0.0, |r| r.value)
    }

    fn row(&self) -> Row {
        Row {
            run: self.label.clone(),
            latency: "-".into(),
            rates: None,
            count: self.rows.last().map_or(0, |r| r.total_count),
            percentiles: QUANTILES.map(|(_, q)| self.value_at(q)),
            max: self.rows.last().map_or(0.0, |r| r.value),
            spectrum: self.rows.iter().map(|r| (r.quantile, r.value)).collect(),
        }
    }
}

/// The latencies the run directories have, sorted.
fn metric_names(inputs: &[Input]) -> BTreeSet<&str> {
    inputs
        .iter()
        .filter_map(|i| match i {
            Input::Run(r) => Some(r),
            Input::Hgrm(_) => None,
        })
        .flat_map(|r| r.summary.metrics.iter().map(|m| m.name.as_str()))
        .collect()
}

/// Refuses a `--metric` that no run directory has, naming those they do have. `.hgrm` files
/// are one latency each and always shown, so they do not count.
pub fn check_metric(inputs: &[Input], metric: Option<&str>) -> Result<(), String> {
    let Some(want) = metric else {
        return Ok(());
    };
    let names = metric_names(inputs);
    if names.contains(want) {
        return Ok(());
    }
    if names.is_empty() {
        return Err(format!(
            "--metric {want}: it selects a latency of run directories, and none was given"
        ));
    }
    Err(format!(
        "--metric {want}: no run has it; the runs have: {}",
        names.into_iter().collect::<Vec<_>>().join(", ")
    ))
}

fn rows(inputs: &[Input], metric: Option<&str>) -> Vec<Row> {
    let mut out = Vec::new();
    for input in inputs {
        match input {
            Input::Run(r) => out.extend(
                r.summary
                    .metrics
                    .iter()
                    .filter(|m| metric.is_none_or(|w| w == m.name))
                    .map(|m| Row {
                        run: r.label.clone(),
                        latency: m.name.clone(),
                        rates: Some((r.summary.offered_rate, r.summary.achieved_rate, m.timeouts)),
                        count: m.count,
                        percentiles: m.percentiles(),
                        max: m.max_ms,
                        spectrum: m.spectrum.clone(),
                    }),
            ),
            Input::Hgrm(h) => out.push(h.row()),
        }
    }
    out
}

/// The comparison table. Latencies are in milliseconds, as every column header says.
pub fn table(inputs: &[Input], metric: Option<&str>) -> String {
    let mut o = String::new();
    let _ = write!(
        o,
        "{:<20} {:<10} {:>10} {:>10} {:>9} {:>10}",
        "run", "latency", "offered/s", "achieved/s", "timeouts", "count"
    );
    for (label, _) in QUANTILES {
        let _ = write!(o, " {:>10}", format!("{label} ms"));
    }
    let _ = writeln!(o, " {:>10}", "max ms");
    for r in rows(inputs, metric) {
        let _ = write!(o, "{:<20} {:<10}", r.run, r.latency);
        match r.rates {
            Some((offered, achieved, timeouts)) => {
                let _ = write!(o, " {offered:>10.0} {achieved:>10.0} {timeouts:>9}");
            }
            None => {
                let _ = write!(o, " {:>10} {:>10} {:>9}", "-", "-", "-");
            }
        }
        let _ = write!(o, " {:>10}", r.count);
        for v in r.percentiles {
            let _ = write!(o, " {v:>10.3}");
        }
        let _ = writeln!(o, " {:>10.3}", r.max);
    }
    o
}

/// Runs the `report` subcommand: prints the table, writes the SVG. Fails, writing nothing,
/// when an input cannot be read or `metric` names no latency of the runs.
pub fn report(
    paths: &[PathBuf],
    svg: &Path,
    metric: Option<&str>,
    out: &mut dyn io::Write,
) -> io::Result<()> {
    let inputs = paths
        .iter()
        .map(|p| load_input(p))
        .collect::<io::Result<Vec<_>>>()?;
    check_metric(&inputs, metric).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    out.write_all(table(&inputs, metric).as_bytes())?;
    let series: Vec<(String, Vec<(f64, f64)>)> = rows(&inputs, metric)
        .into_iter()
        .filter(|r| !r.spectrum.is_empty())
        .map(|r| {
            let name = if r.rates.is_some() {
                format!("{} {}", r.run, r.latency)
            } else {
                r.run
            };
            (name, r.spectrum)
        })
        .collect();
    crate::svg::write_spectrum(svg, "sipshard-load runs: latency by percentile", &series)?;
    writeln!(out, "spectra: {}", svg.display())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{write_hgrm, MICROS_PER_MS};

    fn hgrm(label: &str, micros: impl Iterator<Item = u64>) -> Input {
        let mut h = crate::stats::new_histogram();
        for v in micros {
            h.record(v).unwrap();
        }
        let mut text = Vec::new();
        write_hgrm(&h, MICROS_PER_MS, &mut text).unwrap();
        Input::Hgrm(LoadedHgrm {
            label: label.into(),
            rows: parse_hgrm(std::str::from_utf8(&text).unwrap()).unwrap(),
        })
    }

    #[test]
    fn a_hgrm_file_is_a_row_with_its_percentiles_and_no_rates() {
        let t = table(&[hgrm("server-park", 1..=1000)], None);
        let lines: Vec<&str> = t.lines().collect();
        assert!(
            lines[0].contains("p50 ms") && lines[0].ends_with("max ms"),
            "{t}"
        );
        let cols: Vec<&str> = lines[1].split_whitespace().collect();
        assert_eq!(
            &cols[..6],
            &["server-park", "-", "-", "-", "-", "1000"],
            "{t}"
        );
        // p50 of 1..=1000 µs is 0.5 ms, p99 0.99 ms: read off the file's lines, which step in
        // ticks, so within a tick of it.
        assert_eq!(cols[6], "0.500", "{t}");
        let p99: f64 = cols[8].parse().unwrap();
        assert!((0.99..=0.995).contains(&p99), "{t}");
    }

    #[test]
    fn metric_must_be_one_the_runs_have() {
        let only_hgrm = [hgrm("server-park", 1..=10)];
        assert!(check_metric(&only_hgrm, None).is_ok());
        assert!(check_metric(&only_hgrm, Some("park"))
            .unwrap_err()
            .contains("none was given"));
    }
}
