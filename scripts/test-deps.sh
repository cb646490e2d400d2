#!/usr/bin/env bash
# Installs the Debian packages the tests use as real peers and tools, when
# they are missing and we are root. Without root it only lists what is
# missing: tests needing those skip by hand and fail in CI.
set -euo pipefail
pkgs=(
  iproute2 nftables iptables tcpdump tshark net-tools procps time hyperfine
  python3 python3-fluent-logger python3-elasticsearch
  ruby ruby-elasticsearch ruby-elasticsearch-transport prometheus-elasticsearch-exporter
  rsyslog rsyslog-elasticsearch
)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "test-deps: not root; missing Debian packages: ${missing[*]} (tests needing them will skip)" >&2
  exit 0
fi
echo "test-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
