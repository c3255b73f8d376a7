"""Estimate a CamVid model's SegNet-test mIoU from its score on the test-like fold.

The SegNet test split (233 frames: drive Seq05VD and the later frames of 0001TP) is not in
``../shared/data``. One model's test score is known: issue 19 trained the round-2 recipe
(``scripts/train_camvid.sh`` at commit d71e5c5, plain U-Net, 240x180, weighted CE, 45 epochs)
and measured its per-class IoU on the real test split (the table below). Train that same recipe
on the test-like fold (``HOLDOUT=test-like`` of ``scripts/train_camvid.sh``: drive 0006R0 and the
later half of 0001TP held out), score it and the models of interest with ``segprep evaluate
odgt ... --json``, and this script carries the reference's fold-to-test shift of mIoU over:

    estimate = model's test-like mIoU + (reference's test mIoU - reference's test-like mIoU)

It prints the per-class IoU beside it, to show which classes the shift comes from. One
calibration point: read the result as an estimate with an error of a few points, not as a
measurement. Reads ``classIoU`` (0..1) from the JSON files; a file without the 11 CamVid classes
exits with a one-line message.

    python scripts/camvid_test_estimate.py REFERENCE.json MODEL.json [MODEL.json ...]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

# Issue 19: the d71e5c5 recipe's best.pt on the SegNet CamVid test split (233 frames), IoU %,
# measured by the issue's author with the official split (mIoU 49.5, pixel accuracy 80.4).
ISSUE19_TEST_IOU = {
    "Sky": 89.3, "Building": 57.9, "Pole": 13.6, "Road": 88.1, "Pavement": 68.1, "Tree": 64.7,
    "SignSymbol": 13.9, "Fence": 19.7, "Car": 70.2, "Pedestrian": 28.0, "Bicyclist": 31.6,
}


def class_iou_percent(path: Path) -> dict[str, float]:
    """Per-class IoU in percent from a ``segprep evaluate odgt --json`` file (classIoU in 0..1)."""
    scores = json.loads(path.read_text())["classIoU"]
    missing = set(ISSUE19_TEST_IOU) - set(scores)
    if missing:
        raise SystemExit(f"{path}: no IoU for {sorted(missing)} (evaluate with --class-map camvid11)")
    return {name: 100.0 * float(scores[name]) for name in ISSUE19_TEST_IOU}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reference", type=Path, help="evaluate-odgt JSON of the d71e5c5 recipe on the test-like fold")
    parser.add_argument("models", type=Path, nargs="+", help="evaluate-odgt JSON of the models to estimate")
    args = parser.parse_args()
    names = list(ISSUE19_TEST_IOU)
    ref = class_iou_percent(args.reference)
    models = {path: class_iou_percent(path) for path in args.models}
    print("IoU %".ljust(12), "reference test-like", "reference test", *(f"model {i}" for i in range(len(models))))
    for c in names:
        columns = (f"{m[c]:7.1f}" for m in models.values())
        print(c.ljust(12), f"{ref[c]:19.1f}", f"{ISSUE19_TEST_IOU[c]:14.1f}", *columns)
    ref_miou = sum(ref.values()) / len(names)
    shift = sum(ISSUE19_TEST_IOU.values()) / len(names) - ref_miou
    print(f"reference: test-like mIoU {ref_miou:.2f}, SegNet test {ref_miou + shift:.2f}, shift {shift:+.2f}")
    for i, (path, model) in enumerate(models.items()):
        miou = sum(model.values()) / len(names)
        print(f"model {i} ({path}): test-like mIoU {miou:.2f} -> estimated SegNet test {miou + shift:.2f}")


if __name__ == "__main__":
    main()
