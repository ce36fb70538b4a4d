#!/usr/bin/env bash
# Decoder speed against the PyTorch peer (../shared/bench/gru_train_torch.py), same shapes
# (B=32, 16 frames × 1280, T=20, V=5000, E=300, H=512, A=256), 2 threads, alternating
# rounds in one run; prints per-round ratios and their median.
#   train: tokens/s (B·T / median step), ratio > 1 = vidcap faster. vidcap runs twice per
#          round: positions=all (every position projected, as the peer) and positions=targets
#          (only positions with a target; same loss and gradient).
#   infer: greedy 20 tokens, one clip, ms per caption, ratio < 1 = vidcap faster.
# Env: ROUNDS (3), THREADS (2, both sides), PYTHON (torch venv), BENCH_DIR (the peer scripts).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
THREADS=${THREADS:-2}
. scripts/bench_lib.sh
PYTHON=$BENCH_PYTHON
if ! "$PYTHON" -c 'import torch' 2>/dev/null; then
  echo "bench_decoder: no torch at $PYTHON (run $BENCH_DIR/setup.sh torch); skipped" >&2
  exit 0
fi
cargo build --release --quiet --example decoder_bench
bench_header "PyTorch: $(py_versions torch numpy), $THREADS threads"
RUST=target/release/examples/decoder_bench
value() { sed -n "s/.*$1=\([0-9.]*\).*/\1/p" | head -n1; }
declare -A ratios
for round in $(seq "$ROUNDS"); do
  for variant in meanpool attention; do
    flag="--threads $THREADS"; [ "$variant" = attention ] && flag="$flag --attention"
    peer_out=$("$PYTHON" "$BENCH_DIR/gru_train_torch.py" $flag)
    peer=$(echo "$peer_out" | grep '^gru_train_torch' | value tokens_per_s)
    busy=$(echo "$peer_out" | grep -c 'BUSY MACHINE' || true)
    for pos in all targets; do
      extra=""; [ "$pos" = all ] && extra="--all-positions"
      ours=$("$RUST" $flag $extra | grep '^decoder_train' | value tokens_per_s)
      r=$(python3 -c "print(f'{$ours / $peer:.3f}')")
      ratios[train_${variant}_$pos]+="$r "
      echo "round $round threads $THREADS train $variant positions=$pos: vidcap $ours tokens/s, torch $peer tokens/s, ratio $r$([ "$busy" != 0 ] && echo ' (peer flagged BUSY MACHINE)')"
    done
    peer=$("$PYTHON" "$BENCH_DIR/gru_train_torch.py" $flag --infer | grep '^gru_infer_torch' | value ms_per_caption)
    ours=$("$RUST" $flag --infer | grep '^decoder_infer' | value ms_per_caption)
    r=$(python3 -c "print(f'{$ours / $peer:.3f}')")
    ratios[infer_$variant]+="$r "
    echo "round $round threads $THREADS infer $variant: vidcap $ours ms, torch $peer ms, ratio $r"
  done
done
for key in $(printf '%s\n' "${!ratios[@]}" | sort); do
  med=$(python3 -c "import statistics,sys; print(f'{statistics.median(map(float, sys.argv[1:])):.3f}')" ${ratios[$key]})
  echo "bench_decoder threads=$THREADS $key median_ratio=$med (rounds: ${ratios[$key]})"
done
