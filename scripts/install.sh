#!/usr/bin/env bash
# `make install` / `make uninstall`. Installs under PREFIX (default /usr/local; DESTDIR is
# prepended for packagers):
#   bin/vidcap
#   share/vidcap/models/{synth-decoder,efficientnet-lite0}   (found there by the binary)
#   share/bash-completion/completions/vidcap, share/zsh/site-functions/_vidcap,
#   share/fish/vendor_completions.d/vidcap.fish
#   share/man/man1/vidcap*.1
# and records every file in share/vidcap/install-manifest.txt, which uninstall reads.
# Usage: scripts/install.sh install|uninstall [PREFIX]. Env: VIDCAP_BIN (the binary to
# install, default target/release/vidcap).
set -euo pipefail
cd "$(dirname "$0")/.."
action=${1:?usage: scripts/install.sh install|uninstall [PREFIX]}
prefix=${2:-/usr/local}
root="${DESTDIR:-}$prefix"
manifest="$root/share/vidcap/install-manifest.txt"
models=(synth-decoder efficientnet-lite0)

uninstall() {
  if [ ! -f "$manifest" ]; then
    echo "vidcap uninstall: nothing to remove under $root (no $manifest)" >&2
    return 1
  fi
  while IFS= read -r file; do rm -f "$root/$file"; done < "$manifest"
  rm -f "$manifest"
  # Only folders vidcap owns are removed, and only when empty.
  find "$root/share/vidcap" -depth -type d -empty -delete 2>/dev/null || true
  echo "vidcap: removed from $root"
}

install_all() {
  local bin=${VIDCAP_BIN:-target/release/vidcap}
  [ -x "$bin" ] || { echo "vidcap install: $bin is missing: run \`make build\`" >&2; exit 1; }
  for m in "${models[@]}"; do
    [ -f "models/$m/config.json" ] && [ -f "models/$m/model.safetensors" ] || {
      echo "vidcap install: models/$m is incomplete: run \`make models\`" >&2; exit 1; }
  done
  [ -f "$manifest" ] && uninstall >/dev/null
  files=()
  stage=$(mktemp -d)
  trap 'rm -rf "$stage"' EXIT
  put() { # mode source destination-relative-to-root
    install -D -m "$1" "$2" "$root/$3"
    files+=("$3")
  }
  put 755 "$bin" bin/vidcap
  for m in "${models[@]}"; do
    while IFS= read -r -d '' f; do
      put 644 "$f" "share/vidcap/models/$m/${f#models/$m/}"
    done < <(find "models/$m" -type f ! -name '*.tmp' ! -name 'checkpoint*' -print0 | sort -z)
  done
  "$bin" generate complete-bash > "$stage/vidcap.bash"
  "$bin" generate complete-zsh > "$stage/_vidcap"
  "$bin" generate complete-fish > "$stage/vidcap.fish"
  put 644 "$stage/vidcap.bash" share/bash-completion/completions/vidcap
  put 644 "$stage/_vidcap" share/zsh/site-functions/_vidcap
  put 644 "$stage/vidcap.fish" share/fish/vendor_completions.d/vidcap.fish
  "$bin" generate man "$stage/man"
  for page in "$stage"/man/*.1; do put 644 "$page" "share/man/man1/$(basename "$page")"; done
  mkdir -p "$(dirname "$manifest")"
  printf '%s\n' "${files[@]}" > "$manifest.tmp" && mv "$manifest.tmp" "$manifest"
  echo "vidcap: installed ${#files[@]} files under $root (bin/vidcap; models in share/vidcap/models)"
}

case "$action" in
  install) install_all ;;
  uninstall) uninstall ;;
  *) echo "usage: scripts/install.sh install|uninstall [PREFIX]" >&2; exit 2 ;;
esac
