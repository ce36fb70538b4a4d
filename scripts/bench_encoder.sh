#!/usr/bin/env bash
# Encoder throughput against onnxruntime (../shared/bench/encoder_ort.py), in one run:
# alternating rounds (peer, vidcap, peer, vidcap, ...), 2 threads, batch 1 and 16, forward pass
# only on a ready tensor; prints each figure, then per batch size the median of the per-round
# ratios vidcap / onnxruntime. Each round also times the whole `vidcap embed` process on an
# (EMBED_N,3,224,224) tensor file (start-up, model load, read, network, write; median of 5)
# against the library's batch-16 throughput of the same round.
# Env: ROUNDS (3), THREADS (2), RUNS (50), EMBED_N (80), BENCH_PYTHON, ORT_SCRIPT.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
THREADS=${THREADS:-2}
RUNS=${RUNS:-50}
EMBED_N=${EMBED_N:-80}
. scripts/bench_lib.sh
PY=$BENCH_PYTHON
ORT=${ORT_SCRIPT:-$BENCH_DIR/encoder_ort.py}
if [ ! -x "$PY" ] || [ ! -f "$ORT" ]; then
  echo "bench_encoder: needs the peer baseline ($PY, $ORT; see shared/bench/README.md)" >&2
  exit 1
fi
cargo bench --locked --bench encoder --no-run >/dev/null 2>&1 || cargo bench --locked --bench encoder --no-run
cargo build --release --locked --quiet  # the binary `vidcap embed` is timed with
bench_header "onnxruntime: $(py_versions onnxruntime numpy), $THREADS threads"
log=$(mktemp)
tensor=$(mktemp --suffix=.npy)
features=$(mktemp --suffix=.npy)
trap 'rm -f "$log" "$tensor" "$features"' EXIT
"$PY" -c 'import numpy as np, sys
np.save(sys.argv[1], np.random.default_rng(0).standard_normal((int(sys.argv[2]), 3, 224, 224), dtype=np.float32))' "$tensor" "$EMBED_N"
# `embed_rate N CMD...`: N / median wall time of 5 runs of CMD, as images/s.
embed_rate() {
  "$PY" - "$@" <<'PY'
import statistics, subprocess, sys, time
n, cmd = int(sys.argv[1]), sys.argv[2:]
times = []
for _ in range(5):
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    times.append(time.perf_counter() - start)
print(f"{n / statistics.median(times):.1f}")
PY
}
for round in $(seq 1 "$ROUNDS"); do
  echo "# round $round, load average: $(cut -d' ' -f1-3 /proc/loadavg)"
  "$PY" "$ORT" --threads "$THREADS" --batch 1 16 --runs "$RUNS" | tee -a "$log" | grep -E '^encoder_ort|BUSY' || true
  cargo bench --locked --bench encoder -- --threads "$THREADS" --batch 1 16 --runs "$RUNS" 2>/dev/null | tee -a "$log" | grep '^encoder_vidcap'
  rate=$(embed_rate "$EMBED_N" target/release/vidcap --threads "$THREADS" embed "$tensor" -o "$features")
  echo "embed_vidcap images=$EMBED_N images_per_s=$rate (whole process, median of 5)" | tee -a "$log"
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
embed = [(int(m[1]), float(m[2])) for line in open(sys.argv[1])
         if (m := re.match(r"^embed_vidcap images=(\d+) images_per_s=([\d.]+)", line))]
for b in sorted(rows["encoder_vidcap"]):
    ours, peer = rows["encoder_vidcap"][b], rows["encoder_ort"].get(b, [])
    ratios = [o / p for o, p in zip(ours, peer)]
    if ratios:
        print(f"encoder batch {b}: vidcap {statistics.median(ours):.1f} images/s, onnxruntime "
              f"{statistics.median(peer):.1f} images/s, ratio {statistics.median(ratios):.2f} "
              f"(median of {len(ratios)} alternating rounds; per round: "
              + " ".join(f"{r:.2f}" for r in ratios) + ")")
library = rows["encoder_vidcap"].get(16, [])
if embed and library:
    ratios = [e / l for (_, e), l in zip(embed, library)]
    print(f"vidcap embed of a ({embed[0][0]},3,224,224) tensor file, whole process: "
          f"{statistics.median(e for _, e in embed):.1f} images/s, the library's batch 16 "
          f"{statistics.median(library):.1f} images/s, ratio {statistics.median(ratios):.2f} "
          "(per round: " + " ".join(f"{r:.2f}" for r in ratios) + ")")
PY
