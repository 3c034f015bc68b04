#!/usr/bin/env bash
# The standard quality runs of `swapcam eval` for a pair of swap models (default: the shipped demo models):
#   self-reconstruction both ways on synthetic clips (a2b on B's clip, b2a on A's clip), the swap itself (a2b on A's
#   clip), real talking-head footage (a2b on the carphone clip) and the clips whose truth is known (a2b on
#   `make-clip --expressions` and `--occluders` of A, b2a on `--expressions` of B, made into CLIPS first).
#   JSON + contact sheets (JPEG) into OUT with a name prefix. Identity by face recognition needs the eval extra
#   (installed by `make setup`).
#   benchmarks/eval_demo.sh PREFIX [A2B.onnx B2A.onnx]      e.g. benchmarks/eval_demo.sh eval-demo-v2
#   EVAL_ARGS: more `swapcam eval` options for every run, e.g. EVAL_ARGS="--blend multiband --sharpen espcn"
set -euo pipefail
cd "$(dirname "$0")/.."
PREFIX="${1:?usage: benchmarks/eval_demo.sh PREFIX [A2B.onnx B2A.onnx]}"
A2B="${2:-models/demo/demo_a2b.onnx}"
B2A="${3:-models/demo/demo_b2a.onnx}"
OUT="${OUT:-benchmarks/results}"
SWAPCAM="${SWAPCAM:-.venv/bin/swapcam}"
mkdir -p "$OUT"
run() {  # name model source [more eval options]
  # shellcheck disable=SC2086  # EVAL_ARGS is a list of options
  "$SWAPCAM" eval --model "$2" --source "$3" --json "$OUT/$PREFIX-$1.json" --sheet "$OUT/$PREFIX-$1.jpg" \
    --no-progress ${EVAL_ARGS:-} "${@:4}"
}
# self-reconstruction: also the ceiling (a perfect model of the same crop size through the same pipeline)
run a2b-self "$A2B" synthetic:grace_hopper --ceiling
run b2a-self "$B2A" synthetic:astronaut --ceiling
run a2b-swap "$A2B" synthetic:astronaut
run a2b-carphone "$A2B" carphone
CLIPS="${CLIPS:-build/clips}"
mkdir -p "$CLIPS"
# 300 frames: the held smile is ~1 s of 10 (at 150 frames the neutral frames around it were too few to read its lift)
[ -f "$CLIPS/expressions300.truth.json" ] ||
  "$SWAPCAM" make-clip --expressions --portrait astronaut --frames 300 --out "$CLIPS/expressions300.mp4"
[ -f "$CLIPS/expressions300-grace.truth.json" ] ||
  "$SWAPCAM" make-clip --expressions --portrait grace_hopper --frames 300 --out "$CLIPS/expressions300-grace.mp4"
[ -f "$CLIPS/occluders.truth.json" ] || "$SWAPCAM" make-clip --occluders --portrait astronaut --out "$CLIPS/occluders.mp4"
run a2b-expressions "$A2B" "$CLIPS/expressions300.mp4"
run b2a-expressions "$B2A" "$CLIPS/expressions300-grace.mp4"
run a2b-occluders "$A2B" "$CLIPS/occluders.mp4"
