//! The latency-by-percentile plot.
//!
//! One picture answers "how slow is the slow tail": latency (ms) against percentile on a log
//! scale of 1/(1-p), so 90%, 99%, 99.9%... are evenly spaced, as in HdrHistogram's plotter.
//! The latency axis is logarithmic too, from the decade below the fastest value to the decade
//! above the slowest: a spectrum spans orders of magnitude (0.1 ms at the median, 300 ms in a
//! stall's tail), and on a linear axis the tail flattens everything below it onto the floor.
//! Drawn with `plotters`, SVG backend only (no fonts or bitmap code to build): it is small,
//! builds in seconds here, and handles log axes and legends for us.

use plotters::prelude::*;
use std::io;
use std::path::Path;

/// Percentile axis label for x = 1/(1-p): 10 -> "90%", 1000 -> "99.9%".
pub fn percentile_label(x: f64) -> String {
    if x <= 1.0 {
        return "0%".into();
    }
    let p = 100.0 * (1.0 - 1.0 / x);
    let decimals = (x.log10().ceil() as i32 - 2).max(0) as usize;
    format!("{p:.decimals$}%")
}

/// The smallest latency drawn, ms: the histograms' resolution (1 µs). A log axis has no 0, so
/// a value of 0 (a `.hgrm` from elsewhere) is drawn here.
pub const FLOOR_MS: f64 = 0.001;

/// Latency axis label, ms, without trailing zeros: 0.001, 0.2, 1, 15, 1000.
pub fn ms_label(y: f64) -> String {
    let s = format!("{y:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    s.to_string()
}

/// The latency axis, ms: whole decades around the values (at least one decade).
pub fn latency_range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values.fold((f64::INFINITY, 0.0f64), |(lo, hi), v| {
        (lo.min(v.max(FLOOR_MS)), hi.max(v))
    });
    if !lo.is_finite() {
        return (FLOOR_MS, 1.0);
    }
    let lo = 10f64.powf(lo.log10().floor()).max(FLOOR_MS);
    let hi = 10f64.powf(hi.max(lo).log10().ceil());
    (lo, if hi > lo { hi } else { lo * 10.0 })
}

/// Labelled latency ticks, ms: 1, 2 and 5 of each decade over a range of up to 4 decades
/// (plotters' own log ticks label only the decades, so 0.1..1 ms would show two numbers), the
/// decades alone beyond that, where 1-2-5 labels would crowd each other.
pub fn latency_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let decades = (hi / lo).log10().round().max(0.0) as i32;
    let steps: &[f64] = if decades <= 4 {
        &[1.0, 2.0, 5.0]
    } else {
        &[1.0]
    };
    let first = lo.log10().round() as i32;
    let mut ticks = Vec::new();
    for d in first..=first + decades {
        for s in steps {
            // Rounded to the microsecond so labels and comparisons stay exact.
            let v = (s * 10f64.powi(d) * 1e3).round() / 1e3;
            if v >= lo && v <= hi {
                ticks.push(v);
            }
        }
    }
    ticks
}

/// Light grid lines, ms: 1 to 9 of each decade.
fn latency_grid(lo: f64, hi: f64) -> Vec<f64> {
    let first = lo.log10().round() as i32;
    let last = hi.log10().round() as i32;
    (first..last)
        .flat_map(|d| (1..10).map(move |k| f64::from(k) * 10f64.powi(d)))
        .filter(|v| *v >= lo && *v <= hi)
        .collect()
}

/// Writes an SVG with one line per series of (quantile, ms) points.
pub fn write_spectrum(
    path: &Path,
    title: &str,
    series: &[(String, Vec<(f64, f64)>)],
) -> io::Result<()> {
    draw(path, title, series)
        .map_err(|e| io::Error::other(format!("drawing {}: {e}", path.display())))
}

fn draw(
    path: &Path,
    title: &str,
    series: &[(String, Vec<(f64, f64)>)],
) -> Result<(), Box<dyn std::error::Error>> {
    let most = series.iter().map(|(_, p)| p.len()).max().unwrap_or(0);
    // Enough decades to show the tail the data has (each point is 1/(1-q) of its quantile).
    let tail = series
        .iter()
        .flat_map(|(_, p)| p.iter())
        .filter(|(q, _)| *q < 1.0)
        .map(|(q, _)| 1.0 / (1.0 - q))
        .fold(100.0f64, f64::max);
    let max_x = 10f64.powf(tail.log10().ceil()).clamp(100.0, 1e7);
    let (min_y, max_y) = latency_range(series.iter().flat_map(|(_, p)| p.iter().map(|(_, v)| *v)));
    let root = SVGBackend::new(path, (1000, 600)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(20)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(
            (1f64..max_x).log_scale(),
            (min_y..max_y)
                .log_scale()
                .with_key_points(latency_ticks(min_y, max_y))
                .with_light_points(latency_grid(min_y, max_y)),
        )?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .y_desc("latency (ms)")
        .x_label_formatter(&|x| percentile_label(*x))
        .y_label_formatter(&|y| ms_label(*y))
        .draw()?;
    for (i, (name, points)) in series.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let pts = points.iter().map(|&(q, v)| {
            let x = if q < 1.0 {
                (1.0 / (1.0 - q)).min(max_x)
            } else {
                max_x
            };
            (x, v.max(min_y))
        });
        chart
            .draw_series(LineSeries::new(pts, color.stroke_width(2)))?
            .label(name.as_str())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    if most > 0 {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()?;
    }
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels() {
        assert_eq!(percentile_label(1.0), "0%");
        assert_eq!(percentile_label(2.0), "50%");
        assert_eq!(percentile_label(10.0), "90%");
        assert_eq!(percentile_label(100.0), "99%");
        assert_eq!(percentile_label(1000.0), "99.9%");
        assert_eq!(percentile_label(200.0), "99.5%");
    }

    #[test]
    fn latency_axis_is_whole_decades() {
        assert_eq!(ms_label(0.001), "0.001");
        assert_eq!(ms_label(0.2), "0.2");
        assert_eq!(ms_label(1.0), "1");
        assert_eq!(ms_label(1000.0), "1000");
        let r = |v: &[f64]| latency_range(v.iter().copied());
        assert_eq!(r(&[0.15, 0.2, 340.0]), (0.1, 1000.0));
        assert_eq!(r(&[0.0, 0.5]), (0.001, 1.0));
        assert_eq!(r(&[1.0]), (1.0, 10.0));
        assert_eq!(r(&[]), (0.001, 1.0));
        assert_eq!(latency_ticks(0.1, 1.0), [0.1, 0.2, 0.5, 1.0]);
        assert_eq!(latency_ticks(0.001, 10.0).len(), 13);
        assert_eq!(
            latency_ticks(0.001, 1000.0),
            [0.001, 0.01, 0.1, 1.0, 10.0, 100.0, 1000.0]
        );
    }
}
