#!/usr/bin/env bash
# Install the Debian packages vidcap builds and tests with, if any are missing.
# As root: apt-get installs them. Otherwise: print the exact command and fail.
set -euo pipefail

# chromium + chromium-driver: the browser test of `vidcap annotate` (headless, WebDriver);
# binutils: readelf, for the test that checks the Dockerfile against the binary's libraries.
PACKAGES=(clang libclang-dev pkg-config libavcodec-dev libavformat-dev libavutil-dev
          libswscale-dev ffmpeg fonts-dejavu-core python3 python3-venv python3-pip binutils
          chromium chromium-driver)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

cmd="apt-get install -y --no-install-recommends ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
  echo "vidcap setup: missing system packages: ${missing[*]}" >&2
  echo "vidcap setup: run as root:  apt-get update && $cmd" >&2
  exit 1
fi
echo "vidcap setup: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
$cmd -qq
