#!/usr/bin/env bash
# Startup cost every command pays: `logdoctor --version` wall time and the
# package initialisers behind it (GODEBUG=inittrace=1). Target: no single
# package init above 1 ms (gopacket/layers, 3.3 ms, was linked in until the
# live capture stopped using pcapgo; keep such tables out of the binary).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v hyperfine >/dev/null || { echo "bench/startup.sh: needs hyperfine (sudo make test-deps)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
make -s build
cp bin/logdoctor "$tmp/logdoctor"
hyperfine -N --warmup 20 --runs "${RUNS:-300}" --export-json "$tmp/h.json" "$tmp/logdoctor --version" >/dev/null
for _ in 1 2 3 4 5; do GODEBUG=inittrace=1 "$tmp/logdoctor" --version 2>&1 >/dev/null | grep '^init '; done > "$tmp/init.txt"
python3 - "$tmp/h.json" "$tmp/init.txt" <<'PY'
import json, sys, collections
r = json.load(open(sys.argv[1]))["results"][0]
print("logdoctor --version: median %.1f ms, mean %.1f ms, min %.1f ms" % (r["median"] * 1e3, r["mean"] * 1e3, r["min"] * 1e3))
per = collections.defaultdict(list)
for line in open(sys.argv[2]):
    f = line.split()
    per[f[1]].append(float(f[4]))  # "init PKG @T ms, D ms clock, ..."
med = {k: sorted(v)[len(v) // 2] for k, v in per.items()}
total = sum(med.values())
print("package init: %.2f ms in total (median of 5 runs); slowest:" % total)
for k, v in sorted(med.items(), key=lambda kv: -kv[1])[:5]:
    print("  %-60s %.2f ms %s" % (k, v, "ABOVE TARGET (1 ms)" if v > 1 else "OK"))
PY
