#!/usr/bin/env bash
# Benchmark: `logdoctor sockets` against ss on a table of at least 30,000
# TCP sockets (ESTABLISHED, CLOSE_WAIT with their FIN_WAIT2 server ends,
# TIME_WAIT) held on loopback by bench/sockholder.
#
# As root the sockets live in a network namespace of their own (nothing of
# the host's table is touched, and deleting the namespace cleans up
# everything); otherwise on the host's loopback (127.77.0.x).
#
# bench/sockets_pairs.py runs each comparison as alternating pairs in the
# same run and prints the medians of the per-pair ratios of wall time and
# CPU time (user + system), with the targets of issue 15:
#   sockets --no-processes (netlink)     <= 0.6x ss -tan (wall and CPU)
#   sockets --no-processes vs ss -tin    (the tcp_info case; reported)
#   sockets (with processes)             <= 0.5x ss -tanp
#   sockets --source proc                (the /proc path; vs BASE_BIN, a
#                                         logdoctor built from an earlier
#                                         commit, when given: no slower;
#                                         BASE_ARGS="--source proc" when
#                                         that binary has a netlink source)
# and each command's peak RSS (target < 40 MiB).
#
# Knobs: HOLDERS (processes holding sockets, each needs ~11k fds),
# ESTABLISHED/CLOSE_WAIT/TIME_WAIT per holder, ROUNDS (pairs), BASE_BIN,
# BASE_ARGS (extra arguments for BASE_BIN).
set -euo pipefail
cd "$(dirname "$0")/.."
HOLDERS=${HOLDERS:-2}
ESTABLISHED=${ESTABLISHED:-4000}
CLOSE_WAIT=${CLOSE_WAIT:-2500}
TIME_WAIT=${TIME_WAIT:-3000}
ROUNDS=${ROUNDS:-11}
BASE_BIN=${BASE_BIN:-}
BASE_ARGS=${BASE_ARGS:-}

for t in ss python3; do
  command -v "$t" >/dev/null || { echo "bench/sockets.sh: needs $t (sudo make test-deps)" >&2; exit 1; }
done

. bench/lib/sockholders.sh
hold_sockets ldbench

# TIME_WAIT and the orphaned FIN_WAIT2 ends expire after 60 s: measure at once.
base_cmd=""
base_pair=""
if [ -n "$BASE_BIN" ]; then
  extra=""
  for a in $BASE_ARGS; do extra="$extra, \"$a\""; done
  base_cmd=", \"base\": [\"$BASE_BIN\", \"sockets\", \"-o\", \"json\", \"--no-processes\", \"--fail-on\", \"never\"$extra]"
  base_pair=', ["proc", "base", 0, "(the /proc path vs BASE_BIN: no slower than before)"]'
fi
cat >"$tmp/spec.json" <<JSON
{"commands": {
  "netlink": ["$ld", "sockets", "-o", "json", "--no-processes", "--fail-on", "never"],
  "netlink+processes": ["$ld", "sockets", "-o", "json", "--fail-on", "never"],
  "proc": ["$ld", "sockets", "-o", "json", "--no-processes", "--source", "proc", "--fail-on", "never"],
  "ss -tan": ["ss", "-tan"],
  "ss -tin": ["ss", "-tin"],
  "ss -tanp": ["ss", "-tanp"]$base_cmd},
 "pairs": [
  ["netlink", "ss -tan", 0.6, "sockets --no-processes"],
  ["netlink", "ss -tin", 0, "(tcp_info: both read it)"],
  ["netlink+processes", "ss -tanp", 0.5, "sockets with processes"],
  ["proc", "ss -tan", 0, "(the /proc path)"]$base_pair]}
JSON
"${in_ns[@]}" python3 bench/sockets_pairs.py "$ROUNDS" "$tmp/spec.json"
echo "peak RSS target: < 40 MiB for every logdoctor command"
