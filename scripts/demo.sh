#!/usr/bin/env bash
# The main job: caption the sample videos with the bundled decoder, and show the steps
# underneath (probe, frame sampling) and the caption metrics.
set -euo pipefail
cd "$(dirname "$0")/.."
VIDCAP=${VIDCAP:-target/release/vidcap}
out=${DEMO_OUT:-target/demo}
mkdir -p "$out"
cache=${VIDCAP_CACHE:-$HOME/.cache/vidcap}/samples   # real footage from scripts/fetch_samples.sh

echo "== probe and sample frames"
for v in samples/*.mp4 "$cache/vtest.avi" "$cache/bikes.mp4"; do
  [ -e "$v" ] || continue
  "$VIDCAP" probe "$v" --json | tr -d '\n ' ; echo
  "$VIDCAP" frames "$v" --count 4 --out "$out/frames/$(basename "${v%.*}")" >/dev/null
done

if [ -d models/synth-decoder ]; then
  echo
  echo "== caption the unseen synthetic sample clips (samples/synth) with the bundled decoder"
  "$VIDCAP" caption samples/synth/*.mp4 --beam 3 --sheet "$out/sheets"
  echo
  echo "== how close to their reference captions (coco-caption metrics)"
  "$VIDCAP" caption samples/synth/*.mp4 --beam 3 --format jsonl > "$out/synth_captions.jsonl"
  python3 - "$out" <<'PY'
import json, os, sys
out = sys.argv[1]
refs = {}
for line in open("samples/synth/annotations.jsonl"):
    r = json.loads(line)
    refs["samples/synth/" + r["video"]] = r["captions"]
hyps = {}
for line in open(os.path.join(out, "synth_captions.jsonl")):
    r = json.loads(line)
    hyps[r["video"]] = r["caption"]
json.dump(refs, open(os.path.join(out, "synth_refs.json"), "w"))
json.dump(hyps, open(os.path.join(out, "synth_hyps.json"), "w"))
PY
  "$VIDCAP" score --refs "$out/synth_refs.json" --hyps "$out/synth_hyps.json" --no-meteor
  echo
  echo "== real footage (the bundled decoder only knows the synthetic world: see README)"
  for v in "$cache/vtest.avi" "$cache/bikes.mp4"; do
    [ -e "$v" ] && "$VIDCAP" caption "$v" --segments auto --format vtt
  done
  echo "contact sheets: $out/sheets/"
else
  echo "models/synth-decoder is missing: no captions (see README, 'The bundled decoder')" >&2
fi

echo
echo "== caption metrics on the committed edge-case set (pycocoevalcap parity)"
"$VIDCAP" score --refs tests/data/metrics/edge_refs.json --hyps tests/data/metrics/edge_hyps.json --no-meteor
