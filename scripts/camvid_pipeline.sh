#!/usr/bin/env bash
# The main job on real data, the way a user runs it: SegNet CamVid (11 classes, void = 11).
#
#   scripts/camvid_pipeline.sh [BUDGET_MINUTES] [DATA_DIR] [OUT_DIR]
#
#   BUDGET_MINUTES  training wall-time budget (default 30); the LR schedule is fitted to it
#   DATA_DIR        folder holding camvid/segnet/ (default: ../shared/data beside the repo)
#   OUT_DIR         where everything is written (default: runs/camvid_pipeline in the repo,
#                   git-ignored)
#
# Environment: SEGPREP (the segprep command; default .venv/bin/segprep, else segprep on PATH),
# TRAIN_ARGS (extra `segprep train` options, appended so they override, e.g. "--base-channels 32"),
# VAL_EVERY (validate every N epochs, default 5), THREADS (torch CPU threads; on a shared machine
# 1 can train many times faster than 2 threads waiting on a busy core), JOBS (-j for batch
# commands), OVERLAYS (how many val frames get an overlay PNG, default 8).
#
# Steps: odgt create (official SegNet layout: train.txt / val.txt) -> odgt validate -> odgt stats
# (class frequencies and median-frequency weights) -> train (U-Net, 180x240 crops, class weights,
# ignore 11) -> predict val (trainIds at 480x360) -> evaluate odgt (per-class IoU) -> predict
# overlays for a few val frames. Every command is echoed before it runs; the final lines give the
# val mIoU and where every artefact is.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUDGET="${1:-30}"
DATA="${2:-$REPO/../shared/data}"
OUT="${3:-$REPO/runs/camvid_pipeline}"
if [[ -n "${SEGPREP:-}" ]]; then :
elif [[ -x "$REPO/.venv/bin/segprep" ]]; then SEGPREP="$REPO/.venv/bin/segprep"
else SEGPREP="segprep"; fi
JOBS_ARGS=()
[[ -n "${JOBS:-}" ]] && JOBS_ARGS=(-j "$JOBS")
OVERLAYS="${OVERLAYS:-8}"

CAMVID="$DATA/camvid/segnet"
if [[ ! -f "$CAMVID/train.txt" || ! -d "$CAMVID/trainannot" ]]; then
    echo "camvid_pipeline: error: $CAMVID: not the SegNet CamVid release (train.txt, train/, trainannot/, val/, valannot/)" >&2
    exit 2
fi
mkdir -p "$OUT"
START=$SECONDS

run() {  # echo a command, run it, time it
    local t0=$SECONDS
    echo "+ $*" | sed "s|$REPO/||g"
    "$@"
    echo "  ($((SECONDS - t0)) s)"
}

echo "== SegNet CamVid pipeline: data $CAMVID, out $OUT, training budget $BUDGET min"

# 1. manifests from the official layout (the lists' absolute paths are re-rooted under CAMVID)
for split in train val; do
    run "$SEGPREP" odgt create --dataset camvid-segnet "$CAMVID" --split "$split" \
        -o "$OUT/$split.odgt" --overwrite -q "${JOBS_ARGS[@]}"
    run "$SEGPREP" odgt validate "$OUT/$split.odgt" --num-classes 11 --ignore-index 11 -q \
        "${JOBS_ARGS[@]}"
done

# 2. class statistics and weights of the training masks
run "$SEGPREP" odgt stats "$OUT/train.odgt" --num-classes 11 --ignore-index 11 \
    --class-map camvid11 -o "$OUT/train_stats.json" --overwrite -q "${JOBS_ARGS[@]}"

# 3. train within the budget: the DESIGN.md yardstick's model and optimiser (U-Net base 16,
#    AdamW 2e-3, batch 8, median-frequency weights, ignore 11) with scripts/train_camvid.sh's
#    augmentation (scale 0.75-1.5, flips, colour jitter 0.2), on 180x240 random crops of the
#    native 480x360 frames (as many pixels per step as the yardstick's 240x180 frames). Native
#    scale, because `segprep predict` runs on whole native frames: a model trained on frames
#    resized with `--size 240x180` would see every object at twice the size it learned.
# shellcheck disable=SC2086
run "$SEGPREP" train --train "$OUT/train.odgt" --val "$OUT/val.odgt" \
    --class-map camvid11 --num-classes 11 --ignore-index 11 \
    --class-weights "$OUT/train_stats.json" --crop 180x240 --scale 0.75,1.5 \
    --color-jitter 0.2 --batch-size 8 --lr 2e-3 \
    --base-channels 16 --workers 0 --cache --seed 0 --val-every "${VAL_EVERY:-5}" \
    --time-budget "$BUDGET" --out "$OUT/run" --overwrite --no-tensorboard \
    ${THREADS:+--threads "$THREADS"} \
    ${TRAIN_ARGS:-}

# 4. predict the val frames (trainIds 0-10 at the images' 480x360) and evaluate per class
run "$SEGPREP" predict "$OUT/run/best.pt" "$CAMVID/val" "$OUT/pred/val" --format trainIds \
    --overwrite -q
run "$SEGPREP" evaluate odgt "$OUT/val.odgt" --pred "$OUT/pred/val" --num-classes 11 \
    --ignore-index 11 --class-map camvid11 --json "$OUT/eval_val.json" \
    --plot "$OUT/eval_val_confusion.png" -q "${JOBS_ARGS[@]}"

# 5. overlays for a few val frames (links to the real frames, nothing copied)
mkdir -p "$OUT/overlay_inputs"
find "$OUT/overlay_inputs" -maxdepth 1 -type l -delete
find "$CAMVID/val" -maxdepth 1 -name '*.png' | sort | head -n "$OVERLAYS" | while read -r f; do
    ln -s "$(cd "$(dirname "$f")" && pwd)/$(basename "$f")" "$OUT/overlay_inputs/"
done
run "$SEGPREP" predict "$OUT/run/best.pt" "$OUT/overlay_inputs" "$OUT/pred/overlay" \
    --format overlay --overwrite -q

PY="$(dirname "$SEGPREP")/python"
[[ -x "$PY" ]] || PY=python3
"$PY" - "$OUT" "$((SECONDS - START))" <<'EOF'
import json, sys, csv, os
out, secs = sys.argv[1], sys.argv[2]
ev = json.load(open(os.path.join(out, "eval_val.json")))
rows = list(csv.DictReader(open(os.path.join(out, "run", "metrics.csv"))))
miou = ev.get("mIoU", ev.get("averageScoreClasses"))
print(f"== done in {secs} s: {len(rows)} epochs, val mIoU {miou:.4f} (101 SegNet val frames, 480x360)")
for k in ("run/best.pt", "run/metrics.csv", "run/curves.png", "train_stats.json", "eval_val.json",
          "eval_val_confusion.png", "pred/val", "pred/overlay"):
    print(f"   {os.path.join(out, k)}")
EOF
