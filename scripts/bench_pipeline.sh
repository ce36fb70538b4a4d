#!/usr/bin/env bash
# Benchmark: end-to-end captioning with the bundled decoder.
#  1. one 60 s 1280x720 H.264 video (../shared/bench/make_test_video.sh), 16 frames, greedy:
#     wall seconds per video (median of ROUNDS), videos per hour, and the breakdown that
#     `vidcap -v` logs (decode of the needed frames, encoder, decoder); overhead = wall − parts.
#  2. a batch of CLIPS such videos (hard links: distinct inputs to vidcap, which folds symlinks
#     to one file into one input), `--threads 2 --jobs 2` against `--threads 1 --jobs 1`,
#     alternating over BATCH_ROUNDS rounds: the median of the per-round throughput ratios
#     (this machine's speed drifts by ~5 % between minutes) and peak RSS.
#  3. memory over many files: peak RSS of `--threads 2 --jobs 2` over 100 and over MANY short
#     clips (2 s, 320x240, hard links of one file made with ffmpeg's testsrc2); flat memory
#     means the two peaks match. MANY=0 skips it.
#   ROUNDS (3), BATCH_ROUNDS (3), CLIPS (100), MANY (2000), VIDEO, VIDCAP, VIDCAP_BENCH_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/bench_lib.sh
BENCH=$BENCH_DIR
VIDCAP=${VIDCAP:-target/release/vidcap}
ROUNDS=${ROUNDS:-3}
BATCH_ROUNDS=${BATCH_ROUNDS:-3}
CLIPS=${CLIPS:-100}
MANY=${MANY:-2000}
[ -x "$VIDCAP" ] || { echo "bench_pipeline: $VIDCAP not built" >&2; exit 1; }
bench_header "none (stage breakdown and batch scaling); ffmpeg $(ffmpeg -version | head -n1 | cut -d" " -f3)"
[ -d models/synth-decoder ] || { echo "bench_pipeline: models/synth-decoder missing" >&2; exit 1; }
VIDEO=${VIDEO:-$("$BENCH/make_test_video.sh" | tail -n1)}
work=$(mktemp -d "${TMPDIR:-/tmp}/bench_pipeline.XXXXXX")
trap 'rm -rf "$work"' EXIT

median() { sort -g | awk '{v[NR]=$1} END{print (NR%2)? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }
stage() { grep -o "$1=[0-9.]*" "$2" | cut -d= -f2 | awk '{s+=$1} END{printf "%.4f", s}'; }

for r in $(seq "$ROUNDS"); do
  start=$(date +%s.%N)
  "$VIDCAP" -v --threads 2 caption "$VIDEO" --frames 16 --beam 1 >/dev/null 2>"$work/log_$r"
  end=$(date +%s.%N)
  wall=$(awk -v a="$start" -v b="$end" 'BEGIN{print b - a}')
  d=$(stage decode_s "$work/log_$r"); e=$(stage encode_s "$work/log_$r"); c=$(stage caption_s "$work/log_$r")
  echo "$wall $d $e $c" >>"$work/single"
  printf 'bench_pipeline round=%d wall_s=%.3f decode_s=%s encode_s=%s caption_s=%s\n' "$r" "$wall" "$d" "$e" "$c"
done
for col in 1 2 3 4; do cut -d' ' -f$col "$work/single" | median; done | paste -sd' ' | awk '{
  parts=$2+$3+$4
  printf "bench_pipeline single video: wall_s=%.3f (median of runs) decode_s=%.3f encode_s=%.3f caption_s=%.3f overhead_s=%.3f videos_per_hour=%.0f wall/parts=%.2f\n", $1, $2, $3, $4, $1-parts, 3600/$1, $1/parts }'

mkdir -p "$work/lib"
for i in $(seq -w 1 "$CLIPS"); do ln "$VIDEO" "$work/lib/clip_$i.mp4" 2>/dev/null || cp "$VIDEO" "$work/lib/clip_$i.mp4"; done
run_batch() {  # threads jobs → wall seconds; peak RSS in $work/rss_$1
  local s e
  s=$(date +%s.%N)
  /usr/bin/time -f %M -o "$work/rss_$1" "$VIDCAP" -q --threads "$1" batch "$work/lib" --out "$work/out_$1.jsonl" --overwrite --jobs "$2" --frames 16 --beam 1
  e=$(date +%s.%N)
  awk -v a="$s" -v b="$e" 'BEGIN{print b - a}'
}
for r in $(seq "$BATCH_ROUNDS"); do
  one=$(run_batch 1 1)
  two=$(run_batch 2 2)
  for t in 1 2; do
    n=$(grep -c '"caption":"' "$work/out_$t.jsonl" || true)
    [ "$n" = "$CLIPS" ] || { echo "bench_pipeline: batch with $t thread(s) captioned $n of $CLIPS" >&2; exit 1; }
  done
  echo "$one $two $(cat "$work/rss_1") $(cat "$work/rss_2")" >>"$work/batch"
  awk -v r="$r" -v one="$one" -v two="$two" 'BEGIN{printf "bench_pipeline batch round=%d one_thread_s=%.1f two_threads_s=%.1f speed_up=%.3f\n", r, one, two, one/two}'
done
one=$(cut -d' ' -f1 "$work/batch" | median)
two=$(cut -d' ' -f2 "$work/batch" | median)
ratio=$(awk '{print $1/$2}' "$work/batch" | median)
r1=$(cut -d' ' -f3 "$work/batch" | sort -g | tail -n1)
r2=$(cut -d' ' -f4 "$work/batch" | sort -g | tail -n1)
awk -v n="$CLIPS" -v k="$BATCH_ROUNDS" -v one="$one" -v two="$two" -v ratio="$ratio" -v r1="$r1" -v r2="$r2" 'BEGIN{
  printf "bench_pipeline batch of %d (medians of %d rounds): 1 thread %.1f s (%.0f videos/h, peak RSS %.0f MB); 2 threads %.1f s (%.0f videos/h, peak RSS %.0f MB); speed-up %.2fx (median of per-round ratios)\n",
    n, k, one, 3600*n/one, r1/1024, two, 3600*n/two, r2/1024, ratio }'

[ "$MANY" -gt 0 ] || exit 0
short="$work/short.mp4"
ffmpeg -nostdin -loglevel error -f lavfi -i testsrc2=size=320x240:rate=30:duration=2 -c:v libx264 -pix_fmt yuv420p "$short"
rss_over() {  # N → "peak_rss_kb wall_s"
  rm -rf "$work/many"; mkdir -p "$work/many"
  for i in $(seq -w 1 "$1"); do ln "$short" "$work/many/s_$i.mp4"; done
  local s e
  s=$(date +%s.%N)
  /usr/bin/time -f %M -o "$work/rss_many" "$VIDCAP" -q --threads 2 batch "$work/many" --out "$work/many.jsonl" --overwrite --jobs 2 --frames 16 --beam 1
  e=$(date +%s.%N)
  n=$(grep -c '"caption":"' "$work/many.jsonl" || true)
  [ "$n" = "$1" ] || { echo "bench_pipeline: captioned $n of $1 short clips" >&2; exit 1; }
  echo "$(cat "$work/rss_many") $(awk -v a="$s" -v b="$e" 'BEGIN{print b - a}')"
}
small=$(rss_over 100)
large=$(rss_over "$MANY")
awk -v n="$MANY" -v a="$small" -v b="$large" 'BEGIN{split(a,x," "); split(b,y," ");
  printf "bench_pipeline memory: peak RSS %.0f MB over 100 short clips (%.1f s), %.0f MB over %d (%.1f s); ratio %.2f\n",
    x[1]/1024, x[2], y[1]/1024, n, y[2], y[1]/x[1] }'
