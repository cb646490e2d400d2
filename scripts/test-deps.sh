#!/usr/bin/env bash
# Installs the Debian packages the tests use as real peers and tools, when
# they are missing and we are root. Without root it only lists what is
# missing: tests needing those skip by hand and fail in CI.
set -euo pipefail
pkgs=(
  iproute2 nftables iptables tcpdump tshark net-tools procps time hyperfine libcap2-bin
  python3 python3-fluent-logger python3-elasticsearch
  ruby ruby-elasticsearch ruby-elasticsearch-transport prometheus-elasticsearch-exporter
  prometheus
  rsyslog rsyslog-elasticsearch
  chromium
)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Another apt (an unattended upgrade, a peer's setup) may hold the dpkg
# lock for a while on a fresh machine: wait for it rather than fail.
apt_opts=(-o DPkg::Lock::Timeout=300)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "test-deps: not root; missing Debian packages: ${missing[*]} (tests needing them will skip)" >&2
  else
    echo "test-deps: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get "${apt_opts[@]}" update -qq
    apt-get "${apt_opts[@]}" install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
fi

# The real shippers (internal/interop): their setup installs Ruby gems and
# unpacks Fluentd once, here, rather than from tests running in parallel.
peers=../shared/peers/setup.sh
if [ -f "$peers" ]; then
  bash "$peers" >/dev/null || echo "test-deps: $peers failed; interop tests will fail in CI" >&2
else
  echo "test-deps: no $peers; interop tests will skip (and fail with CI=true)" >&2
fi
