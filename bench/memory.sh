#!/usr/bin/env bash
# bench/memory.sh: peak RSS (VmHWM) of logdoctor's servers under hostile
# load, each case in a fresh process with its default flags: gzip bombs
# (1 GiB inflated from ~1 MB, half zeros, half valid 1 MiB entries), alone
# and next to 100 valid senders waiting for acks, against `pipeline run`
# and `forward serve`; six concurrent 90 MB bulks against `es serve` (with
# --data, and in memory where the documents themselves stay).
# Targets: every bomb refused, every valid chunk acked, peak RSS under the
# in-flight budget (256 MiB by default) plus 64 MiB.
#
# MEMORY_BENCH_BIN measures another build instead (an older one, for a
# before/after); it must take the same flags as the cases below.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done; rm -rf "$tmp"; }
trap cleanup EXIT

bin=${MEMORY_BENCH_BIN:-}
if [ -z "$bin" ]; then
  CGO_ENABLED=0 go build -o "$tmp/logdoctor" ./cmd/logdoctor
  bin=$tmp/logdoctor
fi
CGO_ENABLED=0 go build -o "$tmp/memload" ./bench/memload
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done; echo "nothing listens on $1" >&2; exit 1; }
rss_mb() { awk '/^VmRSS/ {print int($2/1000)}' "/proc/$1/status"; }
stop() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

# forward_case LABEL BOMBS SENDERS COMMAND...: start COMMAND listening on
# $port, then load it.
forward_case() {
  local label=$1 bombs=$2 senders=$3; shift 3
  "$@" >/dev/null 2>"$tmp/err" &
  local pid=$!
  pids+=("$pid")
  wait_port "$port"
  sleep 0.5
  printf '%-42s idle %4s MB; ' "$label" "$(rss_mb "$pid")"
  "$tmp/memload" forward -addr "127.0.0.1:$port" -pid "$pid" -bombs "$bombs" -senders "$senders"
  stop "$pid"
}

pipeline() {
  port=$(free_port)
  forward_case "pipeline run: $1 bombs, $2 senders" "$1" "$2" \
    "$bin" pipeline run --forward "127.0.0.1:$port" --buffer-dir "$tmp/buf-$1-$2" --log-level error -o json
}
serve() {
  port=$(free_port)
  forward_case "forward serve: $1 bombs, $2 senders" "$1" "$2" \
    "$bin" forward serve --listen "127.0.0.1:$port" --heartbeat=false -o json
}

echo "== peak RSS under gzip bombs ($("$bin" --version 2>&1 | head -1))"
pipeline 1 0
pipeline 12 0
pipeline 12 100
serve 4 0
serve 12 0
serve 12 100

# es_case LABEL ARGS...: six concurrent 90 MB bulks, resent on 429.
es_case() {
  local label=$1; shift
  local port
  port=$(free_port)
  "$bin" es serve --listen "127.0.0.1:$port" -o json "$@" >/dev/null 2>"$tmp/err" &
  local pid=$!
  pids+=("$pid")
  wait_port "$port"
  sleep 0.5
  printf '%-42s idle %4s MB; ' "$label" "$(rss_mb "$pid")"
  "$tmp/memload" es -url "http://127.0.0.1:$port" -pid "$pid" -bulks 6 -size 90000000
  stop "$pid"
}
es_case "es serve --data: 6 x 90 MB bulks" --data "$tmp/es-data"
es_case "es serve (in memory): 6 x 90 MB bulks"
