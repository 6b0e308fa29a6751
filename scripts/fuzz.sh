#!/usr/bin/env bash
# Runs every Go fuzz target in the module briefly (default 5s each), so
# `make test` exercises the parsers of outside input on every change.
set -euo pipefail
fuzztime="${1:-5s}"
cd "$(dirname "$0")/.."
for pkg in $(go list ./...); do
  for target in $(go test -list '^Fuzz' "$pkg" | grep '^Fuzz' || true); do
    echo "fuzz: $pkg $target ($fuzztime)"
    go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" -fuzzminimizetime 1s "$pkg"
  done
done
