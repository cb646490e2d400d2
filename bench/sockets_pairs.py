"""Alternating paired timing for bench/sockets.sh.

Runs each pair of commands A, B, A, B, ... (the order flips every round so
neither side always runs on a warmer cache), takes wall time and CPU time
(user + system, from the child's rusage) of every run, and prints the
median of the per-round ratios A/B for each: on a machine shared with
other work, ratios of neighbouring runs are much steadier than ratios of
separate averages. Also prints each command's median wall, CPU and peak
RSS.

usage: sockets_pairs.py ROUNDS spec.json
spec.json: {"commands": {"name": [argv...]}, "pairs": [[a, b, target, note]]}
"""

import json
import os
import statistics
import subprocess
import sys
import time


def run(argv):
    t0 = time.perf_counter()
    p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    err = p.stderr.read()
    p.stderr.close()
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        sys.exit("%s: exit %d: %s" % (" ".join(argv), code, err.decode(errors="replace")[:500]))
    return wall, ru.ru_utime + ru.ru_stime, ru.ru_maxrss


def main():
    rounds = int(sys.argv[1])
    spec = json.load(open(sys.argv[2]))
    cmds, pairs = spec["commands"], spec["pairs"]
    samples = {name: [] for name in cmds}
    ratios = {i: ([], []) for i in range(len(pairs))}
    for name in cmds:  # warm up: page cache, binaries, the kernel's slabs
        run(cmds[name])
    for r in range(rounds):
        for i, (a, b, _, _) in enumerate(pairs):
            order = (a, b) if r % 2 == 0 else (b, a)
            got = {}
            for name in order:
                got[name] = run(cmds[name])
                samples[name].append(got[name])
            ratios[i][0].append(got[a][0] / got[b][0])
            ratios[i][1].append(got[a][1] / max(got[b][1], 1e-6))
    print("%-34s %10s %10s %12s" % ("command", "wall ms", "cpu ms", "peak RSS MiB"))
    for name, s in samples.items():
        if not s:
            continue
        print("%-34s %10.1f %10.1f %12.1f" % (name, 1000 * statistics.median(x[0] for x in s),
                                               1000 * statistics.median(x[1] for x in s), max(x[2] for x in s) / 1024))
    print()
    print("medians of %d alternating pairs:" % rounds)
    for i, (a, b, target, note) in enumerate(pairs):
        w, c = statistics.median(ratios[i][0]), statistics.median(ratios[i][1])
        verdict = ""
        if target:
            verdict = "target <= %.2fx: %s" % (target, "OK" if max(w, c) <= target else "ABOVE TARGET")
        print("  %-20s / %-12s wall %5.2fx  cpu %5.2fx  %s %s" % (a, b, w, c, verdict, note))


if __name__ == "__main__":
    main()
