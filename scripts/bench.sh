#!/usr/bin/env bash
# `make bench`: every scripts/bench_*.sh in turn (each compares vidcap with its peer in one run).
set -euo pipefail
cd "$(dirname "$0")/.."
for b in scripts/bench_*.sh; do
  [ -e "$b" ] || continue
  echo "### $b"
  "$b"
done
