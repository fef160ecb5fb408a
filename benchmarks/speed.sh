#!/usr/bin/env bash
# Rerun every speed and memory benchmark of docs/benchmarks.md in one go:
# the Beauty pipeline stage by stage, training throughput (packed vs padded, each
# switch), time to quality, scoring throughput, and the challenge-scale run.
#
# Usage: NANOREC_DATA_DIR=/path/to/data bash benchmarks/speed.sh [WORK]
# NANOREC_DATA_DIR must contain amazon-beauty-2014-kaggle/. Results go to
# WORK/*.jsonl (default WORK: /tmp/nanorec-speed). THREADS=1 gives each timed run
# one torch thread, which suits a machine shared with other jobs; unset, torch
# picks its default. Estimated at about an hour on an idle 2-core machine, most
# of it the challenge-scale predict stages.
set -euo pipefail
cd "$(dirname "$0")/.."
work="${1:-/tmp/nanorec-speed}"
beauty="${NANOREC_DATA_DIR:?set NANOREC_DATA_DIR to the folder with the data}/amazon-beauty-2014-kaggle"
py=.venv/bin/python
threads=(--threads "${THREADS:-0}")
if [[ "${THREADS:-0}" != 0 ]]; then export OMP_NUM_THREADS="$THREADS"; fi
mkdir -p "$work"
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"

# Every stage on Beauty: wall time, peak memory, packing efficiency.
$py benchmarks/pipeline.py --work "$work/beauty" \
    --set ingest.format=challenge --set "ingest.path=$beauty" \
    --set train.batch_size=128 --set train.max_steps=600 \
    --set train.eval_interval=200 --set train.eval_users=5000
ingested="$work/beauty/ingest"
vectors="$work/beauty/embed/vectors.parquet"

# Training throughput: both sizes, packed vs padded, then each switch.
$py benchmarks/train_speed.py --ingested "$ingested" --vectors "$vectors" \
    --size original --size default --layout packed --layout padded \
    --variant bf16: --variant fp32:dtype=float32 \
    --variant eager-loss:compile_loss=false "${threads[@]}" \
    --results "$work/train_speed.jsonl"
$py benchmarks/train_speed.py --ingested "$ingested" --vectors "$vectors" \
    --size original --size default --layout packed --steps 60 --warmup 20 \
    --variant bf16: --variant compiled:compile=true \
    --variant unfused:fused_adamw=false "${threads[@]}" \
    --results "$work/train_speed.jsonl"

# Time to validation MAP@10 0.026 (all 22,363 validation users per evaluation).
for size in default original; do
    if [[ $size == default ]]; then dims=(); else
        dims=(--set train.n_layer=6 --set train.n_head=6 --set train.n_embd=192); fi
    $py benchmarks/time_to_quality.py --ingested "$ingested" \
        --packed "$work/beauty/pack/train.parquet" --vectors "$vectors" \
        --work "$work/ttq-$size" --label "$size" "${dims[@]}" "${threads[@]}" \
        --set train.batch_size=128 --set train.max_steps=2000 \
        --results "$work/time_to_quality.jsonl"
done

# Top-10 over all items for all 22,363 users: transformers (bf16, fp32) and SVD.
$py benchmarks/scoring.py --ingested "$ingested" "${threads[@]}" \
    --results "$work/scoring.jsonl"
$py benchmarks/optimizer_step.py --n-items 12101 --n-items 77833 \
    --results "$work/optimizer_step.jsonl"

# The challenge's size: every stage's time and memory, SVD and transformer.
$py benchmarks/challenge_scale.py --work "$work/challenge" \
    --results "$work/challenge_scale.jsonl"
$py benchmarks/train_speed.py --ingested "$work/challenge/ingest" --size default \
    --layout packed --variant bf16: --variant eager-loss:compile_loss=false \
    --steps 25 --warmup 8 --batch-size 64 "${threads[@]}" \
    --results "$work/train_speed.jsonl"
$py benchmarks/scoring.py --ingested "$work/challenge/ingest" --size default \
    --dtype bfloat16 --no-svd "${threads[@]}" --results "$work/scoring.jsonl"
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
