#!/usr/bin/env bash
# config check speed and memory: a generated configuration of CONFIG_LINES
# lines (default 10,000) spread over CONFIG_FILES included files (default
# 200), in Fluentd's and in Fluent Bit's format. Targets: under 100 ms wall
# and under 30 MiB peak RSS. Prints hyperfine's timing, the peak RSS and
# how many findings came out (a check that the work was really done).
set -euo pipefail
cd "$(dirname "$0")/.."
LINES=${CONFIG_LINES:-10000}
FILES=${CONFIG_FILES:-200}
RUNS=${RUNS:-20}
for t in hyperfine /usr/bin/time; do
  command -v "$t" >/dev/null || { echo "bench/config.sh: needs $t (sudo make test-deps)" >&2; exit 1; }
done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
make -s build
cp bin/logdoctor "$tmp/logdoctor"
go build -o "$tmp/gen" ./bench/configgen
"$tmp/gen" -dir "$tmp/fd" -files "$FILES" -lines "$LINES" -format fluentd
"$tmp/gen" -dir "$tmp/fb" -files "$FILES" -lines "$LINES" -format fluentbit
fd="$tmp/fd/main.conf"; fb="$tmp/fb/fluent-bit.conf"
for c in "$fd" "$fb"; do
  d=$(dirname "$c")
  echo "$(basename "$c"): $(cat "$c" "$d"/conf.d/*.conf | wc -l) lines in $(( $(ls "$d"/conf.d | wc -l) + 1 )) files"
done
ld="$tmp/logdoctor config check --fail-on never -o json --mtu 1500"
hyperfine -N --warmup 3 --runs "$RUNS" --export-json "$tmp/h.json" -n fluentd "$ld $fd" -n fluentbit "$ld $fb"
rss() { { /usr/bin/time -v "$@" 2>&1 >/dev/null || true; } | awk -F': ' '/Maximum resident/{print $2}'; }
python3 - "$tmp/h.json" "$(rss $ld "$fd")" "$(rss $ld "$fb")" \
  "$($ld "$fd" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["findings"]))')" \
  "$($ld "$fb" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["findings"]))')" <<'PY'
import json, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
for k, rss, n in (("fluentd", sys.argv[2], sys.argv[4]), ("fluentbit", sys.argv[3], sys.argv[5])):
    med = r[k]["median"] * 1000
    mib = int(rss) / 1024
    print("%-9s median %6.1f ms (target < 100 ms) %s, peak RSS %5.1f MiB (target < 30 MiB) %s, %s findings" % (
        k, med, "OK" if med < 100 else "ABOVE TARGET", mib, "OK" if mib < 30 else "ABOVE TARGET", n))
PY
