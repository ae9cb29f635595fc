#!/usr/bin/env python3
"""Tables for bench/e2e/sipp-crosscheck.sh.

  sipp_summary.py RUN_FOLDER            results.md in RUN_FOLDER (medians over repetitions)
  sipp_summary.py --one RUN_FOLDER NAME one line for run NAME ("... not sustained" when the
                                        rate was not sustained: the ramp stops there)

A SIPp run folder holds stat.csv (-trace_stat, cumulative columns read from the last row),
time.txt (user, sys, wall seconds, exit status of the tool) and, for latency runs,
*_rtt.csv (-trace_rtt: one response time per call, in whole milliseconds). A sipshard-load
run is its --out folder (summary.json, message.hgrm) plus NAME.time.txt beside it.
"""
import csv
import glob
import json
import math
import os
import statistics
import sys

SUSTAIN_ANSWERED = 0.97  # answered rate / offered rate
SUSTAIN_FAILED = 0.01  # failed (or timed out) / sent


def read_time(path):
    u, s, wall, rc = open(path).read().split()
    return float(u), float(s), float(wall), int(rc)


def sipp_stat(path):
    with open(path) as f:
        rows = list(csv.reader(f, delimiter=";"))
    head = rows[0]
    last = rows[-1]
    return {h: last[i] if i < len(last) else "" for i, h in enumerate(head)}


def hms_us(v):
    # SIPp's "HH:MM:SS:micro" -> milliseconds
    h, m, s, us = v.split(":")
    return ((int(h) * 60 + int(m)) * 60 + int(s)) * 1e3 + int(us) / 1e3


def pct(sorted_vals, p):
    if not sorted_vals:
        return float("nan")
    k = max(0, math.ceil(p / 100 * len(sorted_vals)) - 1)
    return sorted_vals[k]


def hgrm_fraction_le(path, ms):
    """Fraction of values <= ms from a .hgrm percentile distribution."""
    best = 0.0
    for line in open(path):
        parts = line.split()
        if len(parts) != 4 or line.startswith("#"):
            continue
        try:
            value, p = float(parts[0]), float(parts[1])
        except ValueError:
            continue
        if value <= ms:
            best = max(best, p)
    return best


def run(folder, kind, tool, rate, rel):
    d = os.path.join(folder, rel)
    x = {"kind": kind, "tool": tool, "rate": rate}
    if tool == "sipp":
        st = sipp_stat(os.path.join(d, "stat.csv"))
        u, s, wall, rc = read_time(os.path.join(d, "time.txt"))
        out = int(st["OutgoingCall(C)"])
        ok = int(st["SuccessfulCall(C)"])
        failed = int(st["FailedCall(C)"])
        sent_rate = float(st["CallRate(C)"])
        x.update(
            sent=out,
            answered=ok,
            failed=out - ok if out >= ok else failed,
            sent_rate=sent_rate,
            achieved=sent_rate * ok / out if out else 0.0,
            cpu_s=u + s,
            wall_s=wall,
            mean_ms=hms_us(st["ResponseTime1(C)"]) if st.get("ResponseTime1(C)") else float("nan"),
        )
        rtt = glob.glob(os.path.join(d, "*_rtt.csv"))
        if rtt:
            vals = []
            for path in rtt:
                with open(path) as f:
                    next(f, None)
                    for line in f:
                        p = line.strip().split(";")
                        if len(p) >= 2:
                            try:
                                vals.append(float(p[1]))
                            except ValueError:
                                pass
            vals.sort()
            x.update(
                n=len(vals),
                p50=pct(vals, 50),
                p90=pct(vals, 90),
                p99=pct(vals, 99),
                max=vals[-1] if vals else float("nan"),
                le0=sum(1 for v in vals if v <= 0) / len(vals) if vals else float("nan"),
                le1=sum(1 for v in vals if v <= 1) / len(vals) if vals else float("nan"),
            )
            buckets = [(h, st[h]) for h in st if h.startswith("ResponseTimeRepartition1_")]
            x["repartition"] = " ".join(f"{h.split('_', 1)[1]}ms:{v}" for h, v in buckets if v not in ("", "0"))
    else:
        sj = json.load(open(os.path.join(d, "summary.json")))
        u, s, wall, rc = read_time(d + ".time.txt")
        m = next(m for m in sj["metrics"] if m["name"] == "message")
        x.update(
            sent=sj["sent"],
            answered=sj["answered"],
            failed=sj["timeouts"],
            sent_rate=sj["sent_rate"],
            achieved=sj["achieved_rate"],
            cpu_s=u + s,
            wall_s=wall,
            mean_ms=m["mean_ms"],
            n=m["count"],
            p50=m["p50_ms"],
            p90=m["p90_ms"],
            p99=m["p99_ms"],
            max=m["max_ms"],
        )
        hg = os.path.join(d, "message.hgrm")
        if os.path.exists(hg):
            x["le1"] = hgrm_fraction_le(hg, 1.0)
    x["fail_frac"] = x["failed"] / x["sent"] if x["sent"] else 1.0
    x["us_per_call"] = x["cpu_s"] * 1e6 / x["sent"] if x["sent"] else float("nan")
    x["cpu_util"] = x["cpu_s"] / x["wall_s"] if x["wall_s"] else float("nan")
    x["sustained"] = (x["achieved"] >= SUSTAIN_ANSWERED * rate and x["fail_frac"] <= SUSTAIN_FAILED)
    return x


def rows(folder):
    out = []
    with open(os.path.join(folder, "runs.csv")) as f:
        for r in csv.DictReader(f):
            x = run(folder, r["kind"], r["tool"], int(r["rate"]), r["dir"])
            x["rep"] = int(r["rep"])
            x["name"] = os.path.basename(r["dir"])
            out.append(x)
    return out


def line(x):
    s = (f"{x['name']:30s} sent {x['sent_rate']:9.0f}/s answered {x['achieved']:9.0f}/s "
         f"failed {100 * x['fail_frac']:5.1f}% | tool CPU {100 * x['cpu_util']:4.0f}% "
         f"{x['us_per_call']:6.2f} us/call")
    if x["kind"] == "latency":
        s += f" | p50 {x['p50']:.3f} p90 {x['p90']:.3f} p99 {x['p99']:.3f} ms"
    elif not x["sustained"]:
        s += " | not sustained"
    return s


def main(folder):
    xs = rows(folder)
    med = statistics.median
    out = []
    meta = os.path.join(folder, "meta.txt")
    if os.path.exists(meta):
        out += ["```"] + [l.rstrip("\n") for l in open(meta) if not l.startswith("#")] + ["```", ""]
    reps = max(x["rep"] for x in xs)
    out.append(f"Capacity ramp (each tool on one core; sustained = answered >= "
               f"{SUSTAIN_ANSWERED:.0%} of offered and <= {SUSTAIN_FAILED:.0%} failed/timed out):")
    out.append("")
    out.append("| tool | rep | offered/s | sent/s | answered/s | failed % | tool CPU % | tool CPU us/call | sustained |")
    out.append("|---|---|---|---|---|---|---|---|---|")
    best = {}
    peak = {}
    for x in xs:
        if x["kind"] != "capacity":
            continue
        out.append(f"| {x['tool']} | {x['rep']} | {x['rate']:,} | {x['sent_rate']:,.0f} | "
                   f"{x['achieved']:,.0f} | {100 * x['fail_frac']:.1f} | {100 * x['cpu_util']:.0f} | "
                   f"{x['us_per_call']:.2f} | {'yes' if x['sustained'] else 'no'} |")
        k = (x["tool"], x["rep"])
        if x["sustained"]:
            best[k] = max(best.get(k, 0), x["rate"])
        peak[k] = max(peak.get(k, 0), x["achieved"])
    out.append("")
    summ = {}
    for tool in ("sipp", "sipshard-load"):
        b = [v for (t, _), v in best.items() if t == tool]
        p = [v for (t, _), v in peak.items() if t == tool]
        c = [x["us_per_call"] for x in xs if x["tool"] == tool and x["kind"] == "capacity" and x["sustained"]
             and x["rate"] == best.get((tool, x["rep"]))]
        summ[tool] = (med(b) if b else 0, med(p) if p else 0, med(c) if c else float("nan"))
    out.append(f"Medians over {reps} repetition(s):")
    out.append("")
    out.append("| tool | highest sustained rate/s | peak answered/s | tool CPU us/call at that rate | calls/s per tool CPU-second (1e6 / us per call) |")
    out.append("|---|---|---|---|---|")
    for tool, (b, p, c) in summ.items():
        out.append(f"| {tool} | {b:,.0f} | {p:,.0f} | {c:.2f} | {1e6 / c if c == c and c else float('nan'):,.0f} |")
    out.append("")
    (sb, sp, sc), (lb, lp, lc) = summ["sipp"], summ["sipshard-load"]
    if sb:
        out.append(f"sipshard-load / SIPp: highest sustained rate {lb / sb:.2f}x, peak answered "
                   f"{lp / sp if sp else float('nan'):.2f}x (target: >= 5x the rate).")
        out.append("")
    rates = sorted({x["rate"] for x in xs if x["kind"] == "capacity"})
    if rates:
        out.append("Tool CPU per call at the same offered rate (medians; the server is the same):")
        out.append("")
        out.append("| offered/s | SIPp us/call | sipshard-load us/call | SIPp answered/s | sipshard-load answered/s |")
        out.append("|---|---|---|---|---|")
        for r in rates:
            cells = []
            for k in ("us_per_call", "achieved"):
                for tool in ("sipp", "sipshard-load"):
                    v = [x[k] for x in xs if x["kind"] == "capacity" and x["tool"] == tool and x["rate"] == r]
                    cells.append((f"{med(v):.2f}" if k == "us_per_call" else f"{med(v):,.0f}") if v else "-")
            out.append(f"| {r:,} | " + " | ".join(cells) + " |")
        out.append("")
    lat = [x for x in xs if x["kind"] == "latency"]
    if lat:
        rate = lat[0]["rate"]
        out.append(f"Latency at {rate:,}/s (medians over repetitions; SIPp's values are whole "
                   "milliseconds, i.e. 0 = under 1 ms):")
        out.append("")
        out.append("| tool | answered/s | failed | tool CPU us/call | mean ms | p50 ms | p90 ms | p99 ms | max ms | <= 1 ms |")
        out.append("|---|---|---|---|---|---|---|---|---|---|")
        for tool in ("sipp", "sipshard-load"):
            t = [x for x in lat if x["tool"] == tool]
            if not t:
                continue
            g = lambda k: med([x[k] for x in t if k in x])
            out.append(f"| {tool} | {g('achieved'):,.0f} | {int(g('failed'))} | {g('us_per_call'):.2f} | "
                       f"{g('mean_ms'):.3f} | {g('p50'):.3f} | {g('p90'):.3f} | {g('p99'):.3f} | "
                       f"{g('max'):.3f} | {100 * g('le1'):.2f}% |")
        rp = [x.get("repartition") for x in lat if x["tool"] == "sipp" and x.get("repartition")]
        if rp:
            out.append("")
            out.append("SIPp ResponseTimeRepartition1 (calls per bucket, upper bound ms), per repetition: " +
                       "; ".join(rp))
        out.append("")
    text = "\n".join(out)
    open(os.path.join(folder, "results.md"), "w").write(text + "\n")
    print(text)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--one":
        for x in rows(sys.argv[2]):
            if x["name"] == sys.argv[3]:
                print(line(x), flush=True)
                break
        else:
            sys.exit(f"sipp_summary.py: no run {sys.argv[3]}")
    elif len(sys.argv) == 2 and not sys.argv[1].startswith("-"):
        main(sys.argv[1])
    else:
        sys.exit(__doc__)
