#!/usr/bin/env bash
# The Python the tests use as an independent reference for file formats: a venv with
# pycocotools (the COCO API whose `loadRes` must read `vidcap eval`'s coco_results.json),
# at ${VIDCAP_CACHE:-$HOME/.cache/vidcap}/test-venv. Installed by package name, pinned;
# idempotent (nothing is downloaded when the pinned version is already there).
set -euo pipefail
venv="${VIDCAP_CACHE:-$HOME/.cache/vidcap}/test-venv"
pin=pycocotools==2.0.10
if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c 'import pycocotools.coco' 2>/dev/null \
   && "$venv/bin/python" -m pip show pycocotools 2>/dev/null | grep -qx "Version: ${pin#*==}"; then
  exit 0
fi
python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$pin"
"$venv/bin/python" -c 'import pycocotools.coco; print("test-venv: pycocotools ready")'
