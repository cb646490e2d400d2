#!/usr/bin/env bash
# udp-frag speed and memory against tcpdump and tshark on the same pcap:
# a generated mix (small datagrams, fragmented, fragments lost) of
# UDPFRAG_PACKETS packets (default 1,000,000). Then, when root, a live
# capture of 100,000 packets per second for 10 s on a veth pair in two
# network namespaces, reporting the kernel's drop count for the capture.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${UDPFRAG_PACKETS:-1000000}
tmp=$(mktemp -d)
cleanup() {
  ip netns del "ldb-a-$$" 2>/dev/null || true
  ip netns del "ldb-b-$$" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

CGO_ENABLED=0 go build -o "$tmp/logdoctor" ./cmd/logdoctor
go build -o "$tmp/gen" ./bench/udpfraggen

live() {
  if [ "$(id -u)" -ne 0 ]; then echo "live: skipped (needs root)"; return; fi
  local a="ldb-a-$$" b="ldb-b-$$"
  ip netns add "$a"; ip netns add "$b"
  ip link add "va$$" type veth peer name "vb$$"
  ip link set "va$$" netns "$a"; ip link set "vb$$" netns "$b"
  ip -n "$a" addr add 10.78.0.1/24 dev "va$$"; ip -n "$b" addr add 10.78.0.2/24 dev "vb$$"
  ip -n "$a" link set "va$$" up; ip -n "$b" link set "vb$$" up
  ip -n "$a" link set lo up; ip -n "$b" link set lo up
  ip netns exec "$b" "$tmp/logdoctor" udp-frag -i "vb$$" --port 5160 --duration 13s -o json --fail-on never > "$tmp/live.json" &
  local cap=$!
  sleep 1.5
  ip netns exec "$a" "$tmp/gen" -send 10.78.0.2:5160 -pps 100000 -duration 10s -size 200
  wait "$cap"
  /usr/bin/python3 - "$tmp/live.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))["data"]
c = d["capture"]
print(f"live 100k pps x 10 s: datagrams counted {d['datagrams']['unfragmented']}, "
      f"kernel handed to capture {c['kernel_received']}, kernel dropped {c['kernel_dropped']}")
PY
}
if [ -n "${UDPFRAG_LIVE_ONLY:-}" ]; then live; exit 0; fi

"$tmp/gen" -o "$tmp/mix.pcap" -n "$N"
echo "pcap: $N packets, $(du -h "$tmp/mix.pcap" | cut -f1)"

ld="$tmp/logdoctor udp-frag --read $tmp/mix.pcap -o json --fail-on never"
td="tcpdump -nn -v -r $tmp/mix.pcap"
"$tmp/logdoctor" udp-frag --read "$tmp/mix.pcap" -o json --fail-on never |
  /usr/bin/python3 -c 'import json,sys; d=json.load(sys.stdin)["data"]; print("classes:", d["datagrams"])'

hyperfine --warmup 1 --runs 5 --export-json "$tmp/h.json" \
  -n logdoctor "$ld > /dev/null" \
  -n tcpdump "$td > /dev/null 2>&1"

rss() { /usr/bin/time -f '%M %e' "$@" 2>&1 >/dev/null | tail -1; }
read -r ld_rss ld_s < <(rss $ld)
read -r td_rss td_s < <(rss bash -c "$td 2>/dev/null")
read -r ts_rss ts_s < <(rss bash -c "tshark -r $tmp/mix.pcap 2>/dev/null")

# the same records four times over: memory must not grow with the file
big="$tmp/big.pcap"
cp "$tmp/mix.pcap" "$big"
for _ in 1 2 3; do tail -c +25 "$tmp/mix.pcap" >> "$big"; done
read -r big_rss big_s < <(rss "$tmp/logdoctor" udp-frag --read "$big" -o json --fail-on never)
rm -f "$big"

/usr/bin/python3 - "$tmp/h.json" "$ld_rss" "$td_rss" "$ts_rss" "$ts_s" "$big_rss" "$big_s" "$N" <<'PY'
import json, sys
h = {r["command"]: r["mean"] for r in json.load(open(sys.argv[1]))["results"]}
ld_rss, td_rss, ts_rss, ts_s, big_rss, big_s, n = sys.argv[2:9]
ld, td, ts = h["logdoctor"], h["tcpdump"], float(ts_s)
print(f"logdoctor {ld:.2f}s ({int(n)/ld/1e6:.2f} Mpps)  tcpdump -v {td:.2f}s  tshark {ts:.2f}s (one run)")
print(f"speed-up: {td/ld:.1f}x vs tcpdump (target >= 2x), {ts/ld:.1f}x vs tshark")
print(f"peak RSS: logdoctor {int(ld_rss)/1024:.1f} MiB (target < 64), tcpdump {int(td_rss)/1024:.1f} MiB, tshark {int(ts_rss)/1024:.1f} MiB")
print(f"4x the file ({4*int(n)} packets): logdoctor {float(big_s):.2f}s, peak RSS {int(big_rss)/1024:.1f} MiB")
PY

# live: 100k pps for 10 s over a veth pair
live
