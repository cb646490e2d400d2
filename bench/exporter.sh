#!/usr/bin/env bash
# Benchmark: `logdoctor exporter` at its default 15 s interval, reading a
# table of at least 30,000 TCP sockets (bench/sockholder, ESTABLISHED and
# CLOSE_WAIT, which do not expire during the run) and watching one
# discovered shipper (a real Fluent Bit with its HTTP server, from
# ../shared/peers, when present). Prometheus is played by curl, scraping
# every 15 s during the run and then 30 times in a row. Targets (issue 16):
#   average CPU   < 1% of one core
#   peak RSS      < 50 MiB
#   one scrape    < 50 ms
#
# As root it runs in a PID namespace of its own (so discovery sees only
# this Fluent Bit, not whatever else runs here) and holds the sockets in a
# network namespace of its own, which the exporter reads with --pid
# (netlink, entering the namespace). Without root everything shares the
# host's namespaces and discovery may find other shippers.
#
# Knobs: HOLDERS, ESTABLISHED, CLOSE_WAIT (per holder), RUN (seconds),
# INTERVAL.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -eq 0 ] && [ -z "${LDBENCH_INNER:-}" ] && command -v unshare >/dev/null; then
  exec unshare --pid --fork --mount-proc env LDBENCH_INNER=1 bash "$0" "$@"
fi
HOLDERS=${HOLDERS:-2}
ESTABLISHED=${ESTABLISHED:-6500}
CLOSE_WAIT=${CLOSE_WAIT:-2000}
TIME_WAIT=${TIME_WAIT:-0}
RUN=${RUN:-60}
INTERVAL=${INTERVAL:-15s}

for t in curl python3; do
  command -v "$t" >/dev/null || { echo "bench/exporter.sh: needs $t" >&2; exit 1; }
done

. bench/lib/sockholders.sh
hold_sockets ldexpbench

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# One shipper to discover: Fluent Bit with its HTTP server.
shipper="none"
peers=../shared/peers/setup.sh
if [ -f "$peers" ]; then
  eval "$(bash "$peers")"
  fbport=$(free_port)
  cat >"$tmp/fluent-bit.conf" <<EOF
[SERVICE]
    Flush       1
    HTTP_Server On
    HTTP_Listen 127.0.0.1
    HTTP_Port   $fbport
[INPUT]
    Name dummy
    Rate 10
[OUTPUT]
    Name  null
    Match *
EOF
  "$FLUENT_BIT" -c "$tmp/fluent-bit.conf" >"$tmp/fluent-bit.log" 2>&1 &
  pids+=($!)
  shipper="fluent-bit (pid $!)"
  for _ in $(seq 1 100); do curl -fs "127.0.0.1:$fbport/api/v1/health" >/dev/null 2>&1 && break; sleep 0.1; done
else
  echo "no $peers: running without a shipper to discover" >&2
fi

pid_flag=()
if [ -n "$ns" ]; then pid_flag=(--pid "${holder_pids[0]}"); fi
port=$(free_port)
"$ld" exporter --listen "127.0.0.1:$port" --interval "$INTERVAL" "${pid_flag[@]}" >"$tmp/exporter.log" 2>&1 &
exp=$!
pids+=($exp)
url="http://127.0.0.1:$port/metrics"
# The first samples: the socket table read once, the shipper found.
for _ in $(seq 1 300); do
  m=$(curl -fs "$url" 2>/dev/null || true)
  if grep -q '^logdoctor_source_up{source="sockets",target=""} 1' <<<"$m" &&
     { [ "$shipper" = none ] || grep -q '^logdoctor_source_up{source="shipper",target="fluent-bit"} 1' <<<"$m"; }; then
    break
  fi
  sleep 0.1
done
grep -q '^logdoctor_source_up{source="sockets",target=""} 1' <<<"$m" || { echo "exporter never sampled:" >&2; cat "$tmp/exporter.log" >&2; exit 1; }

ticks() { awk '{print $14+$15}' "/proc/$exp/stat"; }
hz=$(getconf CLK_TCK)
c0=$(ticks); t0=$(date +%s.%N)
# Prometheus's part during the run: a scrape every 15 s.
end=$(( $(date +%s) + RUN ))
while [ "$(date +%s)" -lt "$end" ]; do
  curl -fs -o /dev/null "$url"
  sleep 15 & wait $!
done
c1=$(ticks); t1=$(date +%s.%N)
lat=()
for _ in $(seq 1 30); do lat+=("$(curl -fs -o /dev/null -w '%{time_total}' "$url")"); done
m=$(curl -fs "$url")
hwm=$(awk '/VmHWM/{print $2}' "/proc/$exp/status")
sock_s=$(awk -F' ' '/^logdoctor_source_duration_seconds\{source="sockets",target=""\}/{print $2}' <<<"$m")
peers_n=$(awk '/^logdoctor_tcp_peers\{shipper=""\}/{print $2}' <<<"$m")
series=$(grep -vc '^#' <<<"$m")
python3 - "$c0" "$c1" "$t0" "$t1" "$hz" "$hwm" "$sock_s" "$peers_n" "$series" "$total" "$shipper" "$INTERVAL" "${lat[@]}" <<'PY'
import sys, statistics
c0, c1, t0, t1, hz, hwm = (float(x) for x in sys.argv[1:7])
sock_s, peers_n, series, total, shipper, interval = sys.argv[7:13]
lat = sorted(float(x) * 1000 for x in sys.argv[13:])
cpu = (c1 - c0) / hz / (t1 - t0) * 100
rss = hwm / 1024
med, p90, mx = statistics.median(lat), lat[int(len(lat) * 0.9) - 1], lat[-1]
print(f"exporter over {total} sockets ({peers_n} peers), shipper: {shipper}, interval {interval}, {series} series per scrape")
print(f"  one socket sample:  {float(sock_s)*1000:.1f} ms")
print(f"  average CPU:        {cpu:.2f}% of one core over {t1 - t0:.0f} s   (target < 1%)  {'ok' if cpu < 1 else 'MISSED'}")
print(f"  peak RSS:           {rss:.1f} MiB                 (target < 50 MiB) {'ok' if rss < 50 else 'MISSED'}")
print(f"  scrape:             median {med:.1f} ms, p90 {p90:.1f} ms, max {mx:.1f} ms (target < 50 ms) {'ok' if mx < 50 else 'MISSED'}")
PY
