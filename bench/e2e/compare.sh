#!/usr/bin/env bash
# bench/e2e/compare.sh: sipshard (1 shard) against Kamailio (htable, children=1) on loopback,
# measuring each server's CPU time per request with sipshard-load offering the load.
# Run with -h for the options; results: docs/benchmarks-e2e.md.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
# shellcheck source=bench/e2e/lib.sh
. "$HERE/lib.sh"

usage() {
    cat <<EOF
Usage: bench/e2e/compare.sh [options]

For each server (sipshard --shards 1, then Kamailio with bench/kamailio/siprepo-htable.cfg and
children=1), each scenario and each rate, REPS times: start the server fresh on loopback, run
  sipshard-load 127.0.0.1:PORT --scenario S --rate R --warmup W --duration D --out RUN
and read the server's CPU time (utime+stime from /proc/PID/stat, summed over Kamailio's
processes) at the end of the warmup and when the load generator exits. Then write
results.md / results.csv (medians over the repetitions) and overlay the latency spectra of
both servers at each rate with 'sipshard-load report' (svg/).

Options (environment variable in brackets):
  --servers LIST     servers to run, of: sipshard kamailio before sipshard-wN
                     (before: \$BEFORE/sipshard, an older build with the same flags;
                     sipshard-wN: this build with --udp-coalesce-us N) [SERVERS] (sipshard kamailio)
  --scenarios LIST   of: message park-pull                      [SCENARIOS] (both)
  --rates LIST       calls per second                           [RATES] ("5000 10000 20000")
  --duration D       measured time per run                      [DURATION] (10s)
  --warmup D         unmeasured load before it                  [WARMUP] (2s)
  --reps N           repetitions (median reported)              [REPS] (2)
  --timeout D        sipshard-load --timeout                    [TIMEOUT] (2s)
  --quick            CI-size run: rates "2000 5000", 3s, warmup 1s, 1 repetition
  --out DIR          run folder          [OUT] (bench/e2e/runs/compare-YYYYmmdd-HHMMSS)
  --server-core N    CPU for the server  [SERVER_CORE] (the last allowed CPU)
  --load-core N      CPU for the load    [LOAD_CORE] (the first allowed CPU)
  --no-pin           do not pin anything (automatic with a single allowed CPU)
  --port N           SIP port (UDP, and TCP for sipshard) [PORT] (0: a free port per start)
  --before DIR       the older build's folder for server \`before\` [BEFORE]
  -h, --help         this text
Binaries: \$BIN (target/release)/sipshard and sipshard-load (build them first:
cargo build --release -p sipshard -p sipshard-load), \$KAMAILIO (kamailio), Kamailio shared
memory \$KAM_SHM MiB (1024; the message scenario parks every request), Kamailio memory
manager \$KAM_MEM (tlsf: about 18% less CPU per request here than Debian's default qm, a
debugging allocator; fm is as fast as tlsf).
EOF
}

SERVERS=${SERVERS:-"sipshard kamailio"}
SCENARIOS=${SCENARIOS:-"message park-pull"}
RATES=${RATES:-"5000 10000 20000"}
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-2s}
REPS=${REPS:-2}
TIMEOUT=${TIMEOUT:-2s}
OUT=${OUT:-}
SERVER_CORE=${SERVER_CORE:-}
LOAD_CORE=${LOAD_CORE:-}
PORT=${PORT:-0}
PIN=1
BIN=${BIN:-$ROOT/target/release}
KAMAILIO=${KAMAILIO:-kamailio}
BEFORE=${BEFORE:-}
KAM_SHM=${KAM_SHM:-1024}
KAM_MEM=${KAM_MEM:-tlsf}

while [ $# -gt 0 ]; do
    case $1 in
        --servers) SERVERS=$2; shift ;;
        --scenarios) SCENARIOS=$2; shift ;;
        --rates) RATES=$2; shift ;;
        --duration) DURATION=$2; shift ;;
        --warmup) WARMUP=$2; shift ;;
        --reps) REPS=$2; shift ;;
        --timeout) TIMEOUT=$2; shift ;;
        --quick) RATES="2000 5000"; DURATION=3s; WARMUP=1s; REPS=1 ;;
        --out) OUT=$2; shift ;;
        --server-core) SERVER_CORE=$2; shift ;;
        --load-core) LOAD_CORE=$2; shift ;;
        --no-pin) PIN=0 ;;
        --port) PORT=$2; shift ;;
        --before) BEFORE=$2; shift ;;
        -h | --help) usage; exit 0 ;;
        *) echo "compare.sh: unknown argument '$1' (try -h)" >&2; exit 2 ;;
    esac
    shift
done

LOAD=$BIN/sipshard-load
SIPSHARD=$BIN/sipshard
KAMCFG=$ROOT/bench/kamailio/siprepo-htable.cfg
for s in $SERVERS; do
    case $s in
        sipshard | sipshard-w[0-9]*) [ -x "$SIPSHARD" ] || { echo "compare.sh: $SIPSHARD missing (cargo build --release -p sipshard -p sipshard-load)" >&2; exit 1; } ;;
        before) [ -x "${BEFORE:-}/sipshard" ] || { echo "compare.sh: server 'before' needs --before DIR holding an older sipshard" >&2; exit 1; } ;;
        kamailio) command -v "$KAMAILIO" >/dev/null || { echo "compare.sh: $KAMAILIO not found" >&2; exit 1; } ;;
        *) echo "compare.sh: unknown server '$s'" >&2; exit 2 ;;
    esac
done
for s in $SCENARIOS; do
    case $s in message | park-pull) ;; *) echo "compare.sh: unknown scenario '$s'" >&2; exit 2 ;; esac
done
[ -x "$LOAD" ] || { echo "compare.sh: $LOAD missing (cargo build --release -p sipshard-load)" >&2; exit 1; }
command -v python3 >/dev/null || { echo "compare.sh: python3 is needed" >&2; exit 1; }

pin_cores compare.sh server "sipshard-load (1 thread)"

OUT=${OUT:-$ROOT/bench/e2e/runs/compare-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT/runs" "$OUT/logs" "$OUT/svg"
OUT=$(cd "$OUT" && pwd)
WARMUP_S=$(dur_s "$WARMUP")
CLK_TCK=$(getconf CLK_TCK)

SERVER_PID=""
LOAD_PID=""
cleanup() {
    [ -z "$LOAD_PID" ] || stop_pid "$LOAD_PID"
    [ -z "$SERVER_PID" ] || stop_pid "$SERVER_PID"
    LOAD_PID="" SERVER_PID=""
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Starts $1 on a fresh port; sets SERVER_PID and SIP_PORT.
start_server() {
    local server=$1 log=$2 cport
    SIP_PORT=$PORT
    [ "$SIP_PORT" != 0 ] || SIP_PORT=$(free_port)
    local bin=$SIPSHARD extra=()
    case $server in
        before) bin=$BEFORE/sipshard ;;
        sipshard-w*) extra=(--udp-coalesce-us "${server#sipshard-w}") ;;
    esac
    case $server in
        sipshard | sipshard-w* | before)
            cport=$(free_port)
            "${SPIN[@]}" "$bin" serve -c "$ROOT/docs/examples/siprepo.toml" --port "$SIP_PORT" \
                --shards 1 "${SHCORES[@]}" --control "127.0.0.1:$cport" "${extra[@]}" >"$log" 2>&1 &
            SERVER_PID=$!
            ;;
        kamailio)
            "${SPIN[@]}" "$KAMAILIO" -f "$KAMCFG" -DD -E -m "$KAM_SHM" -M 32 -x "$KAM_MEM" \
                -A "LISTEN=udp:127.0.0.1:$SIP_PORT" >"$log" 2>&1 &
            SERVER_PID=$!
            ;;
    esac
    if ! wait_sip "$LOAD" "$SIP_PORT" "$SERVER_PID"; then
        echo "compare.sh: $server did not come up on 127.0.0.1:$SIP_PORT; log $log:" >&2
        tail -20 "$log" >&2
        exit 1
    fi
}

{
    echo "# compare.sh run $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "host: $(nproc) CPU(s), $(lscpu | sed -n 's/^Model name: *//p' | head -1), kernel $(uname -r)"
    echo "pinning: $PINNING"
    echo "servers: $SERVERS; scenarios: $SCENARIOS; rates: $RATES; duration $DURATION, warmup $WARMUP, reps $REPS, timeout $TIMEOUT"
    echo "sipshard: $("$SIPSHARD" --version 2>/dev/null || echo '?'), binary built $(date -u -r "$SIPSHARD" +%Y-%m-%dT%H:%M:%SZ); HEAD now $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')"
    [ -z "$BEFORE" ] || echo "before: $BEFORE/sipshard, built $(date -u -r "$BEFORE/sipshard" +%Y-%m-%dT%H:%M:%SZ)"
    echo "kamailio: $("$KAMAILIO" -v 2>/dev/null | head -1 | sed 's/^version: //'), -x $KAM_MEM -m $KAM_SHM"
    echo "CLK_TCK: $CLK_TCK"
} | tee "$OUT/meta.txt"

echo "server,scenario,rate,rep,dir,cpu_ticks,cpu_ns,clk_tck,window_s,other_ticks,loadavg,drops,slices" >"$OUT/runs.csv"

for scenario in $SCENARIOS; do
    for rate in $RATES; do
        for rep in $(seq "$REPS"); do
            for server in $SERVERS; do
                name="$server-$scenario-$rate-r$rep"
                run="$OUT/runs/$name"
                start_server "$server" "$OUT/logs/$name.server.log"
                "${LPIN[@]}" "$LOAD" "127.0.0.1:$SIP_PORT" --scenario "$scenario" --rate "$rate" \
                    --warmup "$WARMUP" --duration "$DURATION" --timeout "$TIMEOUT" --threads 1 \
                    "${LCORES[@]}" --out "$run" -q >"$OUT/logs/$name.load.txt" 2>&1 &
                LOAD_PID=$!
                sleep "$WARMUP_S"
                read -r t0 n0 s0 < <(cpu_snapshot "$SERVER_PID")
                o0=$(others_ticks "$SERVER_PID" "$LOAD_PID")
                w0=$(date +%s.%N)
                rc=0
                wait "$LOAD_PID" || rc=$?
                LOAD_PID=""
                read -r t1 n1 s1 < <(cpu_snapshot "$SERVER_PID")
                w1=$(date +%s.%N)
                o1=$(others_ticks "$SERVER_PID")
                la=$(cut -d' ' -f1-3 /proc/loadavg)
                drops=$(udp_drops "$SIP_PORT")
                stop_pid "$SERVER_PID"
                SERVER_PID=""
                # 1: some calls failed (timeouts at an overloaded rate are data here); 2: no run.
                if [ "$rc" -gt 1 ] || [ ! -f "$run/summary.json" ]; then
                    echo "compare.sh: sipshard-load failed (rc $rc) for $name:" >&2
                    tail -20 "$OUT/logs/$name.load.txt" >&2
                    exit 1
                fi
                win=$(awk -v a="$w0" -v b="$w1" 'BEGIN { printf "%.3f", b - a }')
                echo "$server,$scenario,$rate,$rep,runs/$name,$((t1 - t0)),$((n1 - n0)),$CLK_TCK,$win,$((o1 - o0)),$la,$drops,$((s1 - s0))" >>"$OUT/runs.csv"
                python3 "$HERE/summarize.py" --one "$OUT" "$name"
            done
        done
        # Overlay both servers' spectra at this rate (first repetition).
        dirs=()
        for server in $SERVERS; do dirs+=("$OUT/runs/$server-$scenario-$rate-r1"); done
        if [ "$scenario" = message ]; then metrics=(message); else metrics=(park pulled); fi
        for m in "${metrics[@]}"; do
            svg="$OUT/svg/$scenario-$rate-$m.svg"
            "$LOAD" report "${dirs[@]}" --svg "$svg" --metric "$m" >>"$OUT/report.txt" 2>&1 ||
                echo "compare.sh: sipshard-load report failed for $svg (see report.txt)" >&2
        done
    done
done

python3 "$HERE/summarize.py" "$OUT"
echo
echo "pinning: $PINNING"
echo "results: $OUT/results.md, $OUT/results.csv, spectra: $OUT/svg/"
