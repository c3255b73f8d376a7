"""Time `segprep odgt stats` counting against the plain loop most projects use.

Reference: a serial loop of ``np.array(Image.open(mask))`` + ``np.bincount`` (how SegNet-era
scripts and most "compute class weights" snippets count). segprep: :func:`segprep.stats.
compute_stats` (imagecodecs decode, OpenCV histogram, joblib workers). Both count the same masks;
the script checks that the pixel counts agree exactly before printing times.

    .venv/bin/python scripts/bench_stats.py                 # Cityscapes 205 gtFine labelIds
    .venv/bin/python scripts/bench_stats.py --dataset camvid  # SegNet CamVid train+val 468 masks
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from segprep.manifest import Record  # noqa: E402
from segprep.stats import compute_stats  # noqa: E402

DATA = Path(os.environ.get("SEGPREP_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def masks_of(dataset: str) -> tuple[list[Path], int, int]:
    if dataset == "cityscapes":
        return sorted(DATA.glob("cityscapes/gtFine/*/*/*_gtFine_labelIds.png")), 34, 255
    if dataset == "camvid":
        return sorted(DATA.glob("camvid/segnet/*annot/*.png")), 11, 11
    if dataset == "bdd100k":
        return sorted(DATA.glob("bdd100k/seg/labels/*/*_train_id.png")), 19, 255
    raise SystemExit(f"unknown dataset {dataset}")


def reference(masks: list[Path], k: int, ignore: int) -> np.ndarray:
    total = np.zeros(256, np.int64)
    for p in masks:
        total += np.bincount(np.array(Image.open(p)).ravel(), minlength=256)
    return total[:k]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="cityscapes", choices=["cityscapes", "camvid", "bdd100k"])
    ap.add_argument("--repeat", type=int, default=3, help="runs per variant; the best is kept")
    args = ap.parse_args()
    masks, k, ignore = masks_of(args.dataset)
    if not masks:
        raise SystemExit(f"no masks found under {DATA}")
    with Image.open(masks[0]) as im:
        w, h = im.size
    records = [Record(str(p), str(p), w, h) for p in masks]

    def best(fn):
        times, out = [], None
        for _ in range(args.repeat):
            t = time.perf_counter()
            out = fn()
            times.append(time.perf_counter() - t)
        return min(times), out

    t_ref, ref = best(lambda: reference(masks, k, ignore))
    rows = [("PIL + np.bincount, serial", t_ref)]
    for jobs in (1, 2):
        t, (st, errors) = best(lambda j=jobs: compute_stats(records, "/", k, ignore, jobs=j,
                                                            quiet=True))
        assert not errors, errors[:3]
        assert np.array_equal(st.pixel_count, ref), "pixel counts differ from the reference"
        rows.append((f"segprep compute_stats -j {jobs}", t))
    print(f"{args.dataset}: {len(masks)} masks of {w}x{h}, K={k}, ignore={ignore}, "
          f"cpus={os.cpu_count()}, load={os.getloadavg()[0]:.1f}, best of {args.repeat}")
    for name, t in rows:
        print(f"  {name:<32} {t:7.2f} s  {1000 * t / len(masks):6.1f} ms/mask  "
              f"{t_ref / t:4.1f}x")


if __name__ == "__main__":
    main()
