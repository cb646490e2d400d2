#!/usr/bin/env bash
# bench/es.sh: essim's bulk throughput (1,000-document bulks of ~300-byte
# documents over one keep-alive connection, from a Python http.client loader
# and from python3-elasticsearch's helpers.bulk), and a full `logdoctor es
# probe` against a 3-node essim timed with hyperfine next to curl fetching the
# same four endpoints once. Everything stays on 127.0.0.1; data lives in a
# temp dir.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$tmp"; }
trap cleanup EXIT

CGO_ENABLED=0 go build -o "$tmp/logdoctor" ./cmd/logdoctor
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_up() { for _ in $(seq 100); do curl -sf "$1/" >/dev/null && return 0; sleep 0.05; done; echo "essim at $1 did not start" >&2; exit 1; }

port=$(free_port)
"$tmp/logdoctor" es serve --listen "127.0.0.1:$port" 2>/dev/null >/dev/null &
pids+=($!)
url="http://127.0.0.1:$port"
wait_up "$url"

echo "== essim bulk throughput (raw keep-alive loader, 200 bulks x 1000 docs)"
/usr/bin/python3 - "$port" <<'PY'
import http.client, sys, time
port = int(sys.argv[1])
pad = "x" * 200
body = "".join('{"index":{"_index":"bench"}}\n{"@timestamp":"2026-11-21T17:00:00Z","host":"web-%d","seq":%d,"level":"info","message":"%s"}\n' % (i % 7, i, pad) for i in range(1000)).encode()
c = http.client.HTTPConnection("127.0.0.1", port)
t = time.perf_counter()
for _ in range(200):
    c.request("POST", "/_bulk", body, {"Content-Type": "application/x-ndjson"})
    r = c.getresponse(); r.read()
    assert r.status == 200, r.status
dt = time.perf_counter() - t
print("raw loader: %d docs in %.2fs = %.0f docs/s (%.1f MB/s)" % (200000, dt, 200000 / dt, len(body) * 200 / dt / 1e6))
PY

if /usr/bin/python3 -c 'import elasticsearch' 2>/dev/null; then
  echo "== python3-elasticsearch helpers.bulk into essim (50,000 docs)"
  /usr/bin/python3 -W ignore - "$url" <<'PY'
import sys, time
from elasticsearch import Elasticsearch, helpers
es = Elasticsearch([sys.argv[1]])
pad = "x" * 200
t = time.perf_counter()
ok, _ = helpers.bulk(es, ({"_index": "pybench", "seq": i, "message": pad} for i in range(50000)), chunk_size=1000)
dt = time.perf_counter() - t
print("helpers.bulk: %d docs in %.2fs = %.0f docs/s (client-bound)" % (ok, dt, ok / dt))
PY
fi

echo "== go benchmark (server and Go client on the same 2 cores)"
go test -run '^$' -bench 'BenchmarkBulk' -benchtime 3s ./pkg/essim | grep -E '^Benchmark'

p1=$(free_port)
"$tmp/logdoctor" es serve --listen "127.0.0.1:$p1" --nodes 3 2>/dev/null >/dev/null &
pids+=($!)
u3="http://127.0.0.1:$p1"
wait_up "$u3"
probe="$tmp/logdoctor es probe $u3 http://127.0.0.1:$((p1+1)) http://127.0.0.1:$((p1+2)) --index bench-canary -o json --fail-on never"
curls="curl -sf $u3/ -o /dev/null && curl -sf $u3/_cluster/health -o /dev/null && curl -sf $u3/_nodes/http -o /dev/null && curl -sf $u3/_nodes/stats -o /dev/null"
echo "== full es probe (3 nodes, bulk check, 500ms idle watch) vs curl of 4 endpoints"
if command -v hyperfine >/dev/null; then
  hyperfine -N --warmup 2 --runs 10 --export-json "$tmp/h.json" "$probe" "bash -c '$curls'" >/dev/null
  python3 - "$tmp/h.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"]
p, c = r[0]["mean"], r[1]["mean"]
print("es probe: %.0f ms (target < 1000 ms); curl x4: %.0f ms; ratio %.1fx (the probe makes ~40 requests, a 500 ms idle watch and 200 ms of stats interval)" % (p * 1000, c * 1000, p / c))
PY
else
  /usr/bin/time -f "es probe: %e s, max RSS %M KiB" $probe >/dev/null
fi
