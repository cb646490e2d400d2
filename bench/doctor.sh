#!/usr/bin/env bash
# bench/doctor.sh: a full `logdoctor doctor` run against a healthy local
# target, timed with hyperfine: a real Fluentd (supervisor and worker, from
# ../shared/peers) delivering with a file buffer to essim, with monitor_agent
# on, so every step runs (configuration, namespace, log, five metric
# samples, two socket reads, the es probe, the rules). Target: under 2 s plus
# --interval (issue 14). Everything stays on 127.0.0.1; files live in a temp
# dir.
set -euo pipefail
cd "$(dirname "$0")/.."
INTERVAL=${DOCTOR_INTERVAL:-2s}
RUNS=${RUNS:-5}
command -v hyperfine >/dev/null || { echo "bench/doctor.sh: needs hyperfine (sudo make test-deps)" >&2; exit 1; }
peers=../shared/peers/setup.sh
[ -f "$peers" ] || { echo "bench/doctor.sh: no $peers: skipped (the real shippers are needed)"; exit 0; }
eval "$(bash "$peers")"

tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM -- "-$p" 2>/dev/null || kill "$p" 2>/dev/null || true; done
  sleep 0.5
  rm -rf "$tmp"
}
trap cleanup EXIT

CGO_ENABLED=0 go build -o "$tmp/logdoctor" ./cmd/logdoctor
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
es=$(free_port); mon=$(free_port)
setsid "$tmp/logdoctor" es serve --listen "127.0.0.1:$es" >/dev/null 2>&1 &
pids+=($!)
cat > "$tmp/fluent.conf" <<EOF
<source>
  @type monitor_agent
  bind 127.0.0.1
  port $mon
</source>
<source>
  @type dummy
  tag app
  rate 200
  dummy {"message":"a healthy pipeline, for the doctor benchmark"}
</source>
<filter app.**>
  @type elasticsearch_genid
  hash_id_key _hash
</filter>
<match app.**>
  @type elasticsearch
  @id es_out
  host 127.0.0.1
  port $es
  id_key _hash
  write_operation create
  reload_connections false
  reconnect_on_error true
  request_timeout 60s
  unrecoverable_error_types ["out_of_memory_error"]
  <buffer>
    @type file
    path $tmp/buffer
    chunk_limit_size 8m
    flush_interval 1s
  </buffer>
</match>
EOF
# shellcheck disable=SC2086 # $FLUENTD is a command line
setsid $FLUENTD -c "$tmp/fluent.conf" --log "$tmp/fluentd.log" >/dev/null 2>&1 &
sup=$!
pids+=("$sup")
for _ in $(seq 300); do grep -q "fluentd worker is now running" "$tmp/fluentd.log" 2>/dev/null && break; sleep 0.1; done
grep -q "fluentd worker is now running" "$tmp/fluentd.log" || { echo "Fluentd did not start:" >&2; cat "$tmp/fluentd.log" >&2; exit 1; }
sleep 3 # a few flushes

ld="$tmp/logdoctor doctor --pid $sup --interval $INTERVAL -o json"
out=$($ld) || { echo "doctor failed on the healthy target:" >&2; echo "$out" >&2; exit 1; }
echo "$out" | python3 -c '
import json, sys
r = json.load(sys.stdin)
bad = [f for f in r["findings"] if f["severity"] != "info"]
steps = r["data"]["targets"][0]["steps"]
print("healthy target: %d finding(s) above info, %d step(s): %s" % (len(bad), len(steps), ", ".join("%s %s" % (s["name"], s["status"]) for s in steps)))
for f in bad: print("  ", f["severity"], f["id"], f["summary"])
'
hyperfine -N --warmup 1 --runs "$RUNS" --export-json "$tmp/h.json" -n doctor "$ld"
python3 - "$tmp/h.json" "$INTERVAL" <<'PY'
import json, re, sys
r = json.load(open(sys.argv[1]))["results"][0]
m = re.fullmatch(r"([0-9.]+)(ms|s)", sys.argv[2])
interval = float(m.group(1)) / (1000 if m.group(2) == "ms" else 1)
med, mx = r["median"], r["max"]
print("doctor median %.3f s, max %.3f s: %.3f s beyond --interval %s (target < 2 s) %s" % (
    med, mx, med - interval, sys.argv[2], "OK" if mx - interval < 2 else "ABOVE TARGET"))
PY
