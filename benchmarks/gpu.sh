#!/usr/bin/env bash
# Compare sdpa and flex attention, eager and compiled, on a CUDA GPU at the
# challenge's vocabulary size, and print a table (see benchmarks/gpu.py).
# Uses $PYTHON, else the project's .venv, else python3; nanorec comes from src/.
set -euo pipefail
cd "$(dirname "$0")/.."
python="${PYTHON:-}"
if [[ -z "$python" ]]; then
    if [[ -x .venv/bin/python ]]; then python=.venv/bin/python; else python=python3; fi
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
exec "$python" benchmarks/gpu.py "$@"
