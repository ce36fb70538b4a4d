#!/usr/bin/env bash
# The main job: probe and sample frames from every sample video.
set -euo pipefail
VIDCAP=${VIDCAP:-target/release/vidcap}
out=${DEMO_OUT:-target/demo}
mkdir -p "$out"
cache=${VIDCAP_CACHE:-$HOME/.cache/vidcap}/samples   # real footage from scripts/fetch_samples.sh
for v in samples/*.mp4 samples/*.avi "$cache/vtest.avi" "$cache/bikes.mp4"; do
  [ -e "$v" ] || continue
  echo "== $v"
  "$VIDCAP" probe "$v" --json
  "$VIDCAP" frames "$v" --count 4 --out "$out/$(basename "${v%.*}")"
done
echo "== caption metrics (coco-caption parity; METEOR too when java + the jar are found)"
"$VIDCAP" score --refs tests/data/metrics/edge_refs.json --hyps tests/data/metrics/edge_hyps.json
