//! The latency-by-percentile plot.
//!
//! One picture answers "how slow is the slow tail": latency (ms) against percentile on a log
//! scale of 1/(1-p), so 90%, 99%, 99.9%... are evenly spaced, as in HdrHistogram's plotter.
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
    let max_y = series
        .iter()
        .flat_map(|(_, p)| p.iter().map(|(_, v)| *v))
        .fold(0.0f64, f64::max)
        .max(0.001)
        * 1.1;
    let root = SVGBackend::new(path, (1000, 600)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(20)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d((1f64..max_x).log_scale(), 0f64..max_y)?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .y_desc("latency (ms)")
        .x_label_formatter(&|x| percentile_label(*x))
        .y_label_formatter(&|y| format!("{y:.3}"))
        .draw()?;
    for (i, (name, points)) in series.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let pts = points.iter().map(|&(q, v)| {
            let x = if q < 1.0 {
                (1.0 / (1.0 - q)).min(max_x)
            } else {
                max_x
            };
            (x, v)
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
}
