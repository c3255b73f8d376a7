#!/usr/bin/env python
"""Benchmark: cityscapesScripts evalPixelLevelSemanticLabeling vs ``segprep evaluate cityscapes``.

In one run, on the same frames and the same prediction files:

1. cityscapesScripts 2.3.0 ``evaluateImgLists`` (iIoU included, one process, as its ``main``);
2. segprep ``evaluate_cityscapes`` with ``-j JOBS`` threads: **cold** (empty ground-truth cache:
   every ground-truth PNG decoded, code maps written), **warm** (the cache filled by the cold run:
   only predictions decoded — the common case of many checkpoints against one val set) and
   **no cache**;
3. the ``segprep evaluate cityscapes`` command line, warm, as a subprocess (interpreter start and
   imports included);

checks that every score of the JSON equals cityscapesScripts' (max abs difference printed) and
prints seconds, ms/frame and the speed-up over cityscapesScripts.

Frames: the real val frames of ROOT (59 in ../shared/data), repeated under distinct city names
until there are ``--frames`` of them (each copy is a separate file, so nothing is shared between
copies). Predictions: each frame's labelIds shifted by a few pixels with classes swapped in a
box, written by Pillow (``--writer pil``, what most tools write) or by segprep's encoder.

cityscapesScripts needs ``np.in1d``, removed in numpy 2.4: this script sets ``np.in1d = np.isin``
for it (segprep does not use it).

Usage: python scripts/bench_eval.py [ROOT] [--frames N] [-j JOBS] [--writer pil|segprep]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
KEYS = ("classScores", "classInstScores", "categoryScores", "categoryInstScores")
AVGS = ("averageScoreClasses", "averageScoreInstClasses", "averageScoreCategories",
        "averageScoreInstCategories")


def max_diff(a: dict, b: dict) -> float:
    """Largest absolute difference over every score and average (NaN == NaN)."""
    worst = 0.0
    pairs = [(a[k][n], b[k][n]) for k in KEYS for n in b[k]] + [(a[k], b[k]) for k in AVGS]
    for x, y in pairs:
        if math.isnan(x) != math.isnan(y):
            return float("inf")
        if not math.isnan(x):
            worst = max(worst, abs(x - y))
    if a["confMatrix"] != b["confMatrix"]:
        return float("inf")
    return worst


def make_frames(root: Path, n: int, tmp: Path, writer: str) -> tuple[Path, Path, list, list]:
    from PIL import Image

    from segprep.io import read_png, write_png

    src = sorted((root / "gtFine" / "val").glob("*/*_gtFine_labelIds.png"))
    if not src:
        raise SystemExit(f"no gtFine/val/*/*_gtFine_labelIds.png under {root}")
    gt_root, pred_dir = tmp / "cs", tmp / "pred"
    gts, preds = [], []
    for i in range(n):
        g = src[i % len(src)]
        copy = i // len(src)
        city = g.parent.name + (str(copy) if copy else "")
        name = g.name.replace(g.parent.name + "_", city + "_", 1)
        dst = gt_root / "gtFine" / "val" / city / name
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(g, dst)
        shutil.copyfile(str(g).replace("labelIds", "instanceIds"),
                        str(dst).replace("labelIds", "instanceIds"))
        lab = read_png(g)
        p = np.roll(lab, (3 + copy, -5 - i % 7), axis=(0, 1))
        box = p[300:600, 700:1300]
        box[box == 26] = 27
        box[box == 7] = 8
        out = pred_dir / city / name.replace("_gtFine_labelIds", "_leftImg8bit")
        out.parent.mkdir(parents=True, exist_ok=True)
        if writer == "pil":
            Image.fromarray(p).save(out)
        else:
            write_png(out, p)
        gts.append(dst)
        preds.append(out)
    return gt_root, pred_dir, gts, preds


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root", nargs="?", default=str(HERE.parent.parent / "shared/data/cityscapes"))
    ap.add_argument("--frames", type=int, default=0,
                    help="frames to evaluate (default: the val frames of ROOT, once)")
    ap.add_argument("-j", "--jobs", type=int, default=0, help="segprep threads (0 = all cores)")
    ap.add_argument("--writer", choices=("pil", "segprep"), default="pil",
                    help="who writes the prediction PNGs")
    ap.add_argument("--skip-reference", action="store_true",
                    help="time segprep only (no cityscapesScripts run, no ratio)")
    args = ap.parse_args()

    from segprep.evaluation import evaluate_cityscapes
    from segprep.evaluation.kernels import warm_up
    from segprep.io import default_jobs

    root = Path(args.root)
    n = args.frames or len(list((root / "gtFine" / "val").glob("*/*_gtFine_labelIds.png")))
    jobs = args.jobs or default_jobs()
    tmp = Path(tempfile.mkdtemp(prefix="bench_eval_"))
    try:
        gt_root, pred_dir, gts, preds = make_frames(root, n, tmp, args.writer)
        print(f"{n} frames (2048x1024), predictions written by {args.writer}; segprep -j {jobs} "
              f"(threads); {os.cpu_count()} CPUs", flush=True)
        rows = []
        ref = None
        if not args.skip_reference:
            if not hasattr(np, "in1d"):
                np.in1d = np.isin  # numpy 2.4 removed it; cityscapesScripts still calls it
            from cityscapesscripts.evaluation import evalPixelLevelSemanticLabeling as ev

            ev.args.quiet = True
            ev.args.JSONOutput = False
            t0 = time.perf_counter()
            ref = ev.evaluateImgLists([str(p) for p in preds], [str(g) for g in gts], ev.args)
            rows.append(("cityscapesScripts 2.3.0", time.perf_counter() - t0, None))

        warm_up(cold=True)  # numba kernels: loaded from its disk cache (compiled the first time)
        cache = tmp / "cache"
        results = {}
        for label, c in (("segprep cold (empty cache)", cache), ("segprep warm (cached GT)", cache),
                         ("segprep no cache", False)):
            t0 = time.perf_counter()
            rep = evaluate_cityscapes(pred_dir, gt_root, "val", jobs=jobs, cache=c, quiet=True)
            dt = time.perf_counter() - t0
            if not rep.ok:
                print("\n".join(rep.errors[:5]), file=sys.stderr)
                return 1
            results[label] = rep.result
            rows.append((label, dt, max_diff(rep.result, ref) if ref else None))

        cmd = [sys.executable, "-m", "segprep", "evaluate", "cityscapes", "--pred", str(pred_dir),
               "--gt", str(gt_root), "--cache", str(cache), "-j", str(jobs), "-q",
               "--json", str(tmp / "cli.json")]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        dt = time.perf_counter() - t0
        if proc.returncode != 0:
            print(proc.stderr, file=sys.stderr)
            return 1
        cli_doc = json.loads((tmp / "cli.json").read_text())
        rows.append(("segprep CLI warm (process)", dt, max_diff(cli_doc, ref) if ref else None))

        base = rows[0][1] if ref else None
        print(f"{'run':<30}{'seconds':>9}{'ms/frame':>10}{'speed-up':>10}{'max |diff|':>12}")
        for label, secs, diff in rows:
            ratio = f"{base / secs:.1f}x" if base else "-"
            d = "-" if diff is None else ("MISMATCH" if diff == float("inf") else f"{diff:.1e}")
            print(f"{label:<30}{secs:>9.2f}{secs / n * 1000:>10.1f}{ratio:>10}{d:>12}")
        r = results["segprep warm (cached GT)"]
        print(f"IoU classes {r['averageScoreClasses']:.6f}  iIoU classes "
              f"{r['averageScoreInstClasses']:.6f}  IoU categories "
              f"{r['averageScoreCategories']:.6f}  iIoU categories "
              f"{r['averageScoreInstCategories']:.6f}")
        if ref and any(d is not None and d > 1e-9 for _, _, d in rows):
            print("numbers differ from cityscapesScripts", file=sys.stderr)
            return 1
        return 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
