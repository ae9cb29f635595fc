//! HdrHistogram's percentile-distribution text (`.hgrm`), written and read.
//!
//! Both ends of a measurement write this format: `sipshard-load` for what a client saw, the
//! server for what a shard saw. One writer and one reader, here, keep the two files
//! comparable line for line, so an operator can overlay them (`sipshard-load report`). The
//! text is what HdrHistogram's `outputPercentileDistribution` and wrk2 print, so HdrHistogram's
//! online plotter and `hdr-plot` read it too. Nothing here does I/O of its own: the caller
//! passes the sink.

use hdrhistogram::Histogram;
use std::io::{self, Write};

/// Writes `h` in HdrHistogram's percentile-distribution text format (`outputPercentileDistribution`
/// with 5 ticks per half distance), values divided by `scale` (1000: microseconds to ms).
pub fn write_hgrm(h: &Histogram<u64>, scale: f64, w: &mut dyn Write) -> io::Result<()> {
    writeln!(
        w,
        "{:>12} {:>14} {:>10} {:>14}\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    )?;
    let mut total = 0u64;
    if !h.is_empty() {
        for v in h.iter_quantiles(5) {
            total += v.count_since_last_iteration();
            let q = v.quantile_iterated_to();
            let value = v.value_iterated_to() as f64 / scale;
            if q < 1.0 {
                writeln!(
                    w,
                    "{value:12.3} {q:2.12} {total:10} {:14.2}",
                    1.0 / (1.0 - q)
                )?;
            } else {
                writeln!(w, "{value:12.3} {q:1.12} {total:10}")?;
            }
        }
    }
    let (mean, sd, max) = if h.is_empty() {
        (0.0, 0.0, 0.0)
    } else {
        (h.mean() / scale, h.stdev() / scale, h.max() as f64 / scale)
    };
    let sub_buckets = (2.0 * 10f64.powi(i32::from(h.sigfig())))
        .log2()
        .ceil()
        .exp2() as u64;
    writeln!(w, "#[Mean    = {mean:12.3}, StdDeviation   = {sd:12.3}]")?;
    writeln!(
        w,
        "#[Max     = {max:12.3}, Total count    = {:12}]",
        h.len()
    )?;
    writeln!(
        w,
        "#[Buckets = {:12}, SubBuckets     = {sub_buckets:12}]",
        h.buckets()
    )?;
    Ok(())
}

/// One data line of a `.hgrm` file.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HgrmRow {
    /// Value, in the unit the writer scaled to (ms in sipshard's files).
    pub value: f64,
    /// Quantile, 0 to 1.
    pub quantile: f64,
    /// Values at or below this one.
    pub total_count: u64,
}

/// Reads the data lines of a `.hgrm` file (ours, wrk2's, HdrHistogram's).
pub fn parse_hgrm(text: &str) -> Result<Vec<HgrmRow>, String> {
    let mut rows = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let l = line.trim();
        if l.is_empty() || l.starts_with('#') || l.starts_with("Value") {
            continue;
        }
        let f: Vec<&str> = l.split_whitespace().collect();
        if f.len() < 3 {
            return Err(format!("line {}: expected at least 3 columns", n + 1));
        }
        let bad = |what: &str| format!("line {}: bad {what}", n + 1);
        rows.push(HgrmRow {
            value: f[0].parse().map_err(|_| bad("value"))?,
            quantile: f[1].parse().map_err(|_| bad("percentile"))?,
            total_count: f[2].parse().map_err(|_| bad("total count"))?,
        });
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn micros() -> Histogram<u64> {
        Histogram::new_with_bounds(1, 3_600_000_000, 3).unwrap()
    }

    #[test]
    fn round_trips_and_is_monotonic() {
        let mut h = micros();
        for v in 1..=10_000u64 {
            h.record(v).unwrap();
        }
        let mut out = Vec::new();
        write_hgrm(&h, 1000.0, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("       Value     Percentile TotalCount 1/(1-Percentile)\n\n"));
        assert!(text.contains("#[Mean    = "));
        assert!(text.contains(", Total count    =        10000]"));
        assert!(text.contains("#[Buckets = "));
        let rows = parse_hgrm(&text).unwrap();
        assert!(rows.len() > 20);
        for w in rows.windows(2) {
            assert!(w[0].value <= w[1].value);
            assert!(w[0].quantile <= w[1].quantile);
            assert!(w[0].total_count <= w[1].total_count);
        }
        let last = rows.last().unwrap();
        assert_eq!(last.quantile, 1.0);
        assert_eq!(last.total_count, 10_000);
        // The median of 1..=10000 µs, in ms, within the histogram's 3 significant digits.
        let median = rows.iter().find(|r| r.quantile >= 0.5).unwrap();
        assert!((median.value - 5.0).abs() <= 0.01, "{median:?}");
    }

    #[test]
    fn an_empty_histogram_has_only_the_footer() {
        let mut out = Vec::new();
        write_hgrm(&micros(), 1000.0, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(parse_hgrm(&text).unwrap().is_empty());
        assert!(text.contains("Total count    =            0]"));
    }

    #[test]
    fn reads_hdrhistogram_output_and_refuses_garbage() {
        // As HdrHistogram's Java outputPercentileDistribution prints it.
        let java = "       Value     Percentile TotalCount 1/(1-Percentile)\n\n\
                    \x20      0.147 0.000000000000          1           1.00\n\
                    \x20      0.170 0.500000000000        515           2.00\n\
                    \x20      1.006 1.000000000000       1000\n\
                    #[Mean    =        0.171, StdDeviation   =        0.035]\n";
        let rows = parse_hgrm(java).unwrap();
        assert_eq!(rows.len(), 3);
        assert_eq!(
            rows[1],
            HgrmRow {
                value: 0.170,
                quantile: 0.5,
                total_count: 515
            }
        );
        assert!(parse_hgrm("0.1 0.5\n").unwrap_err().contains("line 1"));
        assert!(parse_hgrm("x 0.5 3\n").unwrap_err().contains("bad value"));
    }
}
