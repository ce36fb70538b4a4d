#!/usr/bin/env bash
# The recipe of models/synth-decoder: features of a `vidcap synth` corpus → attention decoder
# → test scores in distribution and on the compositional split, recorded in the model's
# training_report.json. Stages: extract, train, eval (default: all three, in order).
#   CORPUS=/work/corpus-s1 CACHE=/work/cache-s1 scripts/train_synth_decoder.sh [STAGE...]
set -euo pipefail
cd "$(dirname "$0")/.."

VIDCAP=${VIDCAP:-target/release/vidcap}
CORPUS=${CORPUS:-/work/corpus-s1}
CACHE=${CACHE:-/work/cache-s1}
MODEL=${MODEL:-models/synth-decoder}
THREADS=${THREADS:-2}
METEOR_JAR=${METEOR_JAR:-}

extract() {
  for set in annotations compositional; do
    "$VIDCAP" --threads "$THREADS" extract "$CORPUS/$set.jsonl" --out "$CACHE" --frames 16 --json
  done
}

train() {
  "$VIDCAP" -v --threads "$THREADS" --seed 1 train "$CORPUS/annotations.jsonl" --out "$MODEL" \
    --cache "$CACHE" --arch attention --regions 5 --hidden 256 --embed 128 --att-dim 128 \
    --max-len 28 --epochs 14 --batch-size 64 --lr 2e-3 --warmup-steps 200 --dropout 0.3 \
    --label-smoothing 0.1 --min-count 2 --patience 4 --json
}

evaluate() {
  local meteor=(--no-meteor)
  [ -n "$METEOR_JAR" ] && meteor=(--meteor-jar "$METEOR_JAR")
  for set in annotations compositional; do
    "$VIDCAP" --threads "$THREADS" eval "$CORPUS/$set.jsonl" --model "$MODEL" --cache "$CACHE" \
      --split test "${meteor[@]}" --out "$MODEL/eval-$set" --json >/dev/null
  done
  # The test scores go into the training report beside the validation score.
  python3 - "$MODEL" <<'EOF'
import json, os, sys
model = sys.argv[1]
path = os.path.join(model, "training_report.json")
report = json.load(open(path))
report["test"] = {}
for name in ("annotations", "compositional"):
    metrics = json.load(open(os.path.join(model, f"eval-{name}", "metrics.json")))
    report["test"][name] = {k: metrics[k] for k in
                            ("dataset", "ids", "bleu", "rouge_l", "cider_d", "meteor", "beam", "command")
                            if k in metrics}
tmp = path + ".tmp"
with open(tmp, "w") as f:
    json.dump(report, f, indent=2)
    f.write("\n")
os.replace(tmp, path)
EOF
}

stages=("$@")
[ ${#stages[@]} -eq 0 ] && stages=(extract train eval)
for stage in "${stages[@]}"; do
  case "$stage" in
    extract) extract ;;
    train) train ;;
    eval) evaluate ;;
    *) echo "train_synth_decoder.sh: unknown stage $stage (extract, train, eval)" >&2; exit 2 ;;
  esac
done
