//! The report: `report.txt` (the summary, the server's counters against the ledger's, resources
//! over the run, every violation) and `report.svg` (RSS, descriptors, CPU, items and queue depth
//! over time, drawn with `plotters` as `svg.rs` does).

use super::ledger::{Ledger, Outcome};
use super::sampler::Sample;
use std::fmt::Write as _;
use std::io;
use std::path::Path;

/// One comparison of a server counter with what the soak counted.
#[derive(Debug, Clone)]
pub struct Check {
    /// Where the server's number comes from (`repo.stats`, `/metrics`, `/proc`).
    pub source: &'static str,
    /// The counter.
    pub name: String,
    /// What the soak expects.
    pub want: String,
    /// What the server said.
    pub got: String,
    /// Whether they agree.
    pub ok: bool,
}

impl Check {
    /// `got == want`.
    pub fn eq(source: &'static str, name: &str, want: u64, got: Option<u64>) -> Check {
        Check {
            source,
            name: name.to_string(),
            want: want.to_string(),
            got: got.map_or_else(|| "absent".into(), |g| g.to_string()),
            ok: got == Some(want),
        }
    }
}

/// Resource figures drawn from the samples.
#[derive(Debug, Clone, Default)]
pub struct Resources {
    /// RSS before the traffic, kB.
    pub rss_before: Option<u64>,
    /// RSS at the end of the warm-up, kB, and when.
    pub rss_warm: Option<(f64, u64)>,
    /// RSS when the last park was sent, kB.
    pub rss_traffic_end: Option<u64>,
    /// RSS after every item was judged, kB.
    pub rss_end: Option<u64>,
    /// Largest RSS seen, kB.
    pub rss_max: Option<u64>,
    /// RSS growth from the warm-up to the end of the traffic, kB per minute (least squares).
    pub rss_slope_kb_min: Option<f64>,
    /// Descriptors before the soak connected.
    pub fds_before: Option<u64>,
    /// Descriptors at the end of the warm-up.
    pub fds_warm: Option<u64>,
    /// Most descriptors seen.
    pub fds_max: Option<u64>,
    /// Descriptors after the soak closed its connections.
    pub fds_end: Option<u64>,
    /// Mean CPU % during the traffic.
    pub cpu_mean: Option<f64>,
    /// Highest one-second CPU %.
    pub cpu_max: Option<f64>,
    /// Deepest queue seen, per shard.
    pub queue_max: Vec<u64>,
    /// Most items stored at once (all shards).
    pub items_max: Option<u64>,
}

/// Works out the resource figures; `warmup_s` is where the steady state starts.
pub fn resources(
    samples: &[Sample],
    warmup_s: f64,
    rss_before: Option<u64>,
    fds_before: Option<u64>,
    fds_end: Option<u64>,
) -> Resources {
    let mut r = Resources {
        rss_before,
        fds_before,
        fds_end,
        ..Resources::default()
    };
    r.rss_warm = samples
        .iter()
        .find(|s| s.t_s >= warmup_s)
        .and_then(|s| Some((s.t_s, s.rss_kb?)));
    r.fds_warm = samples
        .iter()
        .find(|s| s.t_s >= warmup_s)
        .and_then(|s| s.fds);
    r.rss_traffic_end = samples
        .iter()
        .find(|s| s.traffic_done)
        .and_then(|s| s.rss_kb);
    r.rss_end = samples.last().and_then(|s| s.rss_kb);
    r.rss_max = samples.iter().filter_map(|s| s.rss_kb).max();
    r.fds_max = samples.iter().filter_map(|s| s.fds).max();
    let during: Vec<&Sample> = samples.iter().filter(|s| !s.traffic_done).collect();
    let cpus: Vec<f64> = during.iter().filter_map(|s| s.cpu_pct).collect();
    if !cpus.is_empty() {
        r.cpu_mean = Some(cpus.iter().sum::<f64>() / cpus.len() as f64);
        r.cpu_max = cpus.iter().copied().reduce(f64::max);
    }
    let shards = samples.iter().map(|s| s.pending.len()).max().unwrap_or(0);
    r.queue_max = (0..shards)
        .map(|i| {
            samples
                .iter()
                .filter_map(|s| s.pending.get(i).copied())
                .max()
                .unwrap_or(0)
        })
        .collect();
    r.items_max = samples.iter().filter_map(Sample::items_total).max();
    let steady: Vec<(f64, f64)> = during
        .iter()
        .filter(|s| s.t_s >= warmup_s)
        .filter_map(|s| Some((s.t_s, s.rss_kb? as f64)))
        .collect();
    r.rss_slope_kb_min = slope(&steady).map(|k| k * 60.0);
    r
}

/// Least-squares slope of y over x; `None` with fewer than 3 points.
pub fn slope(pts: &[(f64, f64)]) -> Option<f64> {
    if pts.len() < 3 {
        return None;
    }
    let n = pts.len() as f64;
    let mx = pts.iter().map(|p| p.0).sum::<f64>() / n;
    let my = pts.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = pts.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let sxy: f64 = pts.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    (sxx > 0.0).then(|| sxy / sxx)
}

/// Everything the text report says.
pub struct ReportInput<'a> {
    /// Lines describing the run (target, mix...), printed first as they are.
    pub header: Vec<String>,
    /// The judged ledger.
    pub ledger: &'a Ledger,
    /// Extra counts, `name: value` lines after the outcomes.
    pub counts: Vec<(String, String)>,
    /// The server's counters against the ledger.
    pub checks: &'a [Check],
    /// Resource figures.
    pub res: &'a Resources,
    /// Notes that do not fail the run (RSS growth...).
    pub notes: Vec<String>,
    /// Violations found outside the ledger (counters, descriptors).
    pub extra_violations: Vec<String>,
}

fn kb(v: Option<u64>) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{v} kB"))
}

/// Total violations: the ledger's and the extra ones.
pub fn violation_count(inp: &ReportInput<'_>) -> u64 {
    inp.ledger.violation_kinds.values().sum::<u64>() + inp.extra_violations.len() as u64
}

/// The text report.
pub fn text(inp: &ReportInput<'_>) -> String {
    let mut o = String::from("sipshard-soak report\n\n");
    for l in &inp.header {
        let _ = writeln!(o, "{l}");
    }
    let t = &inp.ledger.tally;
    let _ = writeln!(o);
    let outcomes: Vec<String> = [
        Outcome::Pulled,
        Outcome::Expired,
        Outcome::Removed,
        Outcome::Refused,
        Outcome::Duplicate,
        Outcome::Missing,
        Outcome::Broken,
    ]
    .iter()
    .map(|k| format!("{} {}", k.name(), t.outcomes.get(k).copied().unwrap_or(0)))
    .collect();
    let _ = writeln!(o, "outcomes: {}", outcomes.join(", "));
    let _ = writeln!(o, "duplicates: {}", t.duplicates);
    let _ = writeln!(o, "missing: {}", t.missing);
    for (k, v) in &inp.counts {
        let _ = writeln!(o, "{k}: {v}");
    }
    let _ = writeln!(o, "\nserver counters against the ledger:");
    for c in inp.checks {
        let _ = writeln!(
            o,
            "  {:<10} {:<38} server {:>10}  soak {:>10}  {}",
            c.source,
            c.name,
            c.got,
            c.want,
            if c.ok { "ok" } else { "MISMATCH" }
        );
    }
    let r = inp.res;
    let _ = writeln!(o, "\nresources (server process):");
    let _ = writeln!(
        o,
        "  rss: before {}, after warm-up {}, end of traffic {}, after drain {}, max {}",
        kb(r.rss_before),
        r.rss_warm
            .map_or_else(|| "-".into(), |(t, v)| format!("{v} kB (at {t:.0} s)")),
        kb(r.rss_traffic_end),
        kb(r.rss_end),
        kb(r.rss_max)
    );
    let _ = writeln!(
        o,
        "  rss growth after warm-up: {}",
        r.rss_slope_kb_min
            .map_or_else(|| "-".into(), |s| format!("{s:.1} kB/min"))
    );
    let f = |v: Option<u64>| v.map_or_else(|| "-".into(), |v| v.to_string());
    let _ = writeln!(
        o,
        "  fds: before {}, after warm-up {}, max {}, after drain {}",
        f(r.fds_before),
        f(r.fds_warm),
        f(r.fds_max),
        f(r.fds_end)
    );
    let _ = writeln!(
        o,
        "  cpu: mean {} of one core during the traffic, max {}",
        r.cpu_mean
            .map_or_else(|| "-".into(), |c| format!("{c:.0}%")),
        r.cpu_max.map_or_else(|| "-".into(), |c| format!("{c:.0}%"))
    );
    let _ = writeln!(
        o,
        "  queue depth (pending_cross_shard) max per shard: {:?}",
        r.queue_max
    );
    let _ = writeln!(o, "  items stored max: {}", f(r.items_max));
    if !inp.notes.is_empty() {
        let _ = writeln!(o, "\nnotes:");
        for n in &inp.notes {
            let _ = writeln!(o, "  {n}");
        }
    }
    let total = violation_count(inp);
    let _ = writeln!(o, "\nviolations: {total}");
    for (k, v) in &inp.ledger.violation_kinds {
        let _ = writeln!(o, "  {k}: {v}");
    }
    for v in &inp.extra_violations {
        let _ = writeln!(o, "  - {v}");
    }
    if !inp.ledger.violations.is_empty() {
        let _ = writeln!(
            o,
            "first {} in detail:",
            inp.ledger.violations.len().min(Ledger::KEEP)
        );
        for v in &inp.ledger.violations {
            let _ = writeln!(
                o,
                "  {} [{}] {}",
                v.seq.map_or_else(|| "-".into(), |s| format!("#{s}")),
                v.kind,
                v.detail
            );
        }
    }
    let _ = writeln!(o, "\nverdict: {}", if total == 0 { "PASS" } else { "FAIL" });
    o
}

/// report.svg: five panels over time.
pub fn write_svg(path: &Path, title: &str, samples: &[Sample]) -> io::Result<()> {
    draw(path, title, samples)
        .map_err(|e| io::Error::other(format!("drawing {}: {e}", path.display())))
}

type Series = (String, Vec<(f64, f64)>);

fn draw(path: &Path, title: &str, samples: &[Sample]) -> Result<(), Box<dyn std::error::Error>> {
    use plotters::prelude::*;
    let t_max = samples.last().map_or(1.0, |s| s.t_s).max(1.0);
    let pts = |f: &dyn Fn(&Sample) -> Option<f64>| -> Vec<(f64, f64)> {
        samples
            .iter()
            .filter_map(|s| Some((s.t_s, f(s)?)))
            .collect()
    };
    let shards = samples.iter().map(|s| s.items.len()).max().unwrap_or(0);
    let mut items: Vec<Series> = vec![
        (
            "server, all shards".into(),
            pts(&|s| s.items_total().map(|v| v as f64)),
        ),
        ("soak's count".into(), pts(&|s| Some(s.in_server as f64))),
    ];
    let mut queues: Vec<Series> = Vec::new();
    for i in 0..shards {
        items.push((
            format!("shard {i}"),
            pts(&|s| s.items.get(i).map(|&v| v as f64)),
        ));
        queues.push((
            format!("shard {i}"),
            pts(&|s| s.pending.get(i).map(|&v| v as f64)),
        ));
    }
    queues.push((
        "soak control backlog".into(),
        pts(&|s| Some(s.control as f64)),
    ));
    let panels: Vec<(&str, Vec<Series>)> = vec![
        (
            "RSS (MiB)",
            vec![("rss".into(), pts(&|s| s.rss_kb.map(|v| v as f64 / 1024.0)))],
        ),
        (
            "open file descriptors",
            vec![("fds".into(), pts(&|s| s.fds.map(|v| v as f64)))],
        ),
        (
            "CPU (% of one core)",
            vec![("cpu".into(), pts(&|s| s.cpu_pct))],
        ),
        ("items stored", items),
        ("queue depth (pending_cross_shard)", queues),
    ];
    let root = SVGBackend::new(path, (1000, 220 * panels.len() as u32 + 40)).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(title, ("sans-serif", 20))?;
    let areas = root.split_evenly((panels.len(), 1));
    for (area, (name, series)) in areas.iter().zip(&panels) {
        let y_max = series
            .iter()
            .flat_map(|(_, p)| p.iter().map(|q| q.1))
            .fold(0.0f64, f64::max)
            .max(1.0)
            * 1.1;
        let mut chart = ChartBuilder::on(area)
            .caption(*name, ("sans-serif", 15))
            .margin(8)
            .x_label_area_size(28)
            .y_label_area_size(60)
            .build_cartesian_2d(0f64..t_max, 0f64..y_max)?;
        chart
            .configure_mesh()
            .x_desc("s")
            .x_labels(10)
            .y_labels(5)
            .draw()?;
        for (i, (label, p)) in series.iter().enumerate() {
            let color = Palette99::pick(i).to_rgba();
            chart
                .draw_series(LineSeries::new(p.iter().copied(), color.stroke_width(2)))?
                .label(label.as_str())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
        }
        if series.len() > 1 {
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperRight)
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .draw()?;
        }
    }
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slope_of_a_line() {
        let pts: Vec<(f64, f64)> = (0..10).map(|i| (i as f64, 5.0 + 2.0 * i as f64)).collect();
        assert!((slope(&pts).unwrap() - 2.0).abs() < 1e-9);
        assert_eq!(slope(&pts[..2]), None);
    }

    #[test]
    fn draws_an_svg() {
        let samples: Vec<Sample> = (0..5)
            .map(|i| Sample {
                t_s: i as f64,
                rss_kb: Some(1000 + i),
                fds: Some(20),
                cpu_pct: Some(50.0),
                items: vec![i, i + 1],
                pending: vec![0, 1],
                traffic_done: i >= 3,
                ..Sample::default()
            })
            .collect();
        let dir = std::env::temp_dir().join(format!("soak-svg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("r.svg");
        write_svg(&p, "test", &samples).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(text.starts_with("<svg") && text.contains("items stored"));
        let r = resources(&samples, 1.0, Some(900), Some(10), Some(10));
        assert_eq!(r.rss_warm, Some((1.0, 1001)));
        assert_eq!(r.rss_traffic_end, Some(1003));
        assert_eq!(r.queue_max, vec![0, 1]);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
