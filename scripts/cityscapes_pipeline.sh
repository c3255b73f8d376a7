#!/usr/bin/env bash
# Cityscapes on real data, the way a user runs it (the dataset root is only read, never written).
#
#   scripts/cityscapes_pipeline.sh [DATA_DIR] [OUT_DIR]
#
#   DATA_DIR  folder holding cityscapes/{gtFine,leftImg8bit} (default: ../shared/data beside the
#             repo); a full Cityscapes root works too
#   OUT_DIR   where everything is written (default: runs/cityscapes_pipeline in the repo,
#             git-ignored)
#
# Environment: SEGPREP (the segprep command; default .venv/bin/segprep, else segprep on PATH),
# CKPT (a trained checkpoint to predict with; default: fit a tiny U-Net to the frames that have
# images, EPOCHS epochs of 256x512 crops, default 20), JOBS (-j for batch commands).
#
# Steps: cityscapes gen-gt (every split, into OUT/gt, mirroring the official layout) -> odgt
# create for the frames that have a leftImg8bit image -> odgt validate -> odgt stats -> train (or
# CKPT) -> predict + evaluate odgt + overlays on those frames -> predict the test split ->
# submit cityscapes (a validated zip).
#
# The repository's sample data has camera images for 4 train frames only and none for the test
# split. When ROOT/leftImg8bit/test is absent, the test frames get STAND-IN predictions: each
# gtFine/test frame name is a symbolic link to the prediction of one of the available real camera
# frames (nothing is copied). The zip is then valid in layout, names, size and format, but its
# predictions are not predictions of the test frames: never upload it. With a full Cityscapes
# root the real test images are predicted.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DATA="${1:-$REPO/../shared/data}"
OUT="${2:-$REPO/runs/cityscapes_pipeline}"
if [[ -n "${SEGPREP:-}" ]]; then :
elif [[ -x "$REPO/.venv/bin/segprep" ]]; then SEGPREP="$REPO/.venv/bin/segprep"
else SEGPREP="segprep"; fi
JOBS_ARGS=()
[[ -n "${JOBS:-}" ]] && JOBS_ARGS=(-j "$JOBS")
EPOCHS="${EPOCHS:-20}"

CS="$DATA/cityscapes"
[[ -d "$DATA/gtFine" ]] && CS="$DATA"  # DATA is itself a Cityscapes root
if [[ ! -d "$CS/gtFine" ]]; then
    echo "cityscapes_pipeline: error: $CS: no gtFine/ folder (not a Cityscapes root)" >&2
    exit 2
fi
CS="$(cd "$CS" && pwd)"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
START=$SECONDS

run() {  # echo a command, run it, time it
    local t0=$SECONDS
    echo "+ $*" | sed "s|$REPO/||g"
    "$@"
    echo "  ($((SECONDS - t0)) s)"
}

echo "== Cityscapes pipeline: root $CS (read only), out $OUT"

# 1. ground truth of every split, written under OUT/gt/gtFine/<split>/<city>/
run "$SEGPREP" cityscapes gen-gt "$CS" --out "$OUT/gt" --split train,val,test \
    --targets labelIds,trainIds,instanceIds,color --overwrite -q "${JOBS_ARGS[@]}"

# 2. a manifest of the train frames that have a camera image (the others are skipped)
run "$SEGPREP" odgt create --images "$CS/leftImg8bit/train" --masks "$OUT/gt/gtFine/train" \
    --image-suffix _leftImg8bit.png --mask-suffix _gtFine_labelTrainIds.png --allow-missing \
    -o "$OUT/train_with_images.odgt" --overwrite -q "${JOBS_ARGS[@]}"
run "$SEGPREP" odgt validate "$OUT/train_with_images.odgt" --class-map cityscapes -q \
    "${JOBS_ARGS[@]}"
run "$SEGPREP" odgt stats "$OUT/train_with_images.odgt" --class-map cityscapes \
    -o "$OUT/train_with_images_stats.json" --overwrite -q "${JOBS_ARGS[@]}"

# 3. a checkpoint: CKPT, or a tiny U-Net fitted to those frames (a smoke run, not a model)
if [[ -n "${CKPT:-}" ]]; then
    echo "== using checkpoint $CKPT"
else
    CKPT="$OUT/run/best.pt"
    run "$SEGPREP" train --train "$OUT/train_with_images.odgt" \
        --val "$OUT/train_with_images.odgt" --class-map cityscapes --crop 256x512 --scale 1 \
        --epochs "$EPOCHS" --val-every 10 --batch-size 2 --lr 4e-3 --base-channels 8 \
        --workers 0 --cache --seed 0 --out "$OUT/run" --overwrite --no-tensorboard -q
fi

# 4. predict those frames: labelIds for evaluation, overlays to look at
run "$SEGPREP" predict "$CKPT" "$CS/leftImg8bit/train" "$OUT/pred/train" --format trainIds \
    --overwrite -q
run "$SEGPREP" evaluate odgt "$OUT/train_with_images.odgt" --pred "$OUT/pred/train" \
    --num-classes 19 --class-map cityscapes --json "$OUT/eval_train_with_images.json" -q \
    "${JOBS_ARGS[@]}"
run "$SEGPREP" predict "$CKPT" "$CS/leftImg8bit/train" "$OUT/pred/overlay" --format overlay \
    --overwrite -q

# 5. the test split: real images when present, else stand-ins (see the header)
TEST_IMAGES="$CS/leftImg8bit/test"
STANDIN=0
if [[ -d "$TEST_IMAGES" ]]; then
    run "$SEGPREP" predict "$CKPT" "$TEST_IMAGES" "$OUT/pred/test" --format labelIds \
        --overwrite -q
else
    # Each gtFine/test frame name gets, as its prediction, a link to the labelIds prediction of
    # one of the real camera frames: predict runs once per distinct image (at 2048x1024 a CPU
    # predicts a frame in seconds), and the links give the zip the test split's exact layout.
    STANDIN=1
    run "$SEGPREP" predict "$CKPT" "$CS/leftImg8bit" "$OUT/pred/labelIds" --format labelIds \
        --overwrite -q
    mapfile -t PREDS < <(find "$OUT/pred/labelIds" -name '*_leftImg8bit.png' | sort)
    if [[ ${#PREDS[@]} -eq 0 ]]; then
        echo "cityscapes_pipeline: error: no *_leftImg8bit.png under $CS/leftImg8bit" >&2
        exit 2
    fi
    rm -rf "$OUT/pred/test"
    i=0
    while read -r json; do
        city="$(basename "$(dirname "$json")")"
        frame="$(basename "$json" _gtFine_polygons.json)"
        mkdir -p "$OUT/pred/test/$city"
        ln -s "${PREDS[$((i % ${#PREDS[@]}))]}" "$OUT/pred/test/$city/${frame}_leftImg8bit.png"
        i=$((i + 1))
    done < <(find "$CS/gtFine/test" -name '*_gtFine_polygons.json' | sort)
    echo "== STAND-IN test predictions: the sample data has no leftImg8bit/test, so the $i" \
         "gtFine/test frames get links to the predictions of ${#PREDS[@]} real camera frames;" \
         "the zip checks the layout only"
fi
run "$SEGPREP" submit cityscapes "$OUT/pred/test" --root "$CS" --split test \
    -o "$OUT/submission_test.zip" -q "${JOBS_ARGS[@]}"

echo "== done in $((SECONDS - START)) s"
echo "   ground truth      $OUT/gt/gtFine"
echo "   manifest          $OUT/train_with_images.odgt ($(grep -c . "$OUT/train_with_images.odgt") frames)"
echo "   checkpoint        $CKPT"
echo "   scores (train fit) $OUT/eval_train_with_images.json"
echo "   overlays          $OUT/pred/overlay"
echo "   submission        $OUT/submission_test.zip$([[ $STANDIN == 1 ]] && echo ' (STAND-IN predictions: layout check only)')"
