#!/usr/bin/env bash
# Profile a short training run and an OOD evaluation under Nsight Systems, with fastrecur's NVTX
# ranges (embed, attention, mlp, readout, teacher, forward_loss, backward, optimizer, step, iteration).
#
#   scripts/profile_nsys.sh [CONFIG] [OUT_DIR]        defaults: paper, profiles/nsys
#   STEPS=40 EVAL_GRAPHS=256 BACKEND=triton scripts/profile_nsys.sh
#
# Writes OUT_DIR/{train,eval}.nsys-rep (open in the Nsight Systems GUI) and text summaries
# OUT_DIR/{train,eval}_summary.txt: time per NVTX range and per CUDA kernel. The first steps include
# Triton compilation and autotuning; compare ranges over the later steps (the GUI's timeline) or
# raise STEPS so the warm-up is a small share of the totals.
set -euo pipefail
CONFIG=${1:-paper}
OUT=${2:-profiles/nsys}
STEPS=${STEPS:-40}
EVAL_GRAPHS=${EVAL_GRAPHS:-256}
BACKEND=${BACKEND:-auto}
mkdir -p "$OUT"
command -v nsys >/dev/null || { echo "nsys (Nsight Systems) not found on PATH" >&2; exit 1; }

nsys profile --trace=cuda,nvtx,osrt --sample=none --force-overwrite=true -o "$OUT/train" \
  python -m fastrecur train "$CONFIG" --nvtx --no-progress --out "$OUT/run" \
    train.steps="$STEPS" train.log_every=10 train.ckpt_every=0 train.eval_every=0 train.backend="$BACKEND"
nsys stats --force-export=true --report nvtx_sum,cuda_gpu_kern_sum,cuda_api_sum "$OUT/train.nsys-rep" > "$OUT/train_summary.txt"

nsys profile --trace=cuda,nvtx --sample=none --force-overwrite=true -o "$OUT/eval" \
  python -m fastrecur eval "$OUT/run/checkpoint.pt" --nvtx --nodes 128 --num-graphs "$EVAL_GRAPHS" --backend "$BACKEND"
nsys stats --force-export=true --report nvtx_sum,cuda_gpu_kern_sum "$OUT/eval.nsys-rep" > "$OUT/eval_summary.txt"

echo "reports: $OUT/train.nsys-rep $OUT/eval.nsys-rep"
echo "summaries: $OUT/train_summary.txt $OUT/eval_summary.txt"
