#!/usr/bin/env bash
# bench/e2e/gateway-idle.sh: what an idle gateway session costs the server, in resident memory.
# Builds nothing: give it the folder that holds sipshard and sipshard-load.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
# shellcheck source=bench/e2e/lib.sh
. "$HERE/lib.sh"

usage() {
    cat <<EOF
Usage: bench/e2e/gateway-idle.sh --bin DIR [options]

Starts \`sipshard serve\` (DIR/sipshard, one shard) with a copy of docs/examples/msrp-gateway.toml
whose [gateway] setup_timeout is 3600 s, reads its VmRSS, then BATCHES times: creates SESSIONS
idle sessions with \`sipshard-load --scenario gw-idle-sessions\` (an INVITE with an MSRP offer
per session, answered 200 by msrp_answer and ACKed; no MSRP connection), waits SETTLE seconds
and reads VmRSS and gw.stats again. Prints the resident memory per session of each batch.

Why a longer setup_timeout: msrp_answer answers passive and waits for the MSRP client to
connect; a session nobody connects to is ended by the set-up timeout (32 s by default). Binding
each session with a connection instead would measure sockets and kernel buffers, and need
SESSIONS descriptors on each side, rather than the gateway's own state.

Why SETTLE (default 40 s) and a moderate RATE: every INVITE leaves a server transaction in the
"accepted" state for 64*T1 = 32 s (RFC 6026 timer L), with a copy of its 200; they must be gone
before memory is read, and RATE * 32 s must stay well under the shard's [gateway]
max_transactions (500,000 by default; past it the INVITEs get 503). Freed
transactions stay in the allocator (RSS does not shrink), so batch 1's figure includes that
high-water mark; batch 2 reuses it, which makes its figure the steadier per-session cost.

Options (environment variable in brackets):
  --bin DIR        folder with sipshard and sipshard-load   [BIN]
  --sessions N     sessions per batch                       [SESSIONS] (100000)
  --batches N      batches                                  [BATCHES] (2)
  --rate R         INVITEs per second                       [RATE] (2500)
  --settle S       seconds to wait after each batch         [SETTLE] (40)
  --t1-ms MS       set [gateway] t1_ms in the config copy (RFC 3261 T1; the transactions'
                   32 s become 64*MS ms), so that few exist at once and batch 1 measures the
                   sessions alone; 0 leaves the default (500)  [T1_MS] (0)
  --no-pin         pin nothing
  -h, --help       this text
EOF
}

BIN=${BIN:-} SESSIONS=${SESSIONS:-100000} BATCHES=${BATCHES:-2} RATE=${RATE:-2500}
SETTLE=${SETTLE:-40} T1_MS=${T1_MS:-0} PIN=1
while [ $# -gt 0 ]; do
    case $1 in
        --bin) BIN=$2; shift 2 ;;
        --sessions) SESSIONS=$2; shift 2 ;;
        --batches) BATCHES=$2; shift 2 ;;
        --rate) RATE=$2; shift 2 ;;
        --settle) SETTLE=$2; shift 2 ;;
        --t1-ms) T1_MS=$2; shift 2 ;;
        --no-pin) PIN=0; shift ;;
        -h | --help) usage; exit 0 ;;
        *) echo "gateway-idle.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
    esac
done
[ -n "$BIN" ] && [ -x "$BIN/sipshard" ] && [ -x "$BIN/sipshard-load" ] || { usage >&2; exit 2; }
pin_cores gateway-idle.sh sipshard sipshard-load

OUT=$(mktemp -d)
SERVER_PID=""
trap 'stop_pid "$SERVER_PID"; rm -rf "$OUT"' EXIT
CONFIG=$OUT/gateway-idle.toml
sed 's/^# setup_timeout = 32 .*$/setup_timeout = 3600/' "$ROOT/docs/examples/msrp-gateway.toml" >"$CONFIG"
grep -q '^setup_timeout = 3600$' "$CONFIG" || { echo "gateway-idle.sh: could not set setup_timeout in the config copy" >&2; exit 1; }
if [ "$T1_MS" -gt 0 ]; then
    sed -i "s/^setup_timeout = 3600\$/setup_timeout = 3600\nt1_ms = $T1_MS/" "$CONFIG"
    grep -q "^t1_ms = $T1_MS\$" "$CONFIG" || { echo "gateway-idle.sh: could not set t1_ms" >&2; exit 1; }
fi

"${SPIN[@]}" "$BIN/sipshard" serve -c "$CONFIG" --port 0 --msrp-listen 127.0.0.1:0 \
    --control 127.0.0.1:0 --shards 1 "${SHCORES[@]}" --socket-recv-buffer 4MiB \
    --socket-send-buffer 4MiB >"$OUT/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 100); do
    grep -q '^sipshard: ready' "$OUT/server.log" && break
    sleep 0.1
done
grep -q '^sipshard: ready' "$OUT/server.log" || { cat "$OUT/server.log" >&2; exit 1; }
PORT=$(sed -n 's/^sipshard: listening udp 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$OUT/server.log" | head -1)
CONTROL=$(sed -n 's|^sipshard: control http://\(.*\)$|\1|p' "$OUT/server.log" | head -1)

rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$SERVER_PID/status"; }
hwm_kib() { awk '/^VmHWM:/ { print $2 }' "/proc/$SERVER_PID/status"; }
# Sessions, created and ended (gw.stats), and the shard's SIP transactions alive (/metrics).
gw_stat() {
    local txs
    txs=$(python3 -c "import urllib.request; print(sum(float(l.split()[-1]) for l in urllib.request.urlopen('http://$CONTROL/metrics').read().decode().splitlines() if l.startswith('sipshard_sip_transactions')))")
    "$BIN/sipshard" ctl --control "$CONTROL" gw.stats |
        python3 -c "import json, sys; s = json.load(sys.stdin); print(s['sessions'], '${txs%.0}', s['gw_sessions_created'], s['gw_sessions_ended'])"
}

sleep 1
prev=$(rss_kib)
echo "# $PINNING; $SESSIONS sessions per batch at $RATE/s, $SETTLE s settle, t1_ms ${T1_MS/#0/500 (default)}"
echo "start: VmRSS $prev KiB"
for b in $(seq "$BATCHES"); do
    "${LPIN[@]}" "$BIN/sipshard-load" "127.0.0.1:$PORT" --scenario gw-idle-sessions \
        --sessions "$SESSIONS" --rate "$RATE" --timeout 5s --threads 1 "${LCORES[@]}" -q \
        >"$OUT/load-$b.txt" 2>&1 || true
    grep -E '^(requests|replies|errors)' "$OUT/load-$b.txt" | sed 's/^/  /'
    grep -E '^ +[0-9]+ ' "$OUT/load-$b.txt" | sed 's/^/  /' || true
    right_after=$(rss_kib)
    sleep "$SETTLE"
    now=$(rss_kib)
    read -r sessions txs created ended <<<"$(gw_stat)"
    echo "batch $b: VmRSS $right_after KiB right after, $now KiB after ${SETTLE}s (VmHWM $(hwm_kib) KiB);" \
        "gw.stats: sessions $sessions (created $created, ended $ended), SIP transactions alive $txs;" \
        "$(awk -v a="$now" -v p="$prev" -v n="$SESSIONS" 'BEGIN { printf "%.0f bytes per session (this batch)", (a - p) * 1024 / n }')"
    prev=$now
done
