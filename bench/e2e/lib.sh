# Helpers shared by bench/e2e/compare.sh and bench/e2e/sipp-crosscheck.sh (sourced, not run).
# Needs: bash, coreutils, procps (pgrep), python3, taskset (util-linux) when pinning.

# Seconds (decimal) from a duration as sipshard-load takes it: 500ms, 10s, 2m, or bare seconds.
dur_s() {
    local d=$1
    case $d in
        *ms) awk -v v="${d%ms}" 'BEGIN { printf "%.3f", v / 1000 }' ;;
        *s) printf '%s' "${d%s}" ;;
        *m) awk -v v="${d%m}" 'BEGIN { printf "%.3f", v * 60 }' ;;
        *) printf '%s' "$d" ;;
    esac
}

# A port free for both UDP and TCP on 127.0.0.1 (the kernel's pick for a UDP bind to port 0).
free_port() {
    python3 - <<'EOF'
import socket
for _ in range(100):
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.bind(("127.0.0.1", 0))
    port = u.getsockname()[1]
    t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        t.bind(("127.0.0.1", port))
    except OSError:
        continue
    finally:
        t.close()
        u.close()
    print(port)
    break
EOF
}

# The CPUs this shell may run on, one per line (from the affinity mask, not nproc's count).
allowed_cpus() {
    python3 -c 'import os; print("\n".join(map(str, sorted(os.sched_getaffinity(0)))))'
}

# pin_cores SCRIPT SERVER_DESC LOAD_DESC: with PIN=1 and two or more allowed CPUs, the server goes
# on SERVER_CORE (default: the last allowed CPU) and the load on LOAD_CORE (default: the first).
# Sets SPIN and LPIN (taskset prefixes), SHCORES and LCORES (--cores flags) and PINNING (a line
# for the run's meta); with fewer CPUs or PIN=0 they are empty and PIN becomes 0.
pin_cores() {
    local script=$1 server=$2 load=$3
    local -a cpus
    mapfile -t cpus < <(allowed_cpus)
    if [ "${#cpus[@]}" -lt 2 ]; then PIN=0; fi
    if [ "$PIN" = 1 ]; then
        command -v taskset >/dev/null || { echo "$script: taskset not found (use --no-pin)" >&2; exit 1; }
        SERVER_CORE=${SERVER_CORE:-${cpus[${#cpus[@]} - 1]}}
        LOAD_CORE=${LOAD_CORE:-${cpus[0]}}
        [ "$SERVER_CORE" != "$LOAD_CORE" ] || { echo "$script: server and load on the same core" >&2; exit 2; }
        SPIN=(taskset -c "$SERVER_CORE")
        LPIN=(taskset -c "$LOAD_CORE")
        LCORES=(--cores "$LOAD_CORE")
        SHCORES=(--cores "$SERVER_CORE")
        PINNING="$server pinned to CPU $SERVER_CORE, $load pinned to CPU $LOAD_CORE (taskset)"
    else
        SPIN=() LPIN=() LCORES=() SHCORES=()
        PINNING="nothing pinned (${#cpus[@]} CPU(s) allowed or --no-pin)"
    fi
}

# "TICKS NS SLICES" of a process and all its direct children (Kamailio's workers are children of
# its main process): TICKS = utime + stime from /proc/PID/stat (clock ticks, every thread of the
# process), NS = the scheduler's on-CPU time summed over /proc/PID/task/*/schedstat, SLICES = the
# times its threads were put on a CPU (schedstat's third field): about one per wake-up.
cpu_snapshot() {
    local root=$1 p line rest ticks=0 ns=0 slices=0 t s f
    local -a fields
    for p in "$root" $(pgrep -P "$root" || true); do
        [ -r "/proc/$p/stat" ] || continue
        read -r line <"/proc/$p/stat" || continue
        rest=${line##*) }
        read -r -a fields <<<"$rest"
        # fields[0] is field 3 (state): utime (14) and stime (15) are fields[11] and fields[12].
        ticks=$((ticks + fields[11] + fields[12]))
        for f in /proc/"$p"/task/*/schedstat; do
            read -r t _ s <"$f" 2>/dev/null || continue
            ns=$((ns + t))
            slices=$((slices + s))
        done
    done
    echo "$ticks $ns $slices"
}

# utime+stime ticks of every process except the ones named (and their direct children): the
# rest of the machine's load (other users' builds, kernel threads). Processes that start and end
# between two snapshots are missed, so this is a lower bound.
others_ticks() {
    local -A skip=()
    local p q line rest total=0
    local -a fields
    for p in "$@"; do
        skip[$p]=1
        for q in $(pgrep -P "$p" || true); do skip[$q]=1; done
    done
    skip[$$]=1
    for f in /proc/[0-9]*/stat; do
        p=${f#/proc/}
        p=${p%/stat}
        [ -z "${skip[$p]:-}" ] || continue
        read -r line <"$f" 2>/dev/null || continue
        rest=${line##*) }
        read -r -a fields <<<"$rest"
        total=$((total + fields[11] + fields[12]))
    done
    echo "$total"
}

# Stop a process we started: SIGTERM, up to 5 s, then SIGKILL. Quiet if it is gone already.
stop_pid() {
    local pid=$1 i
    [ -n "$pid" ] || return 0
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}

# Wait until a SIP server answers on 127.0.0.1:PORT (any final reply to an OPTIONS), up to 15 s.
wait_sip() {
    local load=$1 port=$2 pid=$3 i
    for i in $(seq 75); do
        kill -0 "$pid" 2>/dev/null || return 1
        if "$load" "127.0.0.1:$port" --scenario options --requests 1 --rate 100 \
            --timeout 200ms -q 2>/dev/null | grep -q 'answered 1 '; then
            return 0
        fi
        sleep 0.2
    done
    return 1
}

# run_timed FILE CMD...: run CMD, then write "USER_S SYS_S WALL_S RC" (the CPU time of CMD and
# everything it waited for, from getrusage(RUSAGE_CHILDREN)) to FILE; returns CMD's status.
run_timed() {
    local file=$1
    shift
    python3 - "$file" "$@" <<'EOF2'
import resource, subprocess, sys, time
t0 = time.monotonic()
rc = subprocess.call(sys.argv[2:])
wall = time.monotonic() - t0
u = resource.getrusage(resource.RUSAGE_CHILDREN)
with open(sys.argv[1], "w") as f:
    f.write(f"{u.ru_utime:.3f} {u.ru_stime:.3f} {wall:.3f} {rc}\n")
sys.exit(rc if 0 <= rc < 256 else 1)
EOF2
}

# Datagrams the kernel dropped at the UDP sockets bound to local port $1 (all of them: one per
# shard with SO_REUSEPORT), from /proc/net/udp and udp6: receive buffer full. Read it before the
# server stops: the count goes with the socket.
udp_drops() {
    local hex
    hex=$(printf '%04X' "$1")
    cat /proc/net/udp /proc/net/udp6 2>/dev/null |
        awk -v p=":$hex" '$2 ~ p"$" { d += $NF } END { print d + 0 }'
}
