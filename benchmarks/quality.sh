#!/usr/bin/env bash
# The README's quality table in one command: the standard eval runs of the shipped default model
# (benchmarks/eval_demo.sh with the prefix "quality"), then the table rebuilt from their JSON
# (benchmarks/quality_table.py).
set -euo pipefail
cd "$(dirname "$0")/.."
benchmarks/eval_demo.sh quality "$@"
"${PYTHON:-.venv/bin/python}" benchmarks/quality_table.py --prefix quality
