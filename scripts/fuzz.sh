#!/usr/bin/env bash
# Runs every Go fuzz target in the module briefly (default 5s each), so
# `make test` exercises the parsers of outside input on every change.
#
# On a loaded machine the fuzzing engine itself can give up with "context
# deadline exceeded" (a coordinator timeout, not a finding: no failing
# input is written). Such a run is tried again, twice at most; a real
# failure writes its input under testdata/fuzz and fails at once.
set -euo pipefail
fuzztime="${1:-5s}"
cd "$(dirname "$0")/.."
run() {
  go test -run '^$' -fuzz "^$2\$" -fuzztime "$fuzztime" -fuzzminimizetime 1s "$1" 2>&1
}
for pkg in $(go list ./...); do
  for target in $(go test -list '^Fuzz' "$pkg" | grep '^Fuzz' || true); do
    echo "fuzz: $pkg $target ($fuzztime)"
    for try in 1 2 3; do
      if out=$(run "$pkg" "$target"); then
        echo "$out"
        break
      fi
      echo "$out"
      dir="$(go list -f '{{.Dir}}' "$pkg")/testdata/fuzz/$target"
      if ((try < 3)) && grep -q 'context deadline exceeded' <<<"$out" && ! grep -q "Failing input written" <<<"$out" &&
        [[ -z $(git status --porcelain -- "$dir" 2>/dev/null) ]]; then
        echo "fuzz: $target: the engine timed out without a finding; trying again"
        continue
      fi
      exit 1
    done
  done
done
