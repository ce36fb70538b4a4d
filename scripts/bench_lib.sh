# Shared by scripts/bench_*.sh (sourced): where the peers live, and the header every benchmark
# prints before its figures, so a log always says what it was measured on.
#   BENCH_DIR     the peer baseline scripts (default: ../shared/bench beside the checkout)
#   BENCH_PYTHON  the interpreter with the Python peers (default: the bench venv's)

BENCH_DIR=${BENCH_DIR:-${VIDCAP_BENCH_DIR:-}}
if [ -z "$BENCH_DIR" ]; then  # beside the checkout, or beside its parent (worktrees)
  for d in ../shared/bench ../../shared/bench /work/shared/bench; do
    [ -d "$d" ] && BENCH_DIR=$(cd "$d" && pwd) && break
  done
fi
BENCH_PYTHON=${BENCH_PYTHON:-${PYTHON:-${VIDCAP_BENCH_VENV:-/tmp/vidcap-bench-venv}/bin/python}}

# `bench_header PEER...`: the CPU, what vidcap dispatches to on it, then one line per peer.
bench_header() {
  echo "# cpu: $(lscpu | sed -n 's/^Model name:[[:space:]]*//p'), $(nproc) cpus," \
    "load average $(cut -d' ' -f1-3 /proc/loadavg)"
  local bin=${VIDCAP:-target/release/vidcap}
  [ -x "$bin" ] || cargo build --release --locked --quiet
  echo "# $("$bin" generate build-info)"
  local peer
  for peer in "$@"; do echo "# peer: $peer"; done
}

# `py_versions MODULE...`: "module version, ..." as the bench interpreter imports them.
py_versions() {
  "$BENCH_PYTHON" - "$@" <<'PY' 2>/dev/null || echo "$* (not importable by $BENCH_PYTHON)"
import importlib, sys
print(", ".join(f"{m} {getattr(importlib.import_module(m), '__version__', '?')}" for m in sys.argv[1:]))
PY
}

# `median X...`: the median of the numbers, 3 decimals.
median() {
  python3 -c 'import statistics, sys; print(f"{statistics.median(map(float, sys.argv[1:])):.3f}")' "$@"
}
