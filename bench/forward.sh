#!/usr/bin/env bash
# bench/forward.sh: the forward probe's load mode against `logdoctor forward
# serve` on loopback, 200-byte records, acked events per second per mode
# (target: >= 500,000/s in PackedForward with 1,000-event chunks), and the
# same receiver fed by Debian's python3-fluent-logger for a ratio.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
serve_pid=
cleanup() {
  [ -n "$serve_pid" ] && kill "$serve_pid" 2>/dev/null && wait "$serve_pid" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
CGO_ENABLED=0 go build -o "$tmp/logdoctor" ./cmd/logdoctor
bin=$tmp/logdoctor
COUNT=${FORWARD_BENCH_COUNT:-2000000}
port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
addr=127.0.0.1:$port
"$bin" forward serve --listen "$addr" --heartbeat=false -o json >"$tmp/serve.json" 2>"$tmp/serve.err" &
serve_pid=$!
for _ in $(seq 100); do grep -q listening "$tmp/serve.err" 2>/dev/null && break; sleep 0.05; done

field() { /usr/bin/python3 -c "import json,sys; d=json.load(open('$1'))['data']['load']; print($2)"; }

run() { # name, probe flags...
  local name=$1; shift
  "$bin" forward probe "$addr" --count "$COUNT" --record-size 200 --fail-on never -o json "$@" >"$tmp/$name.json"
  printf '%-34s %12s acked events/s  ack p50 %6s ms  p99 %6s ms  errors %s\n' "$name" \
    "$(field "$tmp/$name.json" 'int(d["acked_events_per_second"])')" \
    "$(field "$tmp/$name.json" 'd["ack_latency"]["p50_ms"]')" \
    "$(field "$tmp/$name.json" 'd["ack_latency"]["p99_ms"]')" \
    "$(field "$tmp/$name.json" 'sum(d["errors"].values())')"
}

echo "forward probe load mode -> forward serve on $addr, $COUNT events of ~200 bytes"
run packed-1000x1 --mode packed --chunk-events 1000
run packed-1000x4 --mode packed --chunk-events 1000 --concurrency 4
run forward-1000x1 --mode forward --chunk-events 1000
run compressed-1000x1 --mode compressed --chunk-events 1000
run packed-1000x1-new-connection --mode packed --chunk-events 1000 --new-connection
COUNT=$((COUNT / 20)) run message-1x1 --mode message --chunk-events 1

ld=$(field "$tmp/packed-1000x1.json" 'int(d["acked_events_per_second"])')

# The same receiver fed by python3-fluent-logger (Message mode, no acks: the
# library has none), as a yardstick.
PYN=${FORWARD_BENCH_PY:-100000}
py=$(/usr/bin/python3 - "$port" "$PYN" <<'PY'
import sys, time
from fluent import sender
port, n = int(sys.argv[1]), int(sys.argv[2])
s = sender.FluentSender("bench.py", host="127.0.0.1", port=port)
rec = {"logdoctor": "bench", "seq": 0, "message": "x" * 150}
t = time.perf_counter()
for i in range(n):
    rec["seq"] = i
    s.emit("e", rec)
s.close()
print(int(n / (time.perf_counter() - t)))
PY
)
printf '%-34s %12s events/s (no acks)\n' "python3-fluent-logger message" "$py"
echo "ratio: logdoctor packed acked events/s / python3-fluent-logger events/s = $(/usr/bin/python3 -c "print(round($ld/$py, 1))")x"
if [ "$ld" -ge 500000 ]; then echo "target >= 500000 acked events/s (packed, 1000-event chunks): met ($ld)"
else echo "target >= 500000 acked events/s (packed, 1000-event chunks): NOT met ($ld)"; fi
kill -INT "$serve_pid"; wait "$serve_pid" || true; serve_pid=
/usr/bin/python3 -c "import json; d=json.load(open('$tmp/serve.json'))['data']; print('serve counted', d['stats']['events'], 'events,', d['stats']['acks'], 'acks,', d['stats']['errors'], 'connection errors')"
