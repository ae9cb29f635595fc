#!/usr/bin/env python3
"""Tables for bench/e2e/compare.sh.

  summarize.py RUN_FOLDER           results.csv (one row per run) and results.md (medians over
                                    the repetitions, sipshard/Kamailio CPU ratios) in RUN_FOLDER
  summarize.py --one RUN_FOLDER NAME  one progress line for run NAME

RUN_FOLDER/runs.csv is written by compare.sh (server CPU figures per run); each run's
sipshard-load report is RUN_FOLDER/runs/NAME/summary.json.
"""
import csv
import json
import os
import statistics
import sys

FIRST = {"message": "message", "park-pull": "park"}


def metric(summary, name):
    for m in summary["metrics"]:
        if m["name"] == name:
            return m
    return None


def run_row(folder, r):
    s = json.load(open(os.path.join(folder, r["dir"], "summary.json")))
    tck = int(r["clk_tck"])
    cpu_s = int(r["cpu_ticks"]) / tck
    sched_s = int(r["cpu_ns"]) / 1e9
    sent = s["sent"]
    calls = s["calls"]
    first = metric(s, FIRST[r["scenario"]])
    pulled = metric(s, "pulled")
    win = float(r["window_s"])
    other = int(r["other_ticks"]) / tck
    row = {
        "server": r["server"],
        "scenario": r["scenario"],
        "rate": int(r["rate"]),
        "rep": int(r["rep"]),
        "cpu_s": cpu_s,
        "sched_cpu_s": sched_s,
        "window_s": win,
        "calls": calls,
        "requests": sent,
        "answered": s["answered"],
        "timeouts": s["timeouts"],
        "replies": sum(s["replies_by_code"].values()),
        "replies_by_code": " ".join(f"{k}={v}" for k, v in sorted(s["replies_by_code"].items())),
        "errors": " ".join(f"{k}={v}" for k, v in sorted(s["errors"].items())),
        "offered_rate": s["offered_rate"],
        "sent_rate": s["sent_rate"],
        "achieved_rate": s["achieved_rate"],
        "us_per_request": cpu_s * 1e6 / sent if sent else float("nan"),
        "us_per_call": cpu_s * 1e6 / calls if calls else float("nan"),
        # Past saturation most requests are dropped: CPU per request the server answered.
        "us_per_answered": cpu_s * 1e6 / s["answered"] if s["answered"] else float("nan"),
        "sched_us_per_request": sched_s * 1e6 / sent if sent else float("nan"),
        "server_cpu_util": cpu_s / win if win else float("nan"),
        # CPU time of every other process (not the server, not the load generator) in the
        # window, in CPUs: other users' builds and tests, kernel threads.
        "other_load": max(0, other) / win if win else 0.0,
        "p50_ms": first["p50_ms"],
        "p99_ms": first["p99_ms"],
        "p99_9_ms": first.get("p99_9_ms"),
        "p99_with_timeouts_ms": first.get("p99_with_timeouts_ms"),
        # Datagrams the kernel dropped at the server's socket (receive buffer full); older
        # run folders have no column.
        "drops": int(r["drops"]) if r.get("drops") not in (None, "") else "",
        # Times the server's threads were put on a CPU per request: about its wake-ups.
        "wakeups_per_request": int(r["slices"]) / sent if r.get("slices") not in (None, "") and sent else "",
        "pulled_p50_ms": pulled["p50_ms"] if pulled else "",
        "pulled_p99_ms": pulled["p99_ms"] if pulled else "",
        "loadavg": r["loadavg"],
        "dir": r["dir"],
    }
    return row


def load_rows(folder):
    with open(os.path.join(folder, "runs.csv")) as f:
        return list(csv.DictReader(f))


def fmt(v, nd=1):
    if v is None or v == "":
        return "-"
    if isinstance(v, float):
        if v != v:
            return "-"
        return f"{v:,.{nd}f}"
    return f"{v:,}" if isinstance(v, int) else str(v)


def one(folder, name):
    for r in load_rows(folder):
        if r["dir"] == f"runs/{name}":
            x = run_row(folder, r)
            extra = ""
            if x["scenario"] == "park-pull":
                extra = f" ({x['us_per_call']:.1f} us/pair)"
            print(
                f"{name:32s} cpu {x['cpu_s']:6.2f} s = {x['us_per_request']:6.1f} us/request{extra}"
                f" | achieved {x['achieved_rate']:8.0f}/s timeouts {x['timeouts']}"
                f" | p50 {x['p50_ms']:.3f} p99 {x['p99_ms']:.3f} ms"
                f" | other processes {x['other_load']:.2f} CPUs",
                flush=True,
            )
            return
    sys.exit(f"summarize.py: no run {name}")


def main(folder):
    rows = [run_row(folder, r) for r in load_rows(folder)]
    if not rows:
        sys.exit("summarize.py: no runs")
    keys = list(rows[0].keys())
    with open(os.path.join(folder, "results.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)

    groups = {}
    for x in rows:
        groups.setdefault((x["scenario"], x["rate"], x["server"]), []).append(x)

    def med(xs, k):
        vals = [x[k] for x in xs if x[k] != "" and x[k] is not None]
        return statistics.median(vals) if vals else None

    out = []
    meta = os.path.join(folder, "meta.txt")
    if os.path.exists(meta):
        out.append("```")
        out.extend(l.rstrip("\n") for l in open(meta) if not l.startswith("#"))
        out.append("```")
        out.append("")
    reps = max(x["rep"] for x in rows)
    out.append(f"Medians over {reps} repetition(s). CPU = server utime+stime in the measured "
               "window (after the warmup until the load generator exits), all its processes.")
    out.append("")
    scenarios = []
    for x in rows:
        if x["scenario"] not in scenarios:
            scenarios.append(x["scenario"])
    for sc in scenarios:
        out.append(f"### {sc}")
        out.append("")
        pp = sc == "park-pull"
        hdr = ["rate/s", "server", "CPU us/request"]
        if pp:
            hdr.append("CPU us/pair")
        hdr += ["CPU us/answered", "(schedstat us/req)", "server CPU %", "achieved/s", "replies", "timeouts",
                f"{FIRST[sc]} p50 ms", f"{FIRST[sc]} p99 ms", f"{FIRST[sc]} p99.9 ms", "socket drops", "wake-ups/request"]
        if pp:
            hdr += ["pulled p50 ms", "pulled p99 ms"]
        hdr.append("other processes, CPUs")
        out.append("| " + " | ".join(hdr) + " |")
        out.append("|" + "---|" * len(hdr))
        rates = sorted({x["rate"] for x in rows if x["scenario"] == sc})
        servers = []
        for x in rows:
            if x["server"] not in servers:
                servers.append(x["server"])
        for rate in rates:
            for sv in servers:
                xs = groups.get((sc, rate, sv))
                if not xs:
                    continue
                cells = [fmt(rate), sv, fmt(med(xs, "us_per_request"))]
                if pp:
                    cells.append(fmt(med(xs, "us_per_call")))
                cells += [
                    fmt(med(xs, "us_per_answered")),
                    fmt(med(xs, "sched_us_per_request")),
                    fmt(100 * med(xs, "server_cpu_util"), 0),
                    fmt(med(xs, "achieved_rate"), 0),
                    fmt(int(med(xs, "replies"))),
                    fmt(int(med(xs, "timeouts"))),
                    fmt(med(xs, "p50_ms"), 3),
                    fmt(med(xs, "p99_ms"), 3),
                    fmt(med(xs, "p99_9_ms"), 3),
                    fmt(med(xs, "drops"), 0),
                    fmt(med(xs, "wakeups_per_request"), 2),
                ]
                if pp:
                    cells += [fmt(med(xs, "pulled_p50_ms"), 3), fmt(med(xs, "pulled_p99_ms"), 3)]
                cells.append(fmt(med(xs, "other_load"), 2))
                out.append("| " + " | ".join(cells) + " |")
        out.append("")
        ours = [sv for sv in servers if sv != "kamailio"]
        if ours and "kamailio" in servers:
            out.append(f"sipshard CPU per request / Kamailio CPU per request ({sc}; target <= 0.5):")
            out.append("")
            out.append("| rate/s | server | us/req | Kamailio us/req | ratio | ratio per answered request |")
            out.append("|---|---|---|---|---|---|")
            for rate in rates:
                b = groups.get((sc, rate, "kamailio"))
                for sv in ours:
                    a = groups.get((sc, rate, sv))
                    if not a or not b:
                        continue
                    ua, ub = med(a, "us_per_request"), med(b, "us_per_request")
                    aa, ab = med(a, "us_per_answered"), med(b, "us_per_answered")
                    ratio = ua / ub if ub else float("nan")
                    ratio_ans = aa / ab if ab else float("nan")
                    out.append(f"| {fmt(rate)} | {sv} | {fmt(ua)} | {fmt(ub)} | {ratio:.2f} | {ratio_ans:.2f} |")
            out.append("")
    svgdir = os.path.join(folder, "svg")
    if os.path.isdir(svgdir):
        svgs = sorted(os.listdir(svgdir))
        if svgs:
            out.append("Spectra (first repetition, both servers overlaid): " +
                       ", ".join(f"svg/{s}" for s in svgs))
            out.append("")
    text = "\n".join(out)
    with open(os.path.join(folder, "results.md"), "w") as f:
        f.write(text + "\n")
    print(text)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--one":
        one(sys.argv[2], sys.argv[3])
    elif len(sys.argv) == 2 and not sys.argv[1].startswith("-"):
        main(sys.argv[1])
    else:
        sys.exit(__doc__)
