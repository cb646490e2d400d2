#!/usr/bin/env bash
# make run's promise: `logdoctor smoke` (1,000 canaries through the embedded
# pipeline into the embedded Elasticsearch, probes included) finishes in
# under 10 s after the build. Times it with hyperfine and prints the ratio
# to that budget, plus peak RSS from /usr/bin/time.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-bin/logdoctor}
[ -x "$BIN" ] || make -s build
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
hyperfine --warmup 1 --runs 5 --export-json "$out/h.json" \
  "$BIN smoke -o json --count 1000 > /dev/null" \
  "$BIN smoke -o json --count 1000 --chaos --fail-on never > /dev/null"
/usr/bin/time -f '%M' -o "$out/rss" "$BIN" smoke -o json --count 1000 > /dev/null
python3 - "$out/h.json" "$(cat "$out/rss")" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"]
print(f"smoke 1,000 canaries: mean {r[0]['mean']:.2f}s = {r[0]['mean']/10:.2f}x of the 10 s budget; "
      f"with --chaos {r[1]['mean']:.2f}s; peak RSS {int(sys.argv[2])/1024:.0f} MiB")
PY
