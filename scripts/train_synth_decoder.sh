#!/usr/bin/env bash
# The recipe of models/synth-decoder. Stages (default: all, in this order):
#   synth    render two `vidcap synth` corpora: seed 1 (3,000 clips + its compositional
#            test set) and seed 2 (3,000 clips, more training data)
#   merge    one annotations file: seed 1's train/val/test splits as they are, every seed-2
#            clip added to train (absolute video paths), and a corpus.json naming both
#   extract  features (16 frames, grid, motion) of seed 1, its compositional set and seed 2
#   train    the attention decoder on the merged file
#   eval     test scores on seed 1's test split and on the compositional split
#   fresh    a corpus of a seed used nowhere else (FRESH_SEED), every clip of it scored as
#            unseen test data
#   familiarity  the model's familiarity summary (no retraining): fitted on 600 clips of
#            seed 2 (all of them decoder training clips), calibrated on seed 1's first 400
#   flagging the fraction flagged unfamiliar on a seed used nowhere else (UNSEEN_SEED: 300
#            clips + 30 compositional) and on 4 s windows of real footage (`make fetch`)
# Scores and timings go into the model's training_report.json.
#   WORK=/work scripts/train_synth_decoder.sh [STAGE...]
set -euo pipefail
cd "$(dirname "$0")/.."

VIDCAP=${VIDCAP:-target/release/vidcap}
WORK=${WORK:-/work}
CORPUS=${CORPUS:-$WORK/corpus-s1}
CORPUS2=${CORPUS2:-$WORK/corpus-s2}
MERGED=${MERGED:-$WORK/corpus-m}
CACHE=${CACHE:-$WORK/cache-m2}
MODEL=${MODEL:-models/synth-decoder}
THREADS=${THREADS:-2}
METEOR_JAR=${METEOR_JAR:-}
FRESH_SEED=${FRESH_SEED:-20261127}
FRESH=${FRESH:-/tmp/vidcap-fresh-$FRESH_SEED}
FRESH_CLIPS=${FRESH_CLIPS:-1000}
FAM=${FAM:-$WORK/familiarity}
UNSEEN_SEED=${UNSEEN_SEED:-20261205}
SAMPLES=${SAMPLES:-${VIDCAP_CACHE:-$HOME/.cache/vidcap}/samples}

synth() {
  "$VIDCAP" --threads "$THREADS" --seed 1 synth --out "$CORPUS" --clips 3000 --json >/dev/null
  "$VIDCAP" --threads "$THREADS" --seed 2 synth --out "$CORPUS2" --clips 3000 --compositional 0 --json >/dev/null
}

merge() {
  mkdir -p "$MERGED"
  "$VIDCAP" merge "$MERGED/annotations.jsonl" "$CORPUS/annotations.jsonl" \
    "$CORPUS2/annotations.jsonl,split=train,prefix=s2_"
}

extract() {
  for file in "$CORPUS/annotations.jsonl" "$CORPUS/compositional.jsonl" "$CORPUS2/annotations.jsonl"; do
    "$VIDCAP" --threads "$THREADS" extract "$file" --out "$CACHE" --frames 16 --json >/dev/null
  done
}

train() {
  "$VIDCAP" -v --threads "$THREADS" --seed 1 train "$MERGED/annotations.jsonl" --out "$MODEL" \
    --cache "$CACHE" --arch attention --regions 5 --hidden 256 --embed 128 --att-dim 128 \
    --max-len 28 --epochs 10 --batch-size 64 --lr 2e-3 --warmup-steps 200 --dropout 0.3 \
    --label-smoothing 0.1 --min-count 2 --patience 3 --overwrite --json
}

evaluate() {
  local meteor=(--no-meteor)
  [ -n "$METEOR_JAR" ] && meteor=(--meteor-jar "$METEOR_JAR")
  for set in annotations compositional; do
    "$VIDCAP" --threads "$THREADS" eval "$CORPUS/$set.jsonl" --model "$MODEL" --cache "$CACHE" \
      --split test "${meteor[@]}" --out "$MODEL/eval-$set" --json >/dev/null
  done
  # The test scores go into the training report beside the validation score.
  record test "$MODEL/eval" '{}'
}

# Copies the scores in PREFIX-annotations/ and PREFIX-compositional/metrics.json into the
# model's training_report.json under KEY (atomically), after the fields of the JSON object
# EXTRA:  record KEY PREFIX EXTRA
record() {
  "$VIDCAP" report set "$MODEL" "$1" "$3"
  for name in annotations compositional; do
    "$VIDCAP" report set "$MODEL" "$1.$name" "@$2-$name/metrics.json" \
      --keep dataset,ids,Bleu_1,Bleu_2,Bleu_3,Bleu_4,METEOR,ROUGE_L,CIDEr,beam,command
  done
}

fresh() {
  [ -f "$FRESH/corpus.json" ] ||
    "$VIDCAP" --threads "$THREADS" --seed "$FRESH_SEED" synth --out "$FRESH" --clips "$FRESH_CLIPS" --json >/dev/null
  # No clip of this seed was seen in training: score all of them as test clips.
  for set in annotations compositional; do
    "$VIDCAP" merge "$FRESH/$set-all-test.jsonl" "$FRESH/$set.jsonl,split=test" >/dev/null
    "$VIDCAP" --threads "$THREADS" extract "$FRESH/$set-all-test.jsonl" --out "$FRESH/features" --frames 16 --json >/dev/null
    "$VIDCAP" --threads "$THREADS" eval "$FRESH/$set-all-test.jsonl" --model "$MODEL" --cache "$FRESH/features" \
      --split test --no-meteor --out "$FRESH/eval-$set" --json >/dev/null
  done
  record unseen_seed "$FRESH/eval" \
    "{\"seed\": $FRESH_SEED, \"note\": \"every clip of a corpus rendered with this seed, scored as test data\"}"
}

familiarity() {
  [ -f "$FAM/s2/corpus.json" ] ||
    "$VIDCAP" --threads "$THREADS" --seed 2 synth --out "$FAM/s2" --clips 600 --compositional 0 --json >/dev/null
  [ -f "$FAM/s1/corpus.json" ] ||
    "$VIDCAP" --threads "$THREADS" --seed 1 synth --out "$FAM/s1" --clips 400 --compositional 0 --json >/dev/null
  # One dataset: seed 2's clips are the fit ("train"), seed 1's the calibration ("val").
  "$VIDCAP" merge "$FAM/merged.jsonl" "$FAM/s2/annotations.jsonl,split=train,prefix=s2_" \
    "$FAM/s1/annotations.jsonl,split=val,prefix=s1_" >/dev/null
  "$VIDCAP" --threads "$THREADS" extract "$FAM/merged.jsonl" --out "$FAM/cache" --frames 16 --json >/dev/null
  "$VIDCAP" --threads "$THREADS" familiarity fit "$MODEL" "$FAM/merged.jsonl" --cache "$FAM/cache"
}

flagging() {
  [ -f "$FAM/unseen/corpus.json" ] ||
    "$VIDCAP" --threads "$THREADS" --seed "$UNSEEN_SEED" synth --out "$FAM/unseen" --clips 300 --json >/dev/null
  # Every unseen clip as a test clip; real footage as 4 s windows (a last part under 1 s
  # joins the window before it).
  "$VIDCAP" merge "$FAM/unseen-all.jsonl" "$FAM/unseen/annotations.jsonl,split=test" \
    "$FAM/unseen/compositional.jsonl,split=test" >/dev/null
  python3 - "$FAM" "$SAMPLES" <<'EOF'
import json, os, subprocess, sys
fam, samples = os.path.abspath(sys.argv[1]), sys.argv[2]
with open(os.path.join(fam, "real.jsonl"), "w") as out:
    for name in ("vtest.avi", "tree.avi", "bikes.mp4", "carphone_pristine.mp4"):
        video = os.path.join(samples, name)
        duration = float(subprocess.check_output(
            ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", video]))
        start, i = 0.0, 0
        while start < duration - 2.0:
            end = min(start + 4.0, duration)
            if duration - end < 1.0:
                end = duration
            out.write(json.dumps({"id": f"{name}_{i}", "video": video, "start": start, "end": end,
                                  "captions": ["real footage"], "split": "test"}) + "\n")
            start, i = end, i + 1
EOF
  for set in unseen-all real; do
    "$VIDCAP" --threads "$THREADS" extract "$FAM/$set.jsonl" --out "$FAM/cache" --frames 16 --json >/dev/null
    "$VIDCAP" --threads "$THREADS" familiarity score "$FAM/$set.jsonl" --model "$MODEL" --cache "$FAM/cache" \
      --json >"$FAM/flagged-$set.json"
  done
  "$VIDCAP" report set "$MODEL" familiarity \
    '{"fit": "600 clips of seed 2 (decoder training clips)", "calibration": "clips 0-399 of seed 1", "flagged": {}}'
  for set in unseen-all real; do
    "$VIDCAP" report set "$MODEL" "familiarity.flagged.$set" "@$FAM/flagged-$set.json" \
      --keep clips,flagged,flagged_fraction
  done
  "$VIDCAP" report set "$MODEL" familiarity.flagged.unseen-all.what "\"seed $UNSEEN_SEED: 300 clips + 30 compositional\""
  "$VIDCAP" report set "$MODEL" familiarity.flagged.real.what \
    '"4 s windows of vtest.avi, tree.avi, bikes.mp4, carphone_pristine.mp4"'
}

stages=("$@")
[ ${#stages[@]} -eq 0 ] && stages=(synth merge extract train eval fresh familiarity flagging)
for stage in "${stages[@]}"; do
  case "$stage" in
    synth) synth ;;
    merge) merge ;;
    extract) extract ;;
    train) train ;;
    eval) evaluate ;;
    fresh) fresh ;;
    familiarity) familiarity ;;
    flagging) flagging ;;
    *) echo "train_synth_decoder.sh: unknown stage $stage (synth, merge, extract, train, eval, fresh, familiarity, flagging)" >&2; exit 2 ;;
  esac
done
