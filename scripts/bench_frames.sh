#!/usr/bin/env bash
# Benchmark: 16 uniform frames (shorter side 256, PNG) from the 60 s 1280x720 H.264 test video,
# `vidcap frames` against the ffmpeg CLI peer (../shared/bench/frames_ffmpeg.sh), alternating
# rounds in one run; prints per-round times, medians and ratios (vidcap / peer, < 1 = faster).
#   ROUNDS (3), FRAMES (16), VIDEO (default: made by make_test_video.sh, ~70 s once),
#   VIDCAP_BENCH_DIR (the peer scripts; default ../shared/bench or ../../shared/bench).
# Also times `vidcap frames --keyframes` (the nearest keyframe per target: not the same frames
# as the peer's, so its ratio is printed apart).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/bench_lib.sh
BENCH=$BENCH_DIR
VIDCAP=${VIDCAP:-target/release/vidcap}
ROUNDS=${ROUNDS:-3}
N=${FRAMES:-16}
[ -x "$BENCH/frames_ffmpeg.sh" ] || { echo "bench_frames: peer scripts not found in $BENCH (set VIDCAP_BENCH_DIR)" >&2; exit 1; }
[ -x "$VIDCAP" ] || { echo "bench_frames: $VIDCAP not built (cargo build --release)" >&2; exit 1; }
bench_header "ffmpeg CLI: $(ffmpeg -version | head -n1)"
VIDEO=${VIDEO:-$("$BENCH/make_test_video.sh" | tail -n1)}

work=$(mktemp -d "${TMPDIR:-/tmp}/bench_frames.XXXXXX")
trap 'rm -rf "$work"' EXIT
# CPU seconds (user+sys) used so far by this shell's finished children: robust to other load on
# the machine, unlike wall time; printed beside the peer's wall-time figures.
cpu_of() {  # runs "$@" in this (command-substitution) subshell, prints its children's CPU seconds
  "$@" >/dev/null
  times >"$work/times"  # not piped: a pipeline's `times` runs in a fork without these children
  awk 'NR==2{split($1,u,"m"); split($2,y,"m"); printf "%.3f", u[1]*60+u[2]+y[1]*60+y[2]}' "$work/times"
}
DUR=$(ffprobe -v error -show_entries format=duration -of default=nw=1:nk=1 "$VIDEO")
SCALE="scale=w='if(lte(iw,ih),256,-1)':h='if(lte(iw,ih),-1,256)':flags=bilinear"
ff_seek_cpu() {  # the peer's seek_per_frame commands, for their CPU time
  local i
  for i in $(seq 0 $((N - 1))); do
    ffmpeg -nostdin -hide_banner -loglevel error -y -ss "$(awk -v d="$DUR" -v n="$N" -v i="$i" 'BEGIN{printf "%.6f", (i+0.5)*d/n}')" \
      -i "$VIDEO" -frames:v 1 -vf "$SCALE" "$work/cpu_$i.png"
  done
}
ff_single_cpu() {  # the peer's fps_single_pass command
  ffmpeg -nostdin -hide_banner -loglevel error -y -i "$VIDEO" -vf "fps=fps=$N/$DUR,$SCALE" -frames:v "$N" "$work/cpu_%03d.png"
}
median() { sort -g | awk '{a[NR]=$1} END{if(NR%2) print a[(NR+1)/2]; else printf "%.4f\n", (a[NR/2]+a[NR/2+1])/2}'; }

echo "# video $VIDEO; $N frames; $ROUNDS alternating rounds; $(nproc) cores; $(date -u +%FT%TZ)"
cat "$VIDEO" >/dev/null
seek=(); single=(); raw=(); ours=(); r_seek=(); r_single=(); c_r_seek=(); c_r_single=(); c_ours=()
keys=(); r_keys=()
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
  rm -rf "$work/keys"
  t0=$EPOCHREALTIME
  "$VIDCAP" -q frames "$VIDEO" --count "$N" --keyframes --out "$work/keys" >/dev/null
  t1=$EPOCHREALTIME
  k=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.3f", b-a}')
  keys+=("$k"); r_keys+=("$(awk -v a="$k" -v b="$f" 'BEGIN{printf "%.3f", a/b}')")
  seek+=("$s"); single+=("$f"); raw+=("$w"); ours+=("$o")
  r_seek+=("$(awk -v a="$o" -v b="$s" 'BEGIN{printf "%.3f", a/b}')")
  r_single+=("$(awk -v a="$o" -v b="$f" 'BEGIN{printf "%.3f", a/b}')")
  cs=$(cpu_of ff_seek_cpu); cf=$(cpu_of ff_single_cpu)
  co=$(cpu_of "$VIDCAP" -q frames "$VIDEO" --count "$N" --out "$work/out")
  c_ours+=("$co")
  c_r_seek+=("$(awk -v a="$co" -v b="$cs" 'BEGIN{printf "%.3f", a/b}')")
  c_r_single+=("$(awk -v a="$co" -v b="$cf" 'BEGIN{printf "%.3f", a/b}')")
  echo "round $r cpu_s: ffmpeg seek_per_frame=$cs fps_single_pass=$cf | vidcap frames=$co"
  echo "round $r: ffmpeg seek_per_frame=${s}s fps_single_pass=${f}s fps_single_pass_raw=${w}s | vidcap frames=${o}s --keyframes=${k}s"
done
m() { printf '%s\n' "$@" | median; }
echo "vidcap_frames wall_s=$(m "${ours[@]}") (median of $ROUNDS; runs: ${ours[*]})"
echo "ffmpeg seek_per_frame wall_s=$(m "${seek[@]}"); fps_single_pass wall_s=$(m "${single[@]}"); fps_single_pass_raw wall_s=$(m "${raw[@]}")"
echo "ratio vidcap/seek_per_frame=$(m "${r_seek[@]}") (target <= 0.5; per round: ${r_seek[*]})"
echo "ratio vidcap/fps_single_pass(full decode)=$(m "${r_single[@]}") (target <= 0.1; per round: ${r_single[*]})"
echo "cpu ratio vidcap/seek_per_frame=$(m "${c_r_seek[@]}") vidcap/fps_single_pass=$(m "${c_r_single[@]}") (CPU seconds, median of $ROUNDS; vidcap cpu_s: ${c_ours[*]})"
echo "vidcap frames --keyframes wall_s=$(m "${keys[@]}"); ratio to fps_single_pass(full decode)=$(m "${r_keys[@]}") (nearest keyframes, not the peer's frames; per round: ${r_keys[*]})"
