#!/usr/bin/env bash
# bench/e2e/gateway.sh: the SIP MESSAGE <-> MSRP gateway under load, one shard, both directions,
# with sipshard-load playing both far ends (docs/loadgen.md, "The gateway scenarios"). Builds
# nothing: give it the folder that holds sipshard and sipshard-load.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
# shellcheck source=bench/e2e/lib.sh
. "$HERE/lib.sh"

usage() {
    cat <<EOF
Usage: bench/e2e/gateway.sh --bin DIR [options]

For each repetition, scenario and rate: start a fresh \`sipshard serve\` (DIR/sipshard) with
docs/examples/msrp-gateway.toml, one shard, 4 MiB socket buffers, pinned to one CPU; run
DIR/sipshard-load (one thread, pinned to the other CPU) with --scenario SCENARIO: SESSIONS
sessions set up first, then WARMUP unmeasured and DURATION measured at RATE messages/s. Records
the delivered rate, the delivery latency (p50/p99/p99.9), the reply latency (p99), the server's
CPU per message (scheduler on-CPU time of all its threads over the run, divided by the messages
its gateway handled: set-up, warm-up and measured, from gw.stats), each process's busiest
second of CPU (sampled every 100 ms; the side at ~100% is the limit), everyone else's CPU over
the run (a shared machine's other users, in % of one CPU: runs where it is high are suspect),
and UDP drops (the server socket's drop counter
from \`ss -uam\`, and /proc/net/snmp RcvbufErrors machine-wide). Prints one line per run and a
table of medians.

Why a fresh server per run, and why runs are bounded in messages: sipshard keeps every UDP
server transaction for 64*T1 = 32 s after its answer (timer J) and a shard holds at most
[gateway] max_transactions of them (500,000 by default), so at N MESSAGEs/s the table fills
after max_transactions / N s and the gateway answers 503 from then on (docs/benchmarks.md, "The
gateway (issue 9)"). A run measures capacity, not that limit: it stays under MAX_MESSAGES.

Options (environment variable in brackets):
  --bin DIR            folder with sipshard and sipshard-load   [BIN]
  --scenarios "A B"    sipshard-load scenarios         [SCENARIOS] (gw-sip-to-msrp gw-msrp-to-sip)
  --rates "R..."       offered messages/s              [RATES] (5000 10000 20000 40000)
  --reps N             repetitions (interleaved)       [REPS] (3)
  --duration S         measured seconds at most        [DURATION] (3)
  --warmup S           unmeasured seconds first        [WARMUP] (0.5)
  --max-messages N     warm-up + measured messages per run at most; DURATION is cut to fit
                       [MAX_MESSAGES] (400000)
  --sessions N         sessions (user pairs)           [SESSIONS] (100)
  --body-size N        message body bytes              [BODY_SIZE] (64)
  --timeout D          sipshard-load --timeout         [TIMEOUT] (2s)
  --out DIR            keep every run's report folder and the table here (default: a temp dir)
  --no-pin             pin nothing (automatic with a single allowed CPU)
  -h, --help           this text
EOF
}

BIN=${BIN:-} SCENARIOS=${SCENARIOS:-"gw-sip-to-msrp gw-msrp-to-sip"}
RATES=${RATES:-"5000 10000 20000 40000"} REPS=${REPS:-3} DURATION=${DURATION:-3}
WARMUP=${WARMUP:-0.5} MAX_MESSAGES=${MAX_MESSAGES:-400000} SESSIONS=${SESSIONS:-100}
BODY_SIZE=${BODY_SIZE:-64} TIMEOUT=${TIMEOUT:-2s} OUTDIR="" PIN=1
while [ $# -gt 0 ]; do
    case $1 in
        --bin) BIN=$2; shift 2 ;;
        --scenarios) SCENARIOS=$2; shift 2 ;;
        --rates) RATES=$2; shift 2 ;;
        --reps) REPS=$2; shift 2 ;;
        --duration) DURATION=$2; shift 2 ;;
        --warmup) WARMUP=$2; shift 2 ;;
        --max-messages) MAX_MESSAGES=$2; shift 2 ;;
        --sessions) SESSIONS=$2; shift 2 ;;
        --body-size) BODY_SIZE=$2; shift 2 ;;
        --timeout) TIMEOUT=$2; shift 2 ;;
        --out) OUTDIR=$2; shift 2 ;;
        --no-pin) PIN=0; shift ;;
        -h | --help) usage; exit 0 ;;
        *) echo "gateway.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
    esac
done
[ -n "$BIN" ] && [ -x "$BIN/sipshard" ] && [ -x "$BIN/sipshard-load" ] || { usage >&2; exit 2; }
command -v ss >/dev/null || { echo "gateway.sh: ss (iproute2) not found" >&2; exit 1; }
pin_cores gateway.sh sipshard sipshard-load
CONFIG=$ROOT/docs/examples/msrp-gateway.toml
if [ -z "$OUTDIR" ]; then
    OUTDIR=$(mktemp -d)
    trap 'rm -rf "$OUTDIR"' EXIT
fi
mkdir -p "$OUTDIR"
RESULTS=$OUTDIR/results.tsv
: >"$RESULTS"
echo "# $PINNING; $SESSIONS sessions, warm-up ${WARMUP}s, measured <= ${DURATION}s and <= $MAX_MESSAGES messages per run, $REPS repetitions"

SERVER_PID=""
cleanup_server() { stop_pid "$SERVER_PID"; SERVER_PID=""; }
trap 'cleanup_server' INT TERM

# start_server LOG: a fresh one-shard gateway; sets SERVER_PID, SIP_PORT, CONTROL.
start_server() {
    local log=$1 i
    : >"$log"
    "${SPIN[@]}" "$BIN/sipshard" serve -c "$CONFIG" --port 0 --msrp-listen 127.0.0.1:0 \
        --control 127.0.0.1:0 --shards 1 "${SHCORES[@]}" --socket-recv-buffer 4MiB \
        --socket-send-buffer 4MiB >"$log" 2>&1 &
    SERVER_PID=$!
    for i in $(seq 100); do
        grep -q '^sipshard: ready' "$log" && break
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.1
    done
    grep -q '^sipshard: ready' "$log" || { echo "gateway.sh: the server did not start:" >&2; cat "$log" >&2; exit 1; }
    SIP_PORT=$(sed -n 's/^sipshard: listening udp 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$log" | head -1)
    CONTROL=$(sed -n 's|^sipshard: control http://\(.*\)$|\1|p' "$log" | head -1)
}

# Drops counted on the server's UDP socket (the `d` of ss's skmem).
udp_drops() {
    ss -uamn "sport = :$1" | sed -n 's/.*,d\([0-9]*\)).*/\1/p' | head -1
}
# Busy clock ticks of the whole machine (all CPUs, everything but idle and iowait).
busy_ticks() {
    awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9; exit }' /proc/stat
}
rcvbuf_errors() {
    awk '/^Udp:/ { if (h) { print $6; exit } h = 1 }' /proc/net/snmp
}

# sample_cpu SERVER_PID OUT STOPFILE: every 100 ms, the on-CPU time (scheduler ns, all threads)
# of the server and of the running sipshard-load, until STOPFILE exists; then writes to OUT the
# busiest one-second window of each, in percent of one CPU: which side was the limit.
sample_cpu() {
    python3 - "$@" <<'EOF2'
import glob, os, sys, time
server, out, stop = sys.argv[1:]
def ns(pid):
    t = 0
    for f in glob.glob(f"/proc/{pid}/task/*/schedstat"):
        try:
            t += int(open(f).read().split()[0])
        except (OSError, ValueError, IndexError):
            pass
    return t
def load_pid():
    for c in glob.glob("/proc/[0-9]*/comm"):
        try:
            if open(c).read().strip() == "sipshard-load":
                return c.split("/")[2]
        except OSError:
            pass
    return None
samples, lp = [], None
while not os.path.exists(stop):
    lp = lp or load_pid()
    samples.append((time.monotonic(), ns(server), ns(lp) if lp else 0))
    time.sleep(0.1)
def peak(k):
    best = 0.0
    for i, a in enumerate(samples):
        for b in samples[i + 1:]:
            if b[0] - a[0] >= 1.0:
                if a[k] and b[k] >= a[k]:
                    best = max(best, (b[k] - a[k]) / 1e9 / (b[0] - a[0]) * 100)
                break
    return round(best)
open(out, "w").write(f"{peak(1)} {peak(2)}\n")
EOF2
}

for rep in $(seq "$REPS"); do
    for sc in $SCENARIOS; do
        for rate in $RATES; do
            run=$OUTDIR/$sc-$rate-$rep
            mkdir -p "$run"
            dur=$(awk -v d="$DURATION" -v w="$WARMUP" -v m="$MAX_MESSAGES" -v r="$rate" \
                'BEGIN { x = m / r - w; if (x > d) x = d; if (x < 0.5) x = 0.5; printf "%.2f", x }')
            start_server "$run/server.log"
            d0=$(udp_drops "$SIP_PORT")
            e0=$(rcvbuf_errors)
            b0=$(busy_ticks)
            read -r t0 n0 _ <<<"$(cpu_snapshot "$SERVER_PID")"
            rm -f "$run/stop"
            sample_cpu "$SERVER_PID" "$run/peak" "$run/stop" &
            sampler=$!
            run_timed "$run/loadgen.time" "${LPIN[@]}" "$BIN/sipshard-load" "127.0.0.1:$SIP_PORT" \
                --scenario "$sc" --sessions "$SESSIONS" --rate "$rate" --warmup "${WARMUP}s" \
                --duration "${dur}s" --timeout "$TIMEOUT" --body-size "$BODY_SIZE" --threads 1 \
                "${LCORES[@]}" --out "$run/report" -q >"$run/loadgen.out" 2>"$run/loadgen.err" || true
            read -r t1 n1 _ <<<"$(cpu_snapshot "$SERVER_PID")"
            b1=$(busy_ticks)
            touch "$run/stop"
            wait "$sampler" || true
            d1=$(udp_drops "$SIP_PORT")
            e1=$(rcvbuf_errors)
            "$BIN/sipshard" ctl --control "$CONTROL" gw.stats >"$run/gw.stats.json" 2>/dev/null || true
            cleanup_server
            if [ ! -f "$run/report/summary.json" ]; then
                echo "rep $rep $sc $rate/s: no report ($(tail -1 "$run/loadgen.err"))"
                continue
            fi
            python3 - "$run" "$sc" "$rate" "$rep" "$((n1 - n0))" "$((d1 - d0))" "$((e1 - e0))" \
                "$SESSIONS" "$((b1 - b0 - t1 + t0))" "$(getconf CLK_TCK)" >>"$RESULTS" <<'EOF'
import json, sys
run, sc, rate, rep, ns, drops, rcvbuf, sessions, others, hz = sys.argv[1:]
s = json.load(open(f"{run}/report/summary.json"))
user, sys_, wall, rc = open(f"{run}/loadgen.time").read().split()
m = {x["name"]: x for x in s["metrics"]}
d = m["delivery"]
reply = m.get("reply") or m.get("msrp-reply")
# Messages the gateway handled (set-up and warm-up included; not those the kernel dropped).
try:
    g = json.load(open(f"{run}/gw.stats.json"))
    msgs = g["gw_sip_to_msrp"] + g["gw_msrp_to_sip"]
except (OSError, ValueError, KeyError):
    msgs = s["calls"] + s["warmup_calls"] + int(sessions)
try:
    peak_server, peak_load = open(f"{run}/peak").read().split()
except (OSError, ValueError):
    peak_server = peak_load = "-"
errors = sum(s["errors"].values())
# Everyone else's CPU over the run, in % of one CPU: other users' builds on a shared machine.
others = max(0.0, int(others) / int(hz) - float(user) - float(sys_)) / float(wall) * 100
row = [sc, rate, rep, round(s["achieved_rate"]), s["calls"], d["timeouts"], d["p50_ms"], d["p99_ms"],
       d["p99_9_ms"], reply["p99_ms"], round(int(ns) / 1e3 / max(msgs, 1), 2),
       peak_server, peak_load, drops, rcvbuf, errors, s["send_lag_ms"]["p99"], round(others),
       round(s["sent_rate"])]
print("\t".join(str(x) for x in row))
EOF
            tail -1 "$RESULTS" | awk -F'\t' '{ printf "rep %s %s %s/s: delivered %s/s, timeouts %s, delivery p50/p99/p99.9 %s/%s/%s ms, reply p99 %s ms, server %s us/msg, peak CPU server %s%% load %s%%, drops server %s all %s, errors %s, send lag p99 %s ms, others %s%%, sent %s/s\n", $3, $1, $2, $4, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19 }'
        done
    done
done

echo
python3 - "$RESULTS" <<'EOF'
import statistics, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
groups = {}
for r in rows:
    groups.setdefault((r[0], int(r[1])), []).append(r)
cols = [("sent/s", 18), ("delivered/s", 3), ("delivery p50 ms", 6), ("p99", 7), ("p99.9", 8), ("reply p99", 9),
        ("server µs/msg", 10), ("server peak CPU %", 11), ("load peak CPU %", 12), ("server drops", 13),
        ("timeouts", 5), ("errors", 15), ("others CPU %", 17)]
print("medians of", len(rows), "runs")
print("| scenario | offered/s | " + " | ".join(c for c, _ in cols) + " |")
print("|---|---|" + "---|" * len(cols))
for (sc, rate), rs in sorted(groups.items()):
    med = [statistics.median(float(r[i]) for r in rs) for _, i in cols]
    cells = [f"{v:g}" for v in med]
    print(f"| {sc} | {rate} | " + " | ".join(cells) + " |")
EOF
