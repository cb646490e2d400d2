# Sourced by the benchmarks that need a large socket table (sockets.sh,
# exporter.sh): a temp dir with cleanup, a network namespace of its own
# when root (nothing of the host's table is touched, and deleting the
# namespace cleans up everything), and HOLDERS bench/sockholder processes
# each keeping ESTABLISHED, CLOSE_WAIT and TIME_WAIT sockets until the
# fifo on its stdin closes.
#
#   hold_sockets NAME   # after setting HOLDERS, ESTABLISHED, CLOSE_WAIT, TIME_WAIT
#
# leaves: $tmp, $ld (the built binary), in_ns (a command prefix running in
# the namespace, empty without one), $ns, pids (every process to stop at
# exit; add yours), holder_pids, $total (sockets in the table).

tmp=$(mktemp -d)
ns=""
pids=()
holder_pids=()
in_ns=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  [ -n "$ns" ] && ip netns del "$ns" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

hold_sockets() {
  make -s build
  ld=$PWD/bin/logdoctor
  go build -o "$tmp/sockholder" ./bench/sockholder
  if [ "$(id -u)" -eq 0 ] && command -v ip >/dev/null; then
    ns=$1-$$
    ip netns add "$ns"
    ip netns exec "$ns" ip link set lo up
    in_ns=(ip netns exec "$ns")
  fi
  local i fd
  for i in $(seq 1 "$HOLDERS"); do
    mkfifo "$tmp/in$i"
    "${in_ns[@]}" "$tmp/sockholder" -established "$ESTABLISHED" -close-wait "$CLOSE_WAIT" -time-wait "$TIME_WAIT" \
      <"$tmp/in$i" >"$tmp/out$i" 2>&1 &
    pids+=($!)
    holder_pids+=($!)
    exec {fd}>"$tmp/in$i"
  done
  for i in $(seq 1 "$HOLDERS"); do
    for _ in $(seq 1 240); do
      grep -q READY "$tmp/out$i" 2>/dev/null && break
      if ! kill -0 "${holder_pids[$((i-1))]}" 2>/dev/null; then cat "$tmp/out$i" >&2; exit 1; fi
      sleep 0.5
    done
    grep -q READY "$tmp/out$i" || { echo "holder $i not ready" >&2; cat "$tmp/out$i" >&2; exit 1; }
  done
  total=$("${in_ns[@]}" awk 'NR>1' /proc/net/tcp /proc/net/tcp6 | wc -l)
  echo "socket table: $total sockets ($("${in_ns[@]}" ss -tan | awk 'NR>1{print $1}' | sort | uniq -c | tr -s ' ' | paste -sd,))"
  if [ "$total" -lt 30000 ]; then echo "fewer than 30,000 sockets; raise HOLDERS or ESTABLISHED" >&2; exit 1; fi
}
