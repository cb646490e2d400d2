#!/usr/bin/env bash
# Runs each Fuzz* target in the module for the given time.
set -euo pipefail
t=${1:-30s}
for f in $(grep -rl --include='*_test.go' '^func Fuzz' pkg internal 2>/dev/null); do
  dir=./$(dirname "$f")
  for name in $(grep -o '^func Fuzz[A-Za-z0-9_]*' "$f" | cut -d' ' -f2); do
    echo "== $dir $name"
    go test -run='^$' -fuzz="^${name}\$" -fuzztime="$t" "$dir"
  done
done
