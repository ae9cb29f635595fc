#!/usr/bin/env python3
"""Where a server's CPU time goes, from `perf script` output of a `perf record -g` profile.

  perf script -i perf.data -F comm,tid,ip,sym,dso | perf_breakdown.py [--top N]

Each sample is put in one bucket: kernel samples by the system call path they are under (UDP
send, UDP receive, io_uring, other), user samples by the leaf function's crate or library.
Prints a markdown table (share of samples per bucket) and the top leaf symbols.
"""
import collections
import re
import sys

KERNEL_PATHS = [
    ("kernel: UDP send (incl. loopback delivery + wakeup of the client)", ("udp_sendmsg", "udp_send_skb", "__sys_sendmmsg")),
    ("kernel: UDP receive", ("udp_recvmsg", "__skb_recv_udp", "io_recvmsg", "___sys_recvmsg", "__sys_recvfrom", "__sys_recvmmsg")),
    ("kernel: io_uring submit/wait/task work", ("io_uring", "io_submit_sqes", "io_cqring_wait", "tctx_task_work", "io_run_task_work", "io_issue_sqe")),
    ("kernel: epoll/poll/sleep/timers", ("do_epoll_wait", "do_sys_poll", "do_nanosleep", "hrtimer", "futex", "timerfd")),
    ("kernel: scheduler/interrupts/other", ("",)),
]

USER_BUCKETS = [
    ("user: SIP parser (sipshard_parser)", re.compile(r"sipshard_parser::")),
    ("user: glommio executor/reactor + liburing", re.compile(r"glommio::|io_uring|_io_uring|__io_uring|liburing")),
    ("user: sipshard route/repo/response", re.compile(r"sipshard::")),
    ("user: formatting (core::fmt)", re.compile(r"core::fmt|alloc::fmt|Display|LowerHex|pad_integral")),
    ("user: malloc/free/memcpy (libc)", re.compile(r"malloc|free|memmove|memcpy|memset|_int_|cfree|realloc")),
    ("user: hashing, memchr, other Rust std", re.compile(r"hash|memchr|core::|alloc::|std::")),
    ("user: Kamailio core", re.compile(r".*", re.S)),
]


def classify(stack):
    """stack: list of (sym, dso), leaf first."""
    if not stack:
        return "unknown"
    sym, dso = stack[0]
    if "kernel" in dso or dso.startswith("[k"):
        syms = [s for s, _ in stack]
        for name, keys in KERNEL_PATHS:
            if any(k and any(k in s for s in syms) for k in keys) or keys == ("",):
                return name
    if dso == "[vdso]":
        return "user: vdso (clock_gettime)"
    if "kamailio" in dso or dso.endswith(".so") and "/kamailio/" in dso:
        return "user: Kamailio (core + modules)"
    for name, rx in USER_BUCKETS[:-1]:
        if rx.search(sym):
            return name
    if "libc" in dso:
        return "user: libc other (syscall wrappers)"
    return "user: other (" + dso.rsplit("/", 1)[-1] + ")"


def samples(lines):
    stack = []
    for line in lines:
        line = line.rstrip("\n")
        if not line.strip():
            if stack:
                yield stack
            stack = []
            continue
        if not line.startswith((" ", "\t")):
            # sample header: comm tid
            if stack:
                yield stack
            stack = []
            continue
        m = re.match(r"\s+([0-9a-f]+)\s+(.*?)\s+\((.*)\)\s*$", line)
        if m:
            sym = re.sub(r"\+0x[0-9a-f]+$", "", m.group(2))
            stack.append((sym, m.group(3)))
    if stack:
        yield stack


def main():
    top = 25
    if len(sys.argv) == 3 and sys.argv[1] == "--top":
        top = int(sys.argv[2])
    buckets = collections.Counter()
    leaves = collections.Counter()
    n = 0
    for st in samples(sys.stdin):
        n += 1
        buckets[classify(st)] += 1
        sym, dso = st[0]
        leaves[f"{sym} ({dso.rsplit('/', 1)[-1]})"] += 1
    if not n:
        sys.exit("perf_breakdown.py: no samples")
    print(f"{n} samples")
    print()
    print("| where | share |")
    print("|---|---|")
    for name, c in buckets.most_common():
        print(f"| {name} | {100 * c / n:.1f}% |")
    print()
    print("| leaf symbol | share |")
    print("|---|---|")
    for name, c in leaves.most_common(top):
        print(f"| `{name}` | {100 * c / n:.1f}% |")


if __name__ == "__main__":
    main()
