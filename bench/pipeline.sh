#!/usr/bin/env bash
# Benchmark of `logdoctor pipeline run` (durable buffer, embedded essim)
# fed by `logdoctor forward probe` in load mode: PackedForward, 1,000-event
# chunks, 200-byte records, acks on. Prints acked events/s, events/s
# indexed into essim end to end, ack latency p99 at half that rate, and the
# pipeline's peak RSS. Targets (2 cores): >= 150,000 events/s, p99 < 50 ms
# at half rate, RSS < 256 MiB.
#
# Knobs: PIPELINE_BENCH_EVENTS (default 1,000,000), PIPELINE_BENCH_CONC
# (probe connections, default 16), PIPELINE_BENCH_ARGS (extra pipeline flags).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${PIPELINE_BENCH_EVENTS:-1000000}
C=${PIPELINE_BENCH_CONC:-16}
tmp=$(mktemp -d)
pid=""
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null
  [ -n "${PIPELINE_BENCH_KEEP:-}" ] && cp -r "$tmp" "$PIPELINE_BENCH_KEEP"
  rm -rf "$tmp"
}
trap cleanup EXIT
CGO_ENABLED=0 go build -o "$tmp/logdoctor" ./cmd/logdoctor
ld="$tmp/logdoctor"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')

/usr/bin/time -v -o "$tmp/time.txt" "$ld" pipeline run --forward "127.0.0.1:$port" --buffer-dir "$tmp/buf" \
  --metrics "127.0.0.1:$mport" --log-level warn --shutdown-timeout 60s -o json ${PIPELINE_BENCH_ARGS:-} \
  > "$tmp/report.json" 2> "$tmp/pipeline.err" &
timepid=$!
for _ in $(seq 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  sleep 0.1
done
pid=$(pgrep -P "$timepid" -f "pipeline run" || true)

indexed() { curl -s "127.0.0.1:$mport/metrics" | awk '/^logdoctor_pipeline_bulk_items_total/ {s+=$2} END {printf "%d", s}'; }
probe() { "$ld" forward probe "127.0.0.1:$port" --mode packed --chunk-events 1000 --record-size 200 \
  --concurrency "$C" --fail-on never -o json "$@"; }
field() { python3 -c "import json,sys; d=json.load(open('$1'))['data']['load']; print($2)"; }

# 1. As fast as acks come.
t0=$(date +%s.%N)
probe --count "$N" > "$tmp/max.json"
t1=$(date +%s.%N)
for _ in $(seq 600); do
  [ "$(indexed)" -ge "$N" ] && break
  sleep 0.1
done
t2=$(date +%s.%N)
acked=$(field "$tmp/max.json" "int(d['acked_events_per_second'])")
e2e=$(python3 -c "print(int($N/($t2-$t0)))")

# 2. At half the end-to-end rate (what the pipeline and essim sustain
# together; acks alone can run ahead into the buffer): ack latency.
half=$((e2e / 2))
probe --count $((N / 2)) --rate "$half" > "$tmp/half.json"
p99=$(field "$tmp/half.json" "d['ack_latency']['p99_ms']")
p50=$(field "$tmp/half.json" "d['ack_latency']['p50_ms']")

kill -TERM "$pid"
wait "$timepid" || true
pid=""
rss=$(awk '/Maximum resident set size/ {print int($6/1024)}' "$tmp/time.txt")

echo "pipeline bench: $N events, PackedForward 1000-event chunks, 200-byte records, acks on, $C connections, durable buffer, embedded essim"
echo "  acked events/s (max):             $acked   (target >= 150000)"
echo "  indexed into essim, end to end:   $e2e events/s"
echo "  ack latency at $half events/s:    p50 ${p50} ms, p99 ${p99} ms   (target p99 < 50)"
echo "  peak RSS (pipeline + disk-backed embedded essim, $((N + N / 2)) documents): ${rss} MiB   (target < 256)"
# 3. The pipeline's own RSS: the same max-rate load with Elasticsearch in
# a separate process (logdoctor es serve), since the embedded essim keeps
# an index of every document (about 43 bytes each) in the same heap.
esport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$ld" es serve --listen "127.0.0.1:$esport" -o json > /dev/null 2>&1 &
espid=$!
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$esport") 2>/dev/null && break; sleep 0.1; done
rm -rf "$tmp/buf2"
/usr/bin/time -v -o "$tmp/time2.txt" "$ld" pipeline run --forward "127.0.0.1:$port" --buffer-dir "$tmp/buf2" \
  --es "http://127.0.0.1:$esport" --log-level warn --shutdown-timeout 60s -o json ${PIPELINE_BENCH_ARGS:-} \
  > /dev/null 2> "$tmp/pipeline2.err" &
timepid=$!
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
pid=$(pgrep -P "$timepid" -f "pipeline run" || true)
probe --count "$N" > "$tmp/max2.json"
acked2=$(field "$tmp/max2.json" "int(d['acked_events_per_second'])")
probe --count $((N / 2)) --rate $((acked2 / 2)) > "$tmp/half2.json"
p99b=$(field "$tmp/half2.json" "d['ack_latency']['p99_ms']")
kill -TERM "$pid"
wait "$timepid" || true
pid=""
kill "$espid" 2>/dev/null; wait "$espid" 2>/dev/null || true
rss2=$(awk '/Maximum resident set size/ {print int($6/1024)}' "$tmp/time2.txt")
echo "  pipeline alone (ES in another process): acked $acked2 events/s, p99 ${p99b} ms at $((acked2 / 2)) events/s, peak RSS ${rss2} MiB   (target < 256)"
python3 -c "
import json; d=json.load(open('$tmp/report.json'))['data']; s=d['stats']
print('  pipeline report: indexed %d, already indexed (409) %d, retried %d, transport errors %d, left in buffer %d' % (s['output']['indexed'], s['output']['duplicates'], s['output']['retried'], s['output']['transport_err'], d['left_in_buffer']))
print('  ratio acked/target: %.2f' % ($acked/150000.0))"
