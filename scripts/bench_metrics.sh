#!/usr/bin/env bash
# `make bench` hook: `vidcap score` against pycocoevalcap (the peer) on the same input in one
# run: 10,000 hypotheses × 20 references, BLEU-1..4 + ROUGE-L + CIDEr-D. Tokenization is
# counted on both sides (pycocoevalcap's Java PTBTokenizer, vidcap's Rust tokenizer), and so
# is reading the JSON files; Python start-up and imports are not (in the peer's favour).
# Rounds alternate peer, vidcap (all cores), vidcap (--threads 1); each round gives the ratio
# peer time / vidcap time, and the medians of those ratios are reported. The numbers of the
# last round are compared id by id.
#
# Environment: PYTHON (an interpreter with pycocoevalcap; default the bench venv of
# /work/shared/bench), VIDCAP, IDS (10000), REFS (20), ROUNDS (3), VIDCAP_CACHE.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-${VIDCAP_BENCH_VENV:-/tmp/vidcap-bench-venv}/bin/python}
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
refs=$dir/refs_${IDS}x${REFS}.json
hyps=$dir/hyps_${IDS}x${REFS}.json
if [ ! -s "$refs" ] || [ ! -s "$hyps" ]; then
  "$PYTHON" scripts/metrics_reference.py generate --ids "$IDS" --refs "$REFS" --seed 4242 \
    --refs-out "$refs" --hyps-out "$hyps"
fi

seconds() { # wall seconds of a command, its stdout to $1
  local out=$1; shift
  local t0=$EPOCHREALTIME
  "$@" >"$out"
  awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.3f", b - a }'
}

peer_times=() all_times=() one_times=()
for round in $(seq "$ROUNDS"); do
  "$PYTHON" scripts/metrics_reference.py bench "$refs" "$hyps" --out "$dir/peer_scores.json" 2>/dev/null \
    | tee "$dir/peer_line.txt" | sed 's/^/# round '"$round"' /'
  peer_times+=("$(sed -n 's/.*total_s=\([0-9.]*\).*/\1/p' "$dir/peer_line.txt")")
  all_times+=("$(seconds "$dir/vidcap_scores.json" "$VIDCAP" -q score --refs "$refs" --hyps "$hyps" --json --per-id --no-meteor)")
  one_times+=("$(seconds "$dir/vidcap_scores_1t.json" "$VIDCAP" -q --threads 1 score --refs "$refs" --hyps "$hyps" --json --per-id --no-meteor)")
  echo "# round $round: pycocoevalcap ${peer_times[-1]} s, vidcap ${all_times[-1]} s (all cores), ${one_times[-1]} s (1 thread)"
done

"$PYTHON" - "$dir" "${peer_times[*]}" "${all_times[*]}" "${one_times[*]}" "$IDS" "$REFS" <<'PY'
import json, statistics, sys
d, peer, allc, one, ids, refs = sys.argv[1], *[list(map(float, a.split())) for a in sys.argv[2:5]], sys.argv[5], sys.argv[6]
peer_s = json.load(open(d + "/peer_scores.json"))
worst = 0.0
for name in ["vidcap_scores.json", "vidcap_scores_1t.json"]:
    ours = json.load(open(d + "/" + name))
    pairs = [(ours["bleu"][k], peer_s["corpus"]["bleu"][k]) for k in range(4)]
    pairs += [(ours[m], peer_s["corpus"][m]) for m in ("rouge_l", "cider_d")]
    for i, s in peer_s["per_id"].items():
        o = ours["per_id"][i]
        pairs += [(o["bleu"][k], s["bleu"][k]) for k in range(4)]
        pairs += [(o[m], s[m]) for m in ("rouge_l", "cider_d")]
    worst = max(worst, max(abs(a - b) for a, b in pairs))
med = statistics.median
for label, times in [("all_cores", allc), ("threads_1", one)]:
    ratios = [p / t for p, t in zip(peer, times)]
    print("bench_metrics hyps=%s refs=%s vidcap=%s vidcap_s=%.3f pycocoevalcap_s=%.3f speedup=%.1f "
          "(median of %d alternating rounds; tokenization counted on both sides) max_abs_diff=%.1e"
          % (ids, refs, label, med(times), med(peer), med(ratios), len(ratios), worst))
if worst > 1e-6:
    sys.exit("bench_metrics: vidcap and pycocoevalcap disagree by %.3g" % worst)
PY
