#!/usr/bin/env bash
# Encoder throughput against onnxruntime (../shared/bench/encoder_ort.py), in one run:
# alternating rounds (peer, vidcap, peer, vidcap, ...), 2 threads, batch 1 and 16, forward pass
# only on a ready tensor; prints each figure, then per batch size the median of the per-round
# ratios vidcap / onnxruntime. Env: ROUNDS (3), THREADS (2), RUNS (50), BENCH_PYTHON, ORT_SCRIPT.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
THREADS=${THREADS:-2}
RUNS=${RUNS:-50}
. scripts/bench_lib.sh
PY=$BENCH_PYTHON
ORT=${ORT_SCRIPT:-$BENCH_DIR/encoder_ort.py}
if [ ! -x "$PY" ] || [ ! -f "$ORT" ]; then
  echo "bench_encoder: needs the peer baseline ($PY, $ORT; see shared/bench/README.md)" >&2
  exit 1
fi
cargo bench --locked --bench encoder --no-run >/dev/null 2>&1 || cargo bench --locked --bench encoder --no-run
bench_header "onnxruntime: $(py_versions onnxruntime numpy), $THREADS threads"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
for round in $(seq 1 "$ROUNDS"); do
  echo "# round $round, load average: $(cut -d' ' -f1-3 /proc/loadavg)"
  "$PY" "$ORT" --threads "$THREADS" --batch 1 16 --runs "$RUNS" | tee -a "$log" | grep -E '^encoder_ort|BUSY' || true
  cargo bench --locked --bench encoder -- --threads "$THREADS" --batch 1 16 --runs "$RUNS" 2>/dev/null | tee -a "$log" | grep '^encoder_vidcap'
done
python3 - "$log" <<'PY'
import re, statistics, sys
rows = {"encoder_ort": {}, "encoder_vidcap": {}}
for line in open(sys.argv[1]):
    m = re.match(r"^(encoder_ort|encoder_vidcap) batch=(\d+) images_per_s=([\d.]+)", line)
    if m:
        rows[m[1]].setdefault(int(m[2]), []).append(float(m[3]))
busy = sum("BUSY MACHINE" in line for line in open(sys.argv[1]))
if busy:
    print(f"# {busy} onnxruntime runs were flagged BUSY MACHINE: other processes used the CPU; "
          "the ratios below are not clean measurements, rerun on an idle machine")
for b in sorted(rows["encoder_vidcap"]):
    ours, peer = rows["encoder_vidcap"][b], rows["encoder_ort"].get(b, [])
    ratios = [o / p for o, p in zip(ours, peer)]
    if ratios:
        print(f"encoder batch {b}: vidcap {statistics.median(ours):.1f} images/s, onnxruntime "
              f"{statistics.median(peer):.1f} images/s, ratio {statistics.median(ratios):.2f} "
              f"(median of {len(ratios)} alternating rounds; per round: "
              + " ".join(f"{r:.2f}" for r in ratios) + ")")
PY
