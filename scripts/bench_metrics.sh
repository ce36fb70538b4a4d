#!/usr/bin/env bash
# `make bench` hook: `vidcap score` against pycocoevalcap (the peer) on the same input in one
# run: 10,000 hypotheses × 20 references, BLEU-1..4 + ROUGE-L + CIDEr-D. Tokenization is
# counted on both sides (pycocoevalcap's Java PTBTokenizer, vidcap's Rust tokenizer), and so
# is reading the JSON files; Python start-up and imports are not (in the peer's favour).
# Rounds alternate peer, vidcap (all cores), vidcap (--threads 1); each round gives the ratios
# peer time / vidcap time (wall clock, and CPU time: less sensitive to other processes on a
# shared machine), and the medians of those ratios are reported with the cores other processes
# used meanwhile. The numbers of the last round are compared id by id.
#
# Environment: PYTHON (an interpreter with pycocoevalcap; default the bench venv of
# /work/shared/bench), VIDCAP, IDS (10000), REFS (20), ROUNDS (3), VIDCAP_CACHE.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/bench_lib.sh
PYTHON=$BENCH_PYTHON
VIDCAP=${VIDCAP:-target/release/vidcap}
IDS=${IDS:-10000}
REFS=${REFS:-20}
ROUNDS=${ROUNDS:-3}
dir=${VIDCAP_CACHE:-$HOME/.cache/vidcap}/bench_metrics
mkdir -p "$dir"

if ! "$PYTHON" -c "import pycocoevalcap" 2>/dev/null || ! command -v java >/dev/null; then
  echo "# bench_metrics skipped: needs java and pycocoevalcap in $PYTHON (\$PYTHON -m pip install pycocoevalcap)"
  exit 0
fi
bench_header "pycocoevalcap: $(py_versions pycocoevalcap), $(java -version 2>&1 | head -n1)"
refs=$dir/refs_${IDS}x${REFS}.json
hyps=$dir/hyps_${IDS}x${REFS}.json
if [ ! -s "$refs" ] || [ ! -s "$hyps" ]; then
  "$PYTHON" scripts/metrics_reference.py generate --ids "$IDS" --refs "$REFS" --seed 4242 \
    --refs-out "$refs" --hyps-out "$hyps"
fi

"$PYTHON" scripts/metrics_reference.py bench-compare --vidcap "$VIDCAP" --refs "$refs" --hyps "$hyps" \
  --rounds "$ROUNDS" --workdir "$dir"
