#!/usr/bin/env bash
# bench/e2e/profile.sh: a CPU profile (perf record -e cpu-clock -g) of sipshard or Kamailio under
# sipshard-load, broken down by bench/e2e/perf_breakdown.py.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
# shellcheck source=bench/e2e/lib.sh
. "$HERE/lib.sh"

usage() {
    cat <<EOF
Usage: bench/e2e/profile.sh SERVER SCENARIO RATE [options]
  SERVER     sipshard | kamailio   (same set-up as compare.sh: 1 shard / children=1, loopback)
  SCENARIO   message | park-pull
  RATE       calls per second
Options:
  --duration D     profiled time (5s), after a 2 s warmup
  --out DIR        where perf.data, breakdown.md and the load report go
                   (bench/e2e/runs/profile-SERVER-SCENARIO-RATE-YYYYmmdd-HHMMSS)
  --server-core N  (last allowed CPU)   --load-core N  (first allowed CPU)
Needs perf with the cpu-clock software event (hardware counters are not needed).
EOF
}

[ $# -ge 1 ] && { [ "$1" = -h ] || [ "$1" = --help ]; } && { usage; exit 0; }
[ $# -ge 3 ] || { usage >&2; exit 2; }
SERVER=$1 SCENARIO=$2 RATE=$3
shift 3
DURATION=5s OUT="" SERVER_CORE="" LOAD_CORE=""
while [ $# -gt 0 ]; do
    case $1 in
        --duration) DURATION=$2; shift ;;
        --out) OUT=$2; shift ;;
        --server-core) SERVER_CORE=$2; shift ;;
        --load-core) LOAD_CORE=$2; shift ;;
        -h | --help) usage; exit 0 ;;
        *) echo "profile.sh: unknown argument '$1'" >&2; exit 2 ;;
    esac
    shift
done
BIN=${BIN:-$ROOT/target/release}
LOAD=$BIN/sipshard-load
command -v perf >/dev/null || { echo "profile.sh: perf not found" >&2; exit 1; }
perf stat -e cpu-clock true >/dev/null 2>&1 || { echo "profile.sh: perf cannot count cpu-clock here" >&2; exit 1; }

mapfile -t CPUS < <(allowed_cpus)
SERVER_CORE=${SERVER_CORE:-${CPUS[${#CPUS[@]} - 1]}}
LOAD_CORE=${LOAD_CORE:-${CPUS[0]}}
OUT=${OUT:-$ROOT/bench/e2e/runs/profile-$SERVER-$SCENARIO-$RATE-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

SERVER_PID="" LOAD_PID=""
cleanup() {
    [ -z "$LOAD_PID" ] || stop_pid "$LOAD_PID"
    [ -z "$SERVER_PID" ] || stop_pid "$SERVER_PID"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

PORT=$(free_port)
case $SERVER in
    sipshard)
        taskset -c "$SERVER_CORE" "$BIN/sipshard" serve -c "$ROOT/docs/examples/siprepo.toml" --port "$PORT" \
            --shards 1 --cores "$SERVER_CORE" --control "127.0.0.1:$(free_port)" >"$OUT/server.log" 2>&1 &
        ;;
    kamailio)
        taskset -c "$SERVER_CORE" "${KAMAILIO:-kamailio}" -f "$ROOT/bench/kamailio/siprepo-htable.cfg" -DD -E \
            -m "${KAM_SHM:-1024}" -M 32 -x "${KAM_MEM:-tlsf}" -A "LISTEN=udp:127.0.0.1:$PORT" >"$OUT/server.log" 2>&1 &
        ;;
    *) echo "profile.sh: unknown server '$SERVER'" >&2; exit 2 ;;
esac
SERVER_PID=$!
wait_sip "$LOAD" "$PORT" "$SERVER_PID" || { echo "profile.sh: server did not come up" >&2; tail "$OUT/server.log" >&2; exit 1; }

taskset -c "$LOAD_CORE" "$LOAD" "127.0.0.1:$PORT" --scenario "$SCENARIO" --rate "$RATE" --warmup 2s \
    --duration "$DURATION" --timeout 2s --threads 1 --cores "$LOAD_CORE" --out "$OUT/load" -q >"$OUT/load.txt" 2>&1 &
LOAD_PID=$!
sleep 2
pids=$(echo "$SERVER_PID" $(pgrep -P "$SERVER_PID" || true) | tr ' ' ',')
read -r t0 _ < <(cpu_snapshot "$SERVER_PID")
perf record -e cpu-clock -F 4999 -g -p "$pids" -o "$OUT/perf.data" -- sleep "$(dur_s "$DURATION")" >"$OUT/perf-record.txt" 2>&1
read -r t1 _ < <(cpu_snapshot "$SERVER_PID")
wait "$LOAD_PID" || true
LOAD_PID=""
stop_pid "$SERVER_PID"
SERVER_PID=""

{
    echo "# $SERVER, $SCENARIO at $RATE/s, server on CPU $SERVER_CORE, load on CPU $LOAD_CORE"
    echo
    echo "Server CPU while profiled: $(awk -v t=$((t1 - t0)) -v h="$(getconf CLK_TCK)" -v d="$(dur_s "$DURATION")" 'BEGIN { printf "%.2f s in %s s (%.0f%%)", t / h, d, 100 * t / h / d }')"
    grep -E '^(rate|requests):' "$OUT/load.txt" | sed 's/^/    /'
    echo
    perf script -i "$OUT/perf.data" -F comm,tid,ip,sym,dso 2>/dev/null | python3 "$HERE/perf_breakdown.py"
} | tee "$OUT/breakdown.md"
echo "profile: $OUT/perf.data (perf report -i $OUT/perf.data --no-children)"
