#!/usr/bin/env bash
# bench/e2e/sipp-crosscheck.sh: SIPp against sipshard-load, both sending the `message` scenario
# to the same server (sipshard with 1 shard, or sipshard-load's responder) on loopback, over UDP
# or TCP, each tool on one core.
# Run with -h for the options; results: docs/benchmarks-e2e.md.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
# shellcheck source=bench/e2e/lib.sh
. "$HERE/lib.sh"

usage() {
    cat <<EOF
Usage: bench/e2e/sipp-crosscheck.sh [options]

Against one server, restarted before every run, and the message scenario:
  --server sipshard   sipshard --shards 1 with docs/examples/siprepo.toml (MESSAGE -> 202
                      Stored; the repository starts empty every run)
  --server responder  \`sipshard-load responder\` (MESSAGE -> 200 OK): a batched stand-in that
                      does next to nothing per request, so the tools, not the server, set the
                      ceiling. SIPp then uses message_uac.xml with 200 for 202.

 1. Capacity: each tool on one core (SIPp: bench/e2e/sipp/message_uac.xml, -t u1 or t1;
    sipshard-load: --threads 1) at rising rates (CAP_RATES) for CAP_DURATION each. A rate is
    sustained when at least 97% of the offered rate is answered and at most 1% of the calls
    failed or timed out. Reports each tool's highest sustained rate, its peak answered rate and its own
    CPU time per message (user+sys of the tool process). The ramp stops after two rates in a
    row that are not sustained.
 2. Latency at a common rate (COMMON_RATE, default 2000/s, DURATION): SIPp's response times
    (-trace_rtt: one value per call, whole milliseconds) against sipshard-load's p50/p90/p99
    (HdrHistogram, microseconds).

Options (environment variable in brackets):
  --cap-rates LIST     rates tried for capacity [CAP_RATES] ("10000 20000 30000 40000 50000 60000 80000 100000 120000";
                       with --server responder "20000 30000 40000 50000 55000 60000 70000 80000 100000
                       150000 200000 250000 300000 350000 400000 450000 500000")
  --cap-duration D     per capacity run         [CAP_DURATION] (5s)
  --common-rate R      latency comparison rate  [COMMON_RATE] (2000)
  --duration D         latency run length       [DURATION] (10s)
  --reps N             repetitions (medians)    [REPS] (2)
  --quick              CI-size: cap rates "5000 10000 20000", 2s, common rate 1000 for 3s, 1 rep
  --server S           sipshard | responder     [SERVER] (sipshard)
  --transport T        udp | tcp (SIPp -t u1 / -t t1; one socket or connection each) [TRANSPORT] (udp)
  --out DIR            run folder [OUT] (bench/e2e/runs/sipp-YYYYmmdd-HHMMSS)
  --server-core N      CPU for sipshard  [SERVER_CORE] (the last allowed CPU)
  --tool-core N        CPU for the tool  [TOOL_CORE] (the first allowed CPU)
  --no-pin             pin nothing (automatic with a single allowed CPU)
  -h, --help           this text
Binaries: \$BIN (target/release)/sipshard and sipshard-load, \$SIPP (sipp).
EOF
}

CAP_RATES=${CAP_RATES:-}
CAP_DURATION=${CAP_DURATION:-5s}
COMMON_RATE=${COMMON_RATE:-2000}
DURATION=${DURATION:-10s}
REPS=${REPS:-2}
OUT=${OUT:-}
SERVER_CORE=${SERVER_CORE:-}
TOOL_CORE=${TOOL_CORE:-}
PIN=1
SERVER=${SERVER:-sipshard}
TRANSPORT=${TRANSPORT:-udp}
BIN=${BIN:-$ROOT/target/release}
SIPP=${SIPP:-sipp}

while [ $# -gt 0 ]; do
    case $1 in
        --cap-rates) CAP_RATES=$2; shift ;;
        --cap-duration) CAP_DURATION=$2; shift ;;
        --common-rate) COMMON_RATE=$2; shift ;;
        --duration) DURATION=$2; shift ;;
        --reps) REPS=$2; shift ;;
        --quick) CAP_RATES="5000 10000 20000"; CAP_DURATION=2s; COMMON_RATE=1000; DURATION=3s; REPS=1 ;;
        --out) OUT=$2; shift ;;
        --server) SERVER=$2; shift ;;
        --transport) TRANSPORT=$2; shift ;;
        --server-core) SERVER_CORE=$2; shift ;;
        --tool-core) TOOL_CORE=$2; shift ;;
        --no-pin) PIN=0 ;;
        -h | --help) usage; exit 0 ;;
        *) echo "sipp-crosscheck.sh: unknown argument '$1' (try -h)" >&2; exit 2 ;;
    esac
    shift
done

if [ -z "$CAP_RATES" ]; then
    if [ "$SERVER" = responder ]; then
        CAP_RATES="20000 30000 40000 50000 55000 60000 70000 80000 100000 150000 200000 250000 300000 350000 400000 450000 500000"
    else
        CAP_RATES="10000 20000 30000 40000 50000 60000 80000 100000 120000"
    fi
fi
case $SERVER in sipshard | responder) ;; *) echo "sipp-crosscheck.sh: --server sipshard|responder" >&2; exit 2 ;; esac
case $TRANSPORT in
    udp) SIPP_T=u1 ;;
    tcp) SIPP_T=t1 ;;
    *) echo "sipp-crosscheck.sh: --transport udp|tcp" >&2; exit 2 ;;
esac
LOAD=$BIN/sipshard-load
SIPSHARD=$BIN/sipshard
SCEN=$HERE/sipp/message_uac.xml
for b in "$LOAD" "$SIPSHARD"; do
    [ -x "$b" ] || { echo "sipp-crosscheck.sh: $b missing (cargo build --release -p sipshard -p sipshard-load)" >&2; exit 1; }
done
command -v "$SIPP" >/dev/null || { echo "sipp-crosscheck.sh: $SIPP not found (Debian: sip-tester)" >&2; exit 1; }
command -v python3 >/dev/null || { echo "sipp-crosscheck.sh: python3 is needed" >&2; exit 1; }

LOAD_CORE=$TOOL_CORE
pin_cores sipp-crosscheck.sh "the server ($SERVER)" "the tool (SIPp or sipshard-load, 1 thread)"

OUT=${OUT:-$ROOT/bench/e2e/runs/sipp-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT/runs" "$OUT/logs"
OUT=$(cd "$OUT" && pwd)
if [ "$SERVER" = responder ]; then
    # The responder answers MESSAGE 200 OK; everything else in the scenario stays as it is.
    sed 's/response="202"/response="200"/; s/(expects 202)/(expects 200)/' "$SCEN" >"$OUT/message_uac_200.xml"
    SCEN=$OUT/message_uac_200.xml
fi

SERVER_PID=""
cleanup() {
    [ -z "$SERVER_PID" ] || stop_pid "$SERVER_PID"
    SERVER_PID=""
}
trap cleanup EXIT
trap 'exit 130' INT TERM

start_server() {
    local log=$1 cport
    SIP_PORT=$(free_port)
    cport=$(free_port)
    if [ "$SERVER" = responder ]; then
        "${SPIN[@]}" "$LOAD" responder --listen "127.0.0.1:$SIP_PORT" >"$log" 2>&1 &
    else
        "${SPIN[@]}" "$SIPSHARD" serve -c "$ROOT/docs/examples/siprepo.toml" --port "$SIP_PORT" \
            --shards 1 "${SHCORES[@]}" --control "127.0.0.1:$cport" >"$log" 2>&1 &
    fi
    SERVER_PID=$!
    if ! wait_sip "$LOAD" "$SIP_PORT" "$SERVER_PID"; then
        echo "sipp-crosscheck.sh: $SERVER did not come up; log $log:" >&2
        tail -20 "$log" >&2
        exit 1
    fi
}

# sipp_run DIR RATE CALLS [extra sipp args]: SIPp in DIR (its files land there), stat CSV
# DIR/stat.csv every second, CPU/wall in DIR/time.txt.
sipp_run() {
    local dir=$1 rate=$2 calls=$3 guard
    shift 3
    mkdir -p "$dir"
    guard=$(awk -v c="$calls" -v r="$rate" 'BEGIN { printf "%d", c / r * 3 + 10 }')
    (
        cd "$dir"
        run_timed "$dir/time.txt" "${LPIN[@]}" "$SIPP" -sf "$SCEN" -s sipshard "127.0.0.1:$SIP_PORT" \
            -i 127.0.0.1 -t "$SIPP_T" -r "$rate" -m "$calls" -recv_timeout 1000 -buff_size 4194304 \
            -timeout "${guard}s" -trace_stat -stf "$dir/stat.csv" -fd 1 -nostdin "$@" \
            >"$dir/sipp.out" 2>"$dir/sipp.err" </dev/null || true
    )
    [ -s "$dir/stat.csv" ] || { echo "sipp-crosscheck.sh: SIPp wrote no statistics ($dir/sipp.err):" >&2; tail -5 "$dir/sipp.err" >&2; exit 1; }
}

# load_run DIR RATE DURATION [extra args]: sipshard-load, report in DIR, CPU/wall in DIR.time.txt.
load_run() {
    local dir=$1 rate=$2 dur=$3 rc=0
    shift 3
    run_timed "$dir.time.txt" "${LPIN[@]}" "$LOAD" "127.0.0.1:$SIP_PORT" --scenario message \
        --rate "$rate" --duration "$dur" --transport "$TRANSPORT" --threads 1 "${LCORES[@]}" --out "$dir" -q "$@" \
        >"$dir.out" 2>&1 || rc=$?
    # Exit status 1 is calls that failed (a capacity step past the server's limit); 2 is no run.
    [ "$rc" -le 1 ] || { echo "sipp-crosscheck.sh: sipshard-load failed ($dir.out)" >&2; tail -5 "$dir.out" >&2; exit 1; }
}

{
    echo "# sipp-crosscheck.sh run $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "host: $(nproc) CPU(s), $(lscpu | sed -n 's/^Model name: *//p' | head -1), kernel $(uname -r)"
    echo "server: $SERVER, transport: $TRANSPORT"
    echo "pinning: $PINNING"
    echo "capacity rates: $CAP_RATES ($CAP_DURATION each); common rate $COMMON_RATE/s for $DURATION; reps $REPS"
    echo "sipp: $("$SIPP" -v 2>&1 | grep -o 'SIPp v[^ ]*' | head -1)"
    echo "sipshard: $("$SIPSHARD" --version 2>/dev/null || echo '?'), binary built $(date -u -r "$SIPSHARD" +%Y-%m-%dT%H:%M:%SZ); HEAD now $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')"
} | tee "$OUT/meta.txt"

CAP_S=$(dur_s "$CAP_DURATION")
DUR_S=$(dur_s "$DURATION")
echo "kind,tool,rep,rate,dir" >"$OUT/runs.csv"

for rep in $(seq "$REPS"); do
    # 1. Capacity ramps.
    for tool in sipp sipshard-load; do
        fails=0
        for rate in $CAP_RATES; do
            name="cap-$tool-$rate-r$rep"
            dir="$OUT/runs/$name"
            start_server "$OUT/logs/$name.server.log"
            if [ "$tool" = sipp ]; then
                calls=$(awk -v r="$rate" -v d="$CAP_S" 'BEGIN { printf "%d", r * d }')
                sipp_run "$dir" "$rate" "$calls" -max_recv_loops 10000 -max_sched_loops 10000
            else
                load_run "$dir" "$rate" "$CAP_DURATION" --timeout 1s
            fi
            stop_pid "$SERVER_PID"
            SERVER_PID=""
            echo "capacity,$tool,$rep,$rate,runs/$name" >>"$OUT/runs.csv"
            verdict=$(python3 "$HERE/sipp_summary.py" --one "$OUT" "$name")
            echo "$verdict"
            case $verdict in
                *"not sustained"*) fails=$((fails + 1)); [ "$fails" -lt 2 ] || break ;;
                *) fails=0 ;;
            esac
        done
    done
    # 2. Latency at the common rate.
    for tool in sipp sipshard-load; do
        name="lat-$tool-$COMMON_RATE-r$rep"
        dir="$OUT/runs/$name"
        start_server "$OUT/logs/$name.server.log"
        if [ "$tool" = sipp ]; then
            calls=$(awk -v r="$COMMON_RATE" -v d="$DUR_S" 'BEGIN { printf "%d", r * d }')
            sipp_run "$dir" "$COMMON_RATE" "$calls" -trace_rtt -rtt_freq 1000
        else
            load_run "$dir" "$COMMON_RATE" "$DURATION"
        fi
        stop_pid "$SERVER_PID"
        SERVER_PID=""
        echo "latency,$tool,$rep,$COMMON_RATE,runs/$name" >>"$OUT/runs.csv"
        python3 "$HERE/sipp_summary.py" --one "$OUT" "$name"
    done
done

python3 "$HERE/sipp_summary.py" "$OUT"
echo
echo "pinning: $PINNING"
echo "results: $OUT/results.md"
