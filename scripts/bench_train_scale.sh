#!/usr/bin/env bash
# Training at MSR-VTT size: builds an MSR-VTT-shaped set (CLIPS clips × CAPTIONS captions,
# a vocabulary of VOCAB words, random features written straight into the cache: 16 frames ×
# 5 regions × 1483 values, ~475 KB a clip) and trains the default model EPOCHS epochs on it,
# then the same model on a SUBSET-clip set drawn from it. Prints tokens/s of both, their
# ratio, peak RSS (GNU time) and seconds per epoch. A benchmark, not a test.
# The model: TRAIN_FLAGS (default the README's smaller decoder on the global pool, which
# still reads every clip's whole cache file; --min-count 1 so both sets keep nearly the
# same vocabulary, whose size sets the output layer's cost). Env: CLIPS (10000), CAPTIONS (20), VOCAB
# (12000), SUBSET (500), EPOCHS (2), WORK (dir; an existing set there is reused), RUNS
# ("subset full": which trainings to run).
set -euo pipefail
cd "$(dirname "$0")/.."
CLIPS=${CLIPS:-10000}; CAPTIONS=${CAPTIONS:-20}; VOCAB=${VOCAB:-12000}
SUBSET=${SUBSET:-500}; EPOCHS=${EPOCHS:-2}
TRAIN_FLAGS=${TRAIN_FLAGS:---regions 1 --hidden 256 --embed 128 --att-dim 128 --min-count 1}
WORK=${WORK:-${TMPDIR:-/tmp}/vidcap-scale}
cargo build --release --quiet --example msrvtt_scale
cargo build --release --quiet
. scripts/bench_lib.sh
bench_header "none (full set against a subset of it, same run)"
VIDCAP=target/release/vidcap
SHA=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["provenance"]["sha256"])' \
      models/efficientnet-lite0/config.json)
if [ ! -f "$WORK/full/videodatainfo.json" ]; then
  rm -rf "$WORK"
  ENCODER_SHA=$SHA /usr/bin/time -f "dataset: %e s" \
    target/release/examples/msrvtt_scale "$WORK" "$CLIPS" "$CAPTIONS" "$VOCAB" "$SUBSET"
fi
echo "cache: $(du -sh "$WORK/cache" | cut -f1)"
run() { # name dataset-dir
  rm -rf "$WORK/model-$1"
  /usr/bin/time -f "%M" -o "$WORK/rss-$1" "$VIDCAP" -q train "$2/videodatainfo.json" \
    --videos "$WORK/videos" --cache "$WORK/cache" --out "$WORK/model-$1" \
    --epochs "$EPOCHS" --patience 0 $TRAIN_FLAGS --json > "$WORK/report-$1.json"
  python3 - "$1" "$WORK" <<'PY'
import json, sys
name, work = sys.argv[1], sys.argv[2]
r = json.load(open(f"{work}/report-{name}.json"))
log = [json.loads(l) for l in open(f"{work}/model-{name}/train_log.jsonl")]
rss = int(open(f"{work}/rss-{name}").read()) / 1024
vocab = len(json.load(open(f"{work}/model-{name}/vocab.json"))["words"])
print(f"{name}: {r['dataset']['clips']['train']} train clips, {r['dataset']['train_captions']} captions, "
      f"vocabulary {vocab}, {r['tokens_per_s']:.0f} tokens/s, peak RSS {rss:.0f} MB, "
      f"seconds per epoch {[round(e['seconds'], 1) for e in log]}")
open(f"{work}/tps-{name}", "w").write(str(r["tokens_per_s"]))
PY
}
RUNS=${RUNS:-subset full}
for name in $RUNS; do run "$name" "$WORK/$name"; done
[ -f "$WORK/tps-full" ] && [ -f "$WORK/tps-subset" ] && python3 -c "import sys; f=float(open('$WORK/tps-full').read()); s=float(open('$WORK/tps-subset').read()); print(f'tokens/s full / subset: {f/s:.3f}')"
