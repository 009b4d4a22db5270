#!/usr/bin/env bash
# Runs every Fuzz target in the module for the given time each (default 5s). Targets are found with
# `go test -list`, so a new fuzz target is picked up without editing this file.
set -euo pipefail
t="${1:-5s}"
cd "$(dirname "$0")/.."
found=0
for pkg in $(go list ./...); do
  for f in $(go test -list '^Fuzz' "$pkg" 2>/dev/null | grep '^Fuzz' || true); do
    found=$((found+1))
    echo "== fuzz $pkg $f ($t)"
    go test -run '^$' -fuzz "^${f}\$" -fuzztime "$t" "$pkg"
  done
done
echo "fuzz targets run: $found"
