#!/usr/bin/env bash
# bench/soak/run.sh: the soak of issue 10. Builds the release binaries, starts `sipshard serve`
# with docs/examples/siprepo.toml on two shards on free loopback ports, runs sipshard-soak
# against it (parks over UDP and TCP, same- and cross-shard pulls, rm, checks, expiries,
# retransmissions), stops the server with SIGTERM and says where the report is
# (docs/loadgen.md, "Soak"). Exit status: sipshard-soak's (0: no violation).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
# shellcheck source=bench/e2e/lib.sh
. "$ROOT/bench/e2e/lib.sh"

usage() {
    cat <<EOF
Usage: bench/soak/run.sh [--duration SECS] [--rate PARKS_PER_S] [options] [-- SOAK_FLAGS...]

Options (default in brackets):
  --duration S    seconds of traffic; then the soak waits EXPIRE + margin for the
                  last items                                            [1800]
  --rate N        parks per second                                      [5000]
  --expire S      the server's --repo-expire                            [30]
  --shards N      the server's --shards                                 [2]
  --out DIR       where the report goes                     [a new temp dir]
  --gateway       also start a gateway server (docs/examples/msrp-gateway.toml)
                  and run sessions through it at a low rate (one a minute, 5 at least)
  --server-flags "F..."
                  more flags for the repository server, word-split (for example
                  "--socket-recv-buffer 4MiB": see the report's UDP drops)
  --bin DIR       use sipshard and sipshard-soak from DIR instead of building them
  -h, --help      this text

Flags after -- go to sipshard-soak as they are (\`sipshard-soak --help\`: mix shares,
sockets, seed...). The server's output is DIR/server.log, the soak's DIR/soak.out (the
report as printed) and DIR/soak.err (its progress, one line a second).
EOF
}

DURATION=1800 RATE=5000 EXPIRE=30 SHARDS=2 OUTDIR="" GATEWAY=0 BIN="" SERVER_FLAGS=""
SOAK_ARGS=()
while [ $# -gt 0 ]; do
    case $1 in
        --duration) DURATION=$2; shift 2 ;;
        --rate) RATE=$2; shift 2 ;;
        --expire) EXPIRE=$2; shift 2 ;;
        --shards) SHARDS=$2; shift 2 ;;
        --out) OUTDIR=$2; shift 2 ;;
        --gateway) GATEWAY=1; shift ;;
        --server-flags) SERVER_FLAGS=$2; shift 2 ;;
        --bin) BIN=$2; shift 2 ;;
        --) shift; SOAK_ARGS=("$@"); break ;;
        -h | --help) usage; exit 0 ;;
        *) echo "run.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
    esac
done

if [ -z "$BIN" ]; then
    echo "run.sh: building the release binaries" >&2
    (cd "$ROOT" && cargo build --release -q -p sipshard -p sipshard-load)
    BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release
fi
if [ ! -x "$BIN/sipshard" ] || [ ! -x "$BIN/sipshard-soak" ]; then
    echo "run.sh: $BIN lacks sipshard or sipshard-soak" >&2
    exit 2
fi
if [ -z "$OUTDIR" ]; then
    OUTDIR=$(mktemp -d "${TMPDIR:-/tmp}/sipshard-soak-${RATE}x${DURATION}.XXXXXX")
fi
mkdir -p "$OUTDIR"
OUTDIR=$(cd "$OUTDIR" && pwd)

# glommio's io_uring rings and buffers are locked memory; lift the limit where we may.
ulimit -l unlimited 2>/dev/null || true

SERVER_PID="" GW_PID=""
cleanup() {
    stop_pid "$GW_PID"
    stop_pid "$SERVER_PID"
}
trap cleanup EXIT

# start_server LOG ARGS...: sipshard serve ARGS in the background (its pid in STARTED); waits
# up to 15 s for it to say "sipshard: ready".
start_server() {
    local log=$1 i
    shift
    "$BIN/sipshard" serve "$@" --log-level warn >"$log" 2>&1 &
    STARTED=$!
    for i in $(seq 150); do
        if grep -q '^sipshard: ready' "$log"; then
            return 0
        fi
        kill -0 "$STARTED" 2>/dev/null || break
        sleep 0.1
    done
    echo "run.sh: sipshard did not start; its output ($log):" >&2
    cat "$log" >&2
    return 1
}

PORT=$(free_port)
CTL=$(free_port)
read -r -a EXTRA <<<"$SERVER_FLAGS"
start_server "$OUTDIR/server.log" -c "$ROOT/docs/examples/siprepo.toml" --shards "$SHARDS" \
    --port "$PORT" --control "127.0.0.1:$CTL" --repo-expire "$EXPIRE" ${EXTRA[@]+"${EXTRA[@]}"}
SERVER_PID=$STARTED
GW_ARGS=()
if [ "$GATEWAY" = 1 ]; then
    GPORT=$(free_port)
    GCTL=$(free_port)
    GMSRP=$(free_port)
    start_server "$OUTDIR/gateway.log" -c "$ROOT/docs/examples/msrp-gateway.toml" \
        --shards "$SHARDS" --port "$GPORT" --control "127.0.0.1:$GCTL" \
        --msrp-listen "127.0.0.1:$GMSRP"
    GW_PID=$STARTED
    SESSIONS=$(awk -v d="$DURATION" 'BEGIN { n = int(d / 60); print (n < 5 ? 5 : n) }')
    GW_ARGS=(--gateway-target "127.0.0.1:$GPORT" --gateway-control "127.0.0.1:$GCTL"
        --gateway-sessions "$SESSIONS")
fi
{
    echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "host: $(uname -srm), $(nproc) CPUs allowed"
    echo "server: $BIN/sipshard serve -c docs/examples/siprepo.toml --shards $SHARDS --port $PORT --control 127.0.0.1:$CTL --repo-expire $EXPIRE${SERVER_FLAGS:+ $SERVER_FLAGS} (pid $SERVER_PID)"
    echo "git: $(cd "$ROOT" && git describe --always --dirty 2>/dev/null || echo unknown)"
} >"$OUTDIR/meta.txt"

echo "run.sh: $DURATION s at $RATE parks/s against 127.0.0.1:$PORT (pid $SERVER_PID); output in $OUTDIR" >&2
set +e
"$BIN/sipshard-soak" --target "127.0.0.1:$PORT" --control "127.0.0.1:$CTL" \
    --pid "$SERVER_PID" --duration "$DURATION" --rate "$RATE" --expire "$EXPIRE" \
    --out "$OUTDIR" ${GW_ARGS[@]+"${GW_ARGS[@]}"} ${SOAK_ARGS[@]+"${SOAK_ARGS[@]}"} >"$OUTDIR/soak.out" 2>"$OUTDIR/soak.err"
RC=$?
set -e
stop_pid "$GW_PID"
GW_PID=""
stop_pid "$SERVER_PID"
SERVER_PID=""
if ! grep -E '^(outcomes|duplicates|missing|late answers|gateway|violations|verdict):' "$OUTDIR/soak.out"; then
    cat "$OUTDIR/soak.err" >&2
fi
grep -E '^  (rss|fds|cpu):' "$OUTDIR/soak.out" || true
echo "run.sh: report: $OUTDIR/report.txt, report.svg, samples.csv (sipshard-soak exit $RC)"
exit "$RC"
