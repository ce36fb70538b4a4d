#!/usr/bin/env bash
# `make models`: imports the fetched EfficientNet-Lite0 checkpoint into
# ${VIDCAP_MODELS:-models}/efficientnet-lite0 with the release binary, when that directory is
# missing or stale (no weights, no labels, a different checkpoint sha256, or older than the
# binary that wrote it). Run scripts/fetch_weights.sh first (make does).
set -euo pipefail
cd "$(dirname "$0")/.."

VIDCAP=${VIDCAP:-target/release/vidcap}
out="${VIDCAP_MODELS:-models}/efficientnet-lite0"
pth=$(scripts/fetch_weights.sh | tail -n1)
sha=579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db

fresh() {
  [ -f "$out/model.safetensors" ] && [ -f "$out/labels.txt" ] && [ -f "$out/config.json" ] &&
    grep -q "\"sha256\": \"$sha\"" "$out/config.json" &&
    [ "$out/config.json" -nt "$VIDCAP" ]
}

if fresh; then
  echo "# $out is up to date" >&2
  exit 0
fi
if [ ! -x "$VIDCAP" ]; then
  echo "import_encoder.sh: $VIDCAP not built (run: cargo build --release)" >&2
  exit 1
fi
"$VIDCAP" models import "$pth" --arch efficientnet-lite0 --out "$out"
