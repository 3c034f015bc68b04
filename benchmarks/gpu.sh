#!/usr/bin/env bash
# GPU numbers in one short run (about 9 minutes on a bare GPU machine), JSON into OUT (default benchmarks/results):
#   1. training samples/s per preset with AMP (tiny, rt128, lite, hd)        -> train-gpu.json
#   2. the swap model alone in onnxruntime (CUDA / TensorRT EPs when they load, IO binding, fp16)
#      and the live pipeline at 1280x720 when mediapipe is importable       -> infer-gpu.json
#   3. optional (GPU_DEMO_MINUTES > 0): continue the demo model's training run for that many minutes on the GPU
#      (facesets and run folder in GPU_DEMO_WORKDIR, default .gpu/demo); the checkpoint is copied to OUT.
#
# It installs nothing from the network: a machine with no registry access gets the pure-Python/manylinux wheels the
# caller carried in .whl/ (albumentations and its needs), installed into /tmp/site.
#
#   benchmarks/gpu.sh            # on the GPU machine
#   benchmarks/gpu.sh --dry-run  # here, on CPU: every step with tiny sizes, to check the script before a GPU run
set -uo pipefail
cd "$(dirname "$0")/.."

DRY=0
[ "${1:-}" = "--dry-run" ] && DRY=1
OUT="${OUT:-benchmarks/results}"
mkdir -p "$OUT"
PY="${PYTHON:-}"
if [ -z "$PY" ]; then
  if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi

if [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1 && ! "$PY" -c "import albumentations" 2>/dev/null; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH="/tmp/site:${PYTHONPATH:-}"
fi
export PYTHONPATH="$PWD:${PYTHONPATH:-}"
export PYTHONUNBUFFERED=1

step() { echo "== $(date +%H:%M:%S) $*"; }

if [ "$DRY" = 1 ]; then
  PRESETS=tiny; STEPS=3; BATCH=4; FRAMES=40; SUFFIX=dryrun; INFER_PRESETS="${INFER_PRESETS:-tiny}"
else
  PRESETS=tiny,rt128,lite,hd; STEPS=15; BATCH=32; FRAMES=300; SUFFIX=gpu
fi

step "machine"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "no nvidia-smi"
"$PY" -c "import torch, sys; print('python', sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.cuda.is_available())"

if [ "${GPU_DEMO_MINUTES:-0}" != 0 ]; then
  step "demo model: up to ${GPU_DEMO_MINUTES} minutes of training"
  W="${GPU_DEMO_WORKDIR:-.gpu/demo}"
  RESUME=""
  [ -f "$W/run/checkpoint.pt" ] && RESUME="--resume"
  STEPS_ARG=""
  if [ "${GPU_DEMO_STEPS:-auto}" = auto ]; then
    # The schedules (lr decay, warp fade) scale with --steps: size the run to the minutes at hand by timing this
    # machine for 20 s first (a fresh run on the same data, workers and batch), then use 92 % of what the rest
    # allows (on top of the step a resumed run is at).
    P=/tmp/swapcam-probe; rm -rf "$P"; mkdir -p "$P"; ln -s "$(cd "$W/faceset" && pwd)" "$P/faceset"
    timeout 120 "$PY" -m realtime.cli build-demo-model --workdir "$P" --train-only --steps 1000000 --max-minutes 0.35 \
      --workers "${GPU_WORKERS:-12}" --no-progress ${GPU_TRAIN_ARGS:-} >/dev/null 2>&1
    DEMO_STEPS=$("$PY" - "$P/run/metrics.jsonl" "$GPU_DEMO_MINUTES" "$W/run/checkpoint.pt" <<'PYEOF'
import json, os, statistics, sys
rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
cfg = json.load(open(sys.argv[1].replace("metrics.jsonl", "train_config.json")))
rates = [r["samples_per_s"] / (2 * cfg["batch"]) for r in rows[1:]] or [1.0]
done = 0
if os.path.exists(sys.argv[3]):
    import torch

    done = int(torch.load(sys.argv[3], map_location="cpu", weights_only=False)["step"])
print(done + max(100, int(statistics.median(rates) * 60 * float(sys.argv[2]) * 0.92)))
PYEOF
)
    echo "probe: $(tail -n 1 "$P/run/metrics.jsonl" | cut -c1-200); run to step $DEMO_STEPS in $GPU_DEMO_MINUTES min"
    [ -n "$DEMO_STEPS" ] && STEPS_ARG="--steps $DEMO_STEPS"
  else
    STEPS_ARG="--steps $GPU_DEMO_STEPS"
  fi
  timeout $(( ${GPU_DEMO_MINUTES%.*} * 60 + 120 )) "$PY" -m realtime.cli build-demo-model --workdir "$W" --train-only \
    $RESUME $STEPS_ARG --max-minutes "$GPU_DEMO_MINUTES" --workers "${GPU_WORKERS:-12}" --no-progress \
    ${GPU_TRAIN_ARGS:-} 2>&1 \
    | tail -n 15
  # Files come back at most 16 MB each and 64 MB in all: a weights-only copy (no Adam state; `train --resume` starts
  # Adam afresh from it) split in 15 MB parts; `cat demo-weights.pt.part-* > checkpoint.pt` rejoins it.
  "$PY" - "$W/run/checkpoint.pt" "$OUT/demo-weights.pt" <<'PYEOF'
import sys

import torch

state = torch.load(sys.argv[1], map_location="cpu", weights_only=False)
state["optimizer"], state["scaler"] = None, None
torch.save(state, sys.argv[2])
print("weights-only checkpoint: step", state["step"], "psnr", state["psnr"])
PYEOF
  split -b 15M -d "$OUT/demo-weights.pt" "$OUT/demo-weights.pt.part-" && rm -f "$OUT/demo-weights.pt"
  cp "$W/run/metrics.jsonl" "$OUT/demo-metrics.jsonl" 2>/dev/null
  ls -la "$OUT"
fi

if [ -n "${GPU_SKIP_BENCH:-}" ]; then step "done (benchmarks skipped)"; exit 0; fi

step "training samples/s (AMP on CUDA)"
timeout "${GPU_BENCH_TRAIN_S:-150}" "$PY" -m realtime.cli bench-train --presets "$PRESETS" --batch "$BATCH" --steps "$STEPS" --warmup 3 \
  --json "$OUT/train-$SUFFIX.json" 2>&1 | tail -n 12

step "inference: swap model alone, providers, IO binding, fp16; live pipeline at 1280x720 if mediapipe runs"
timeout "${GPU_INFER_S:-120}" "$PY" benchmarks/gpu_infer.py --presets "${INFER_PRESETS:-rt128,hd}" --runs 20 --frames "$FRAMES" --json "$OUT/infer-$SUFFIX.json" 2>&1 \
  | tail -n 30
step "done"
