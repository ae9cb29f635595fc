#!/usr/bin/env bash
# bench/e2e/capacity.sh: one shard's `message` capacity, two sipshard builds side by side in one
# run (interleaved repetitions, medians), and what each costs idle. Use it to check that a
# change does not cost capacity: build the old commit's binaries into one folder and the new
# one's into another.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
# shellcheck source=bench/e2e/lib.sh
. "$HERE/lib.sh"

usage() {
    cat <<EOF
Usage: bench/e2e/capacity.sh --a DIR --b DIR [options]

For each repetition, build A then build B (DIR/sipshard): start \`sipshard serve\` with one shard
and docs/examples/siprepo.toml, offer a scenario (message) far above capacity with
sipshard-load (one thread) for DURATION after a 1 s warmup, and record the answered rate. Then
each build idle with two shards for IDLE seconds: CPU ticks and voluntary context switches
(wake-ups) of the whole process. Prints one line per run and the medians.

Options (environment variable in brackets):
  --a DIR, --b DIR   the two builds' binary folders (each holds sipshard)
  --load PATH        sipshard-load                   [LOAD] (target/release/sipshard-load)
  --rate R           offered calls/s                 [RATE] (250000)
  --transport T      udp or tcp                      [TRANSPORT] (udp)
  --scenario S       message or park-pull            [SCENARIO] (message)
  --duration D       measured window                 [DURATION] (5s)
  --reps N           repetitions                     [REPS] (5)
  --idle S           idle measurement, seconds (0: skip) [IDLE] (20)
  --cpu-rate R       also measure the server's CPU µs per request at this rate, below
                     capacity, where the load generator's own scheduling matters less
                     (0: skip) [CPU_RATE] (0)
  --no-pin           pin nothing (automatic with a single allowed CPU)
  -h, --help         this text
EOF
}

A="" B="" LOAD=${LOAD:-$ROOT/target/release/sipshard-load}
RATE=${RATE:-250000} DURATION=${DURATION:-5s} REPS=${REPS:-5} IDLE=${IDLE:-20} PIN=1
CPU_RATE=${CPU_RATE:-0} TRANSPORT=${TRANSPORT:-udp} SCENARIO=${SCENARIO:-message}
while [ $# -gt 0 ]; do
    case $1 in
        --a) A=$2; shift 2 ;;
        --b) B=$2; shift 2 ;;
        --load) LOAD=$2; shift 2 ;;
        --rate) RATE=$2; shift 2 ;;
        --transport) TRANSPORT=$2; shift 2 ;;
        --scenario) SCENARIO=$2; shift 2 ;;
        --duration) DURATION=$2; shift 2 ;;
        --reps) REPS=$2; shift 2 ;;
        --idle) IDLE=$2; shift 2 ;;
        --cpu-rate) CPU_RATE=$2; shift 2 ;;
        --no-pin) PIN=0; shift ;;
        -h | --help) usage; exit 0 ;;
        *) echo "capacity.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
    esac
done
[ -x "$A/sipshard" ] && [ -x "$B/sipshard" ] || { usage >&2; exit 2; }
pin_cores capacity.sh sipshard sipshard-load
echo "# $PINNING; $SCENARIO over $TRANSPORT offered $RATE/s for $DURATION, $REPS repetitions"

OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
declare -A RATES=() CPUS=()
for rep in $(seq "$REPS"); do
    for name in a b; do
        dir=$A
        [ $name = b ] && dir=$B
        port=$(free_port)
        "${SPIN[@]}" "$dir/sipshard" serve -c "$ROOT/docs/examples/siprepo.toml" --port "$port" \
            --shards 1 "${SHCORES[@]}" --no-control >"$OUT/server.log" 2>&1 &
        pid=$!
        if ! wait_sip "$LOAD" "$port" "$pid"; then
            echo "capacity.sh: $dir/sipshard did not start" >&2
            exit 1
        fi
        steal0=$(awk '/^cpu /{print $9}' /proc/stat)
        "$LOAD" "127.0.0.1:$port" --scenario "$SCENARIO" --transport "$TRANSPORT" --rate "$RATE" --warmup 1s \
            --duration "$DURATION" --timeout 2s --threads 1 "${LCORES[@]}" --out "$OUT/run" \
            -q >/dev/null || true
        steal1=$(awk '/^cpu /{print $9}' /proc/stat)
        stop_pid "$pid"
        r=$(python3 -c "import json; print(round(json.load(open('$OUT/run/summary.json'))['achieved_rate']))")
        RATES[$name]="${RATES[$name]:-} $r"
        echo "rep $rep build $name ($dir): answered $r/s (steal ticks during the run: $((steal1 - steal0)))"
        [ "$CPU_RATE" -gt 0 ] || continue
        port=$(free_port)
        "${SPIN[@]}" "$dir/sipshard" serve -c "$ROOT/docs/examples/siprepo.toml" --port "$port" \
            --shards 1 "${SHCORES[@]}" --no-control >"$OUT/server.log" 2>&1 &
        pid=$!
        wait_sip "$LOAD" "$port" "$pid" || exit 1
        cpu0=$(awk '{ print $14 + $15 }' "/proc/$pid/stat")
        "$LOAD" "127.0.0.1:$port" --scenario "$SCENARIO" --transport "$TRANSPORT" --rate "$CPU_RATE" --duration "$DURATION" \
            --timeout 2s --threads 1 "${LCORES[@]}" --out "$OUT/cpu" -q >/dev/null || true
        cpu1=$(awk '{ print $14 + $15 }' "/proc/$pid/stat")
        stop_pid "$pid"
        sent=$(python3 -c "import json; print(json.load(open('$OUT/cpu/summary.json'))['sent'])")
        us=$(awk -v t=$((cpu1 - cpu0)) -v n="$sent" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.2f", t / hz * 1e6 / n }')
        CPUS[$name]="${CPUS[$name]:-} $us"
        echo "rep $rep build $name: CPU $us µs per request at $CPU_RATE/s ($sent sent)"
    done
done
median() {
    tr ' ' '\n' | grep . | sort -n |
        awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
ma=$(echo "${RATES[a]}" | median)
mb=$(echo "${RATES[b]}" | median)
echo "median answered/s: a $ma, b $mb, b/a $(awk -v a="$ma" -v b="$mb" 'BEGIN { printf "%.2f", b / a }')"
if [ "$CPU_RATE" -gt 0 ]; then
    ca=$(echo "${CPUS[a]}" | median)
    cb=$(echo "${CPUS[b]}" | median)
    echo "median CPU µs per request at $CPU_RATE/s: a $ca, b $cb, b/a $(awk -v a="$ca" -v b="$cb" 'BEGIN { printf "%.2f", b / a }')"
fi

[ "$IDLE" -gt 0 ] || exit 0
for name in a b; do
    dir=$A
    [ $name = b ] && dir=$B
    port=$(free_port)
    "$dir/sipshard" serve -c "$ROOT/docs/examples/siprepo.toml" --port "$port" --shards 2 \
        --no-control >"$OUT/server.log" 2>&1 &
    pid=$!
    wait_sip "$LOAD" "$port" "$pid" || exit 1
    sleep 1
    cpu0=$(awk '{ print $14 + $15 }' "/proc/$pid/stat")
    cs0=$(cat /proc/"$pid"/task/*/status | awk '/^voluntary_ctxt_switches/ { s += $2 } END { print s }')
    sleep "$IDLE"
    cpu1=$(awk '{ print $14 + $15 }' "/proc/$pid/stat")
    cs1=$(cat /proc/"$pid"/task/*/status | awk '/^voluntary_ctxt_switches/ { s += $2 } END { print s }')
    stop_pid "$pid"
    echo "idle, 2 shards, ${IDLE}s, build $name: CPU ticks $((cpu1 - cpu0)), wake-ups $((cs1 - cs0)) ($(((cs1 - cs0) / IDLE))/s)"
done
