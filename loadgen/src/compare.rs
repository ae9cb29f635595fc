//! `sipshard-load report RUN_DIR...`: several runs side by side.
//!
//! Tuning means comparing: before/after a config change, one core vs four, UDP vs TCP. This
//! reads each run's `summary.json` (written by `--out`) and prints one table row per run and
//! latency, and draws every run's spectrum on one SVG.

use crate::report::{Summary, QUANTILES};
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

/// The comparison table.
pub fn table(runs: &[LoadedRun], metric: Option<&str>) -> String {
    let mut o = String::new();
    let _ = write!(
        o,
        "{:<20} {:<10} {:>10} {:>10} {:>9} {:>10}",
        "run", "latency", "offered/s", "achieved/s", "timeouts", "count"
    );
    for (label, _) in QUANTILES {
        let _ = write!(o, " {label:>9}");
    }
    let _ = writeln!(o, " {:>9}", "max");
    for r in runs {
        for m in r
            .summary
            .metrics
            .iter()
            .filter(|m| metric.is_none_or(|w| w == m.name))
        {
            let _ = write!(
                o,
                "{:<20} {:<10} {:>10.0} {:>10.0} {:>9} {:>10}",
                r.label,
                m.name,
                r.summary.offered_rate,
                r.summary.achieved_rate,
                m.timeouts,
                m.count
            );
            for v in m.percentiles() {
                let _ = write!(o, " {v:>9.3}");
            }
            let _ = writeln!(o, " {:>9.3}", m.max_ms);
        }
    }
    o
}

/// Runs the `report` subcommand: prints the table, writes the SVG.
pub fn report(
    dirs: &[PathBuf],
    svg: &Path,
    metric: Option<&str>,
    out: &mut dyn io::Write,
) -> io::Result<()> {
    let runs = dirs
        .iter()
        .map(|d| load(d))
        .collect::<io::Result<Vec<_>>>()?;
    out.write_all(table(&runs, metric).as_bytes())?;
    let series: Vec<(String, Vec<(f64, f64)>)> = runs
        .iter()
        .flat_map(|r| {
            r.summary
                .metrics
                .iter()
                .filter(|m| metric.is_none_or(|w| w == m.name) && !m.spectrum.is_empty())
                .map(|m| (format!("{} {}", r.label, m.name), m.spectrum.clone()))
        })
        .collect();
    crate::svg::write_spectrum(svg, "sipshard-load runs: latency by percentile", &series)?;
    writeln!(out, "spectra: {}", svg.display())
}
