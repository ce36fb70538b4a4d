#!/usr/bin/env bash
# `make bench`: every scripts/bench_*.sh in turn (each compares vidcap with its peer in one run).
set -euo pipefail
cd "$(dirname "$0")/.."
for b in scripts/bench_*.sh; do
  [ -x "$b" ] || continue  # bench_lib.sh is sourced by the others, not run
  echo "### $b"
  "$b"
done
