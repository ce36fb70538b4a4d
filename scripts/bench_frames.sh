#!/usr/bin/env bash
# Benchmark: 16 uniform frames (shorter side 256, PNG) from the 60 s 1280x720 H.264 test video,
# `vidcap frames` against the ffmpeg CLI peer (../shared/bench/frames_ffmpeg.sh), alternating
# rounds in one run; prints per-round times, medians and ratios (vidcap / peer, < 1 = faster).
#   ROUNDS (3), FRAMES (16), VIDEO (default: made by make_test_video.sh, ~70 s once),
#   VIDCAP_BENCH_DIR (the peer scripts; default ../shared/bench or ../../shared/bench).
set -euo pipefail
cd "$(dirname "$0")/.."
BENCH=${VIDCAP_BENCH_DIR:-}
if [ -z "$BENCH" ]; then  # ../shared/bench beside the checkout (or beside its parent, for worktrees)
  for d in ../shared/bench ../../shared/bench; do [ -d "$d" ] && BENCH=$(cd "$d" && pwd) && break; done
fi
VIDCAP=${VIDCAP:-target/release/vidcap}
ROUNDS=${ROUNDS:-3}
N=${FRAMES:-16}
[ -x "$BENCH/frames_ffmpeg.sh" ] || { echo "bench_frames: peer scripts not found in $BENCH (set VIDCAP_BENCH_DIR)" >&2; exit 1; }
[ -x "$VIDCAP" ] || { echo "bench_frames: $VIDCAP not built (cargo build --release)" >&2; exit 1; }
VIDEO=${VIDEO:-$("$BENCH/make_test_video.sh" | tail -n1)}

work=$(mktemp -d "${TMPDIR:-/tmp}/bench_frames.XXXXXX")
trap 'rm -rf "$work"' EXIT
median() { sort -g | awk '{a[NR]=$1} END{if(NR%2) print a[(NR+1)/2]; else printf "%.4f\n", (a[NR/2]+a[NR/2+1])/2}'; }

echo "# video $VIDEO; $N frames; $ROUNDS alternating rounds; $(nproc) cores; $(date -u +%FT%TZ)"
cat "$VIDEO" >/dev/null
seek=(); single=(); raw=(); ours=(); r_seek=(); r_single=()
for r in $(seq 1 "$ROUNDS"); do
  peer=$("$BENCH/frames_ffmpeg.sh" "$VIDEO" "$N" 1)
  echo "$peer" | grep -i busy >&2 || true
  s=$(echo "$peer" | awk '/way=seek_per_frame /{sub("wall_s=","",$4); print $4}')
  f=$(echo "$peer" | awk '/way=fps_single_pass /{sub("wall_s=","",$4); print $4}')
  w=$(echo "$peer" | awk '/way=fps_single_pass_raw /{sub("wall_s=","",$4); print $4}')
  rm -rf "$work/out"
  t0=$EPOCHREALTIME
  "$VIDCAP" -q frames "$VIDEO" --count "$N" --out "$work/out" >/dev/null
  t1=$EPOCHREALTIME
  got=$(find "$work/out" -name 'frame_*.png' | wc -l)
  [ "$got" -eq "$N" ] || { echo "bench_frames: vidcap wrote $got frames, expected $N" >&2; exit 1; }
  o=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.3f", b-a}')
  seek+=("$s"); single+=("$f"); raw+=("$w"); ours+=("$o")
  r_seek+=("$(awk -v a="$o" -v b="$s" 'BEGIN{printf "%.3f", a/b}')")
  r_single+=("$(awk -v a="$o" -v b="$f" 'BEGIN{printf "%.3f", a/b}')")
  echo "round $r: ffmpeg seek_per_frame=${s}s fps_single_pass=${f}s fps_single_pass_raw=${w}s | vidcap frames=${o}s"
done
m() { printf '%s\n' "$@" | median; }
echo "vidcap_frames wall_s=$(m "${ours[@]}") (median of $ROUNDS; runs: ${ours[*]})"
echo "ffmpeg seek_per_frame wall_s=$(m "${seek[@]}"); fps_single_pass wall_s=$(m "${single[@]}"); fps_single_pass_raw wall_s=$(m "${raw[@]}")"
echo "ratio vidcap/seek_per_frame=$(m "${r_seek[@]}") (target <= 0.5; per round: ${r_seek[*]})"
echo "ratio vidcap/fps_single_pass(full decode)=$(m "${r_single[@]}") (target <= 0.1; per round: ${r_single[*]})"
