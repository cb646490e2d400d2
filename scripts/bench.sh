#!/usr/bin/env bash
# make bench: Go benchmarks, then each bench/*.sh script (logdoctor against
# ss, tcpdump and friends in one run, printing ratios).
set -euo pipefail
cd "$(dirname "$0")/.."
go test -run='^$' -bench=. -benchmem ./...
for s in bench/*.sh; do
  [ -e "$s" ] || continue
  echo "== $s"
  bash "$s"
done
