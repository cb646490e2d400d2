#!/usr/bin/env bash
# Benchmark: `logdoctor sockets` against ss and netstat on a table of at
# least 30,000 TCP sockets (ESTABLISHED, CLOSE_WAIT with their FIN_WAIT2
# server ends, TIME_WAIT) held on loopback by bench/sockholder.
#
# As root the sockets live in a network namespace of their own (nothing of
# the host's table is touched, and deleting the namespace cleans up
# everything); otherwise on the host's loopback (127.77.0.x).
# Prints hyperfine's table, the ratios against the targets (wall time, and
# CPU time, which is steadier on a busy machine)
# (--no-processes <= 1.0x `ss -tan`, with processes <= 1.0x `ss -tanp`) and
# peak RSS (target < 40 MiB).
#
# Knobs: HOLDERS (processes holding sockets, each needs ~11k fds),
# ESTABLISHED/CLOSE_WAIT/TIME_WAIT per holder, RUNS.
set -euo pipefail
cd "$(dirname "$0")/.."
HOLDERS=${HOLDERS:-2}
ESTABLISHED=${ESTABLISHED:-4000}
CLOSE_WAIT=${CLOSE_WAIT:-2500}
TIME_WAIT=${TIME_WAIT:-3000}
RUNS=${RUNS:-15}
# EXTRA_CMD: one more command to time alongside (e.g. another build).
EXTRA=()
[ -n "${EXTRA_CMD:-}" ] && EXTRA=(-n extra "$EXTRA_CMD")

for t in hyperfine ss netstat /usr/bin/time; do
  command -v "$t" >/dev/null || { echo "bench/sockets.sh: needs $t (sudo make test-deps)" >&2; exit 1; }
done

tmp=$(mktemp -d)
ns=""
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  [ -n "$ns" ] && ip netns del "$ns" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

make -s build
ld=$PWD/bin/logdoctor
go build -o "$tmp/sockholder" ./bench/sockholder

in_ns=()
if [ "$(id -u)" -eq 0 ] && command -v ip >/dev/null; then
  ns=ldbench-$$
  ip netns add "$ns"
  ip netns exec "$ns" ip link set lo up
  in_ns=(ip netns exec "$ns")
fi

# Each holder keeps its sockets until its stdin (a fifo we hold open) closes.
for i in $(seq 1 "$HOLDERS"); do
  mkfifo "$tmp/in$i"
  "${in_ns[@]}" "$tmp/sockholder" -established "$ESTABLISHED" -close-wait "$CLOSE_WAIT" -time-wait "$TIME_WAIT" \
    <"$tmp/in$i" >"$tmp/out$i" 2>&1 &
  pids+=($!)
  exec {fd}>"$tmp/in$i"
done
for i in $(seq 1 "$HOLDERS"); do
  for _ in $(seq 1 240); do
    grep -q READY "$tmp/out$i" 2>/dev/null && break
    if ! kill -0 "${pids[$((i-1))]}" 2>/dev/null; then cat "$tmp/out$i" >&2; exit 1; fi
    sleep 0.5
  done
  grep -q READY "$tmp/out$i" || { echo "holder $i not ready" >&2; cat "$tmp/out$i" >&2; exit 1; }
done

total=$("${in_ns[@]}" awk 'NR>1' /proc/net/tcp /proc/net/tcp6 | wc -l)
echo "socket table: $total sockets ($("${in_ns[@]}" ss -tan | awk 'NR>1{print $1}' | sort | uniq -c | tr -s ' ' | paste -sd,))"
if [ "$total" -lt 30000 ]; then echo "fewer than 30,000 sockets; raise HOLDERS" >&2; exit 1; fi

# TIME_WAIT and the orphaned FIN_WAIT2 ends expire after 60 s: measure at once.
"${in_ns[@]}" hyperfine -N --warmup 2 --runs "$RUNS" --export-json "$tmp/h.json" \
  -n nop "$ld sockets -o json --no-processes --fail-on never" \
  -n procs "$ld sockets -o json --fail-on never" \
  -n ss "ss -tan" \
  -n ssp "ss -tanp" \
  -n netstat "netstat -tan" \
  "${EXTRA[@]}"

rss() { { "${in_ns[@]}" /usr/bin/time -v "$@" 2>&1 >/dev/null || true; } | awk -F': ' '/Maximum resident/{print $2}'; }
rss_nop=$(rss "$ld" sockets -o json --no-processes --fail-on never)
rss_procs=$(rss "$ld" sockets -o json --fail-on never)
rss_ss=$(rss ss -tanp)

python3 - "$tmp/h.json" "$rss_nop" "$rss_procs" "$rss_ss" <<'PY'
import json, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
m = lambda k: r[k]["mean"] * 1000
med = lambda k: r[k]["median"] * 1000
cpu = lambda k: (r[k]["user"] + r[k]["system"]) * 1000
print()
print("%-44s %9s %9s %9s" % ("", "mean ms", "median ms", "cpu ms"))
for k, name in [("nop", "logdoctor sockets -o json --no-processes"), ("procs", "logdoctor sockets -o json"),
                ("ss", "ss -tan"), ("ssp", "ss -tanp"), ("netstat", "netstat -tan")] + ([("extra", "EXTRA_CMD")] if "extra" in r else []):
    print("%-44s %9.1f %9.1f %9.1f" % (name, m(k), med(k), cpu(k)))
print()
def ratio(a, b, target):
    x = med(a) / med(b)
    print("%-44s %5.2fx wall (median; target <= %.1fx) %s; %5.2fx CPU time" % (
        a + " / " + b, x, target, "OK" if x <= target else "ABOVE TARGET", cpu(a) / cpu(b)))
ratio("nop", "ss", 1.0)
ratio("procs", "ssp", 1.0)
print("%-44s %5.2fx" % ("nop / netstat", med("nop") / med("netstat")))
nop, procs, ss = (int(v) / 1024 for v in sys.argv[2:5])
print("peak RSS: logdoctor --no-processes %.1f MiB, with processes %.1f MiB (target < 40 MiB), ss -tanp %.1f MiB" % (nop, procs, ss))
PY
