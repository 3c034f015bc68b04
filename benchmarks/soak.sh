#!/usr/bin/env bash
# The soaks of issue 21 item 7, one after the other, JSON into OUT (default benchmarks/results):
#   1. swapcam bench --minutes M           live pipeline, synthetic clip looped at 30 fps (camera pace), shipped
#                                          demo model, null sink             -> soak-live-640x480-rt128-cpuN.json
#   2. swapcam bench-webrtc --minutes M    one real aiortc peer against the server, same clip and model
#                                                                            -> soak-webrtc-1peer-rt128-cpuN.json
# Each prints a line a minute (RSS, threads, fps, latency / round trip p50 and p95, drops) and a verdict: the last
# full minute against the second, flat or grows (> 10 %). N is the number of CPUs. M = SOAK_MINUTES (default 20).
# Run it on a quiet machine: other load moves latency and fps (not RSS or threads).
#
#   benchmarks/soak.sh                           # 20 + 20 minutes, results committed from benchmarks/results
#   SOAK_MINUTES=2 OUT=/tmp/soak benchmarks/soak.sh   # a quick check of the script, results elsewhere
set -euo pipefail
cd "$(dirname "$0")/.."

MINUTES="${SOAK_MINUTES:-20}"
OUT="${OUT:-benchmarks/results}"
SWAPCAM="${SWAPCAM:-.venv/bin/swapcam}"
CPUS="$(nproc 2>/dev/null || echo 0)"
mkdir -p "$OUT"

"$SWAPCAM" bench --minutes "$MINUTES" --json "$OUT/soak-live-640x480-rt128-cpu$CPUS.json"
"$SWAPCAM" bench-webrtc --peers 1 --minutes "$MINUTES" --json "$OUT/soak-webrtc-1peer-rt128-cpu$CPUS.json"
