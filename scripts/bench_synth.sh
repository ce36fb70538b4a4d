#!/usr/bin/env bash
# `make bench` part: corpus rendering speed of `vidcap synth` (render + H.264 encode + MP4),
# in clips/s on 2 threads, next to a peer doing only part of the work: the ffmpeg CLI
# generating a lavfi testsrc2 pattern of the same size and length and encoding it with the
# same x264 settings (2 processes at a time). Medians of REPEATS runs; ratios of medians.
set -euo pipefail
cd "$(dirname "$0")/.."
CLIPS=${CLIPS:-40}
REPEATS=${REPEATS:-3}
BIN=${VIDCAP:-target/release/vidcap}
[ -x "$BIN" ] || cargo build --release --locked
. scripts/bench_lib.sh
bench_header "ffmpeg CLI (lavfi testsrc2 → libx264): $(ffmpeg -version | head -n1)"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

median_of_lines() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
now() { date +%s.%N; }

peer_once() {
    seq 1 "$CLIPS" | xargs -P 2 -I{} ffmpeg -v error -y -f lavfi -i testsrc2=size=320x240:rate=25:duration=4 \
        -c:v libx264 -preset veryfast -crf 23 -g 25 -threads 1 -pix_fmt yuv420p "$WORK/peer_{}.mp4"
}

# run_set NAME COMMAND...: prints a result line, leaves the median seconds in $MED.
run_set() {
    local name=$1; shift
    local times=() t0
    for _ in $(seq 1 "$REPEATS"); do
        rm -rf "$WORK/out"
        t0=$(now)
        "$@" >/dev/null
        times+=("$(awk -v a="$t0" -v b="$(now)" 'BEGIN {printf "%.3f", b - a}')")
    done
    MED=$(printf '%s\n' "${times[@]}" | median_of_lines)
    echo "$name clips=$CLIPS median_s=$MED clips_per_s=$(awk -v n="$CLIPS" -v t="$MED" 'BEGIN {printf "%.2f", n / t}') runs=${times[*]}"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }

echo "# $(nproc) cores; load before: $(cut -d' ' -f1-3 /proc/loadavg)"
run_set ffmpeg_cli_testsrc2_x264 peer_once
peer=$MED
run_set vidcap_synth_procedural "$BIN" synth --procedural --threads 2 --clips "$CLIPS" --compositional 0 --seed 1 -q --out "$WORK/out"
echo "synth_vs_peer procedural speed_ratio=$(ratio "$peer" "$MED") (peer time / vidcap time; >1: vidcap faster)"
if [ -f "${VIDCAP_CACHE:-$HOME/.cache/vidcap}/synth-assets/catalogue.tsv" ]; then
    run_set vidcap_synth_real_assets "$BIN" synth --threads 2 --clips "$CLIPS" --compositional 0 --seed 1 -q --out "$WORK/out"
    echo "synth_vs_peer real_assets speed_ratio=$(ratio "$peer" "$MED")"
else
    echo "# real assets not cached (scripts/assets_synth.sh): skipped"
fi
echo "# load after: $(cut -d' ' -f1-3 /proc/loadavg)"
