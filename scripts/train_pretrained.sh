#!/usr/bin/env bash
# Train (or continue) the shipped pretrained model on the CPU: the `pretrained-cpu` config.
# Resumable across sessions: rerun the same command and it continues from the last checkpoint.
#   scripts/train_pretrained.sh [OUT_DIR] [extra `fastrecur train` args...]
set -euo pipefail
OUT=${1:-runs/pretrained-cpu}; shift || true
RESUME=()
[ -f "$OUT/checkpoint.pt" ] && RESUME=(--resume "$OUT/checkpoint.pt")
exec python -m fastrecur train pretrained-cpu --out "$OUT" "${RESUME[@]}" "$@"
