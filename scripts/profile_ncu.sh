#!/usr/bin/env bash
# Profile fastrecur's Triton kernels under Nsight Compute (per-kernel roofline, occupancy, memory).
#
#   scripts/profile_ncu.sh [CONFIG] [OUT_DIR]          defaults: paper, profiles/ncu
#   KERNELS='_fwd_kernel|_bwd_dq' SET=detailed scripts/profile_ncu.sh
#
# Runs a few training steps with the triton backend, skips the first launches (compilation and
# warm-up) and collects the metric set SET (default: full) for each matching kernel. Writes
# OUT_DIR/kernels.ncu-rep (open in the Nsight Compute GUI) and OUT_DIR/kernels_summary.txt.
# Nsight Compute replays every profiled kernel many times: keep STEPS small.
set -euo pipefail
CONFIG=${1:-paper}
OUT=${2:-profiles/ncu}
STEPS=${STEPS:-6}
SET=${SET:-full}
KERNELS=${KERNELS:-_fwd_kernel|_bwd_dq_kernel|_bwd_dkdv_kernel|_bottleneck_kernel|_factor_loss_kernel|_teacher_corrupt_kernel}
mkdir -p "$OUT"
command -v ncu >/dev/null || { echo "ncu (Nsight Compute) not found on PATH" >&2; exit 1; }

ncu --set "$SET" --kernel-name "regex:$KERNELS" --launch-skip 24 --launch-count 24 \
    --target-processes all --force-overwrite -o "$OUT/kernels" \
  python -m fastrecur train "$CONFIG" --no-progress --out "$OUT/run" \
    train.steps="$STEPS" train.log_every=1 train.ckpt_every=0 train.eval_every=0 train.backend=triton
ncu --import "$OUT/kernels.ncu-rep" --page details --print-units base > "$OUT/kernels_summary.txt"
echo "report: $OUT/kernels.ncu-rep   summary: $OUT/kernels_summary.txt"
