#!/usr/bin/env bash
# The real run: train segprep's U-Net on SegNet CamVid (367 train / 101 val frames, 480x360, masks
# 0..10 + 11 = void, ignored as SegNet does) for a fixed wall-clock budget, then print the val mIoU
# and per-class IoU (also in $RUN/best_scores.json, metrics.csv, curves.png).
#
# Same setting as the yardstick in shared/DESIGN.md (U-Net 4 levels, base width 16, BatchNorm,
# AdamW 2e-3, CE with median-frequency class weights ignoring 11, 240x180 frames, batch 8, val =
# the 101 SegNet val frames at 240x180, 30 minutes on the CPU), plus segprep's augmentation
# (random scale 0.75-1.5 + crop, flip, colour jitter) and schedule (warm-up + poly fitted to the
# budget).
#
# Usage: scripts/train_camvid.sh [extra segprep train options]
#   BUDGET=30 (minutes)  DATA=../shared/data/camvid/segnet  RUN=runs/camvid-cpu  DEVICE=cpu
#   e.g. on a GPU: DEVICE=cuda RUN=runs/camvid-gpu scripts/train_camvid.sh --workers 8
set -euo pipefail
cd "$(dirname "$0")/.."
SEGPREP=${SEGPREP:-.venv/bin/segprep}
[ -x "$SEGPREP" ] || SEGPREP=segprep
DATA=${DATA:-../shared/data/camvid/segnet}
RUN=${RUN:-runs/camvid-cpu}
BUDGET=${BUDGET:-30}
DEVICE=${DEVICE:-cpu}
LISTS=$RUN/lists
mkdir -p "$LISTS"

# 1. manifests (SegNet's train.txt / val.txt re-rooted under DATA) and class statistics
for split in train val; do
  [ -s "$LISTS/$split.odgt" ] || \
    "$SEGPREP" odgt create --dataset camvid-segnet "$DATA" --split "$split" -o "$LISTS/$split.odgt"
done
[ -s "$LISTS/stats.json" ] || \
  "$SEGPREP" odgt stats "$LISTS/train.odgt" --num-classes 11 --ignore-index 11 \
    -o "$LISTS/stats.json" --no-plot -q > /dev/null

# 2. train (resumes if the run folder already has a last.pt)
if [ -f "$RUN/last.pt" ]; then
  exec "$SEGPREP" train --resume "$RUN" "$@"
fi
set -x
"$SEGPREP" train \
  --train "$LISTS/train.odgt" --val "$LISTS/val.odgt" \
  --class-map camvid11 --ignore-index 11 \
  --size 240x180 --crop 180x240 --scale 0.75,1.5 --color-jitter 0.2 \
  --base-channels 16 --depth 4 --batch-size 8 \
  --optimizer adamw --lr 2e-3 --loss ce \
  --class-weights "$LISTS/stats.json" --class-weight-kind median_frequency \
  --time-budget "$BUDGET" --val-every 2 --cache --device "$DEVICE" --seed 0 \
  --out "$RUN" "$@"
