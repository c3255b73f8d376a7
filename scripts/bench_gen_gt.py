#!/usr/bin/env python
"""Benchmark: cityscapesScripts json2labelImg vs ``segprep cityscapes gen-gt`` on the same frames.

Runs, in one process run and on the same JSON files:

1. cityscapesScripts ``json2labelImg(json, png, "trainIds")`` over every frame, one process, as its
   ``createTrainIdLabelImgs`` does;
2. ``segprep cityscapes gen-gt --targets trainIds`` with ``--source auto`` (official PNGs),
   ``--source polygons --raster official`` and ``--source polygons --raster pillow``, with
   ``-j JOBS`` (default: all cores);

checks the outputs (auto == LUT of the official labelIds; pillow == cityscapesScripts), and prints
frames/s of each and the speed-up ratio.

``--copies N`` runs segprep on N symlinked copies of every city folder (N x the frames), so that
the fixed cost of a CLI run (interpreter start-up and imports, about 0.4 s here) weighs less and
the per-frame rate of a long run shows; cityscapesScripts is timed on the frames once (its rate per
frame does not depend on the count) and the ratio compares ms per frame.

Usage: python scripts/bench_gen_gt.py [ROOT] [-j JOBS] [--repeat N] [--copies N]
ROOT defaults to ../shared/data/cityscapes.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def link_city_copies(root: Path, dest: Path, copies: int) -> Path:
    """``dest``: a Cityscapes-layout root whose ``gtFine/<split>/<city>_<k>`` folders are symlinks
    to ``root``'s city folders, ``copies`` of each (a bigger batch of the same real frames)."""
    for city in sorted(root.glob("gtFine/*/*")):
        for k in range(copies):
            link = dest / "gtFine" / city.parent.name / f"{city.name}_{k}"
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(city.resolve(), target_is_directory=True)
    return dest


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root", nargs="?", default=str(HERE.parent.parent / "shared/data/cityscapes"))
    ap.add_argument("-j", "--jobs", type=int, default=0, help="segprep workers (0 = all cores)")
    ap.add_argument("--repeat", type=int, default=3,
                    help="repeat each timing, tools interleaved, keep the best (default 3)")
    ap.add_argument("--copies", type=int, default=1,
                    help="segprep converts N symlinked copies of every city folder")
    ap.add_argument("--only", choices=["auto", "polygons"], default=None,
                    help="time only this --source (default: auto and both polygon rasterisers)")
    args = ap.parse_args()

    from cityscapesscripts.preparation.json2labelImg import json2labelImg

    from segprep import class_maps
    from segprep.io import default_jobs, read_png

    root = Path(args.root)
    jsons = sorted(root.glob("gtFine/*/*/*_gtFine_polygons.json"))
    if not jsons:
        print(f"no *_gtFine_polygons.json under {root}/gtFine", file=sys.stderr)
        return 2
    jobs = args.jobs or default_jobs()
    tmp = Path(tempfile.mkdtemp(prefix="bench_gen_gt_"))
    try:
        ref_dir = tmp / "cityscapesscripts"
        ref_dir.mkdir()
        n = len(jsons)

        def run_reference() -> float:
            """1. cityscapesScripts, one process; returns seconds."""
            t0 = time.perf_counter()
            for j in jsons:
                json2labelImg(str(j), str(ref_dir / j.name.replace("_polygons.json",
                                                                   "_labelTrainIds.png")),
                              "trainIds")
            return time.perf_counter() - t0

        seg_root = root
        if args.copies > 1:  # N symlinked copies of every city folder
            seg_root = link_city_copies(root, tmp / "root", args.copies)
        seg_jsons = sorted(seg_root.glob("gtFine/*/*/*_gtFine_polygons.json"))
        m = len(seg_jsons)

        # warm the numba JIT cache of the official rasteriser outside the timing
        subprocess.run([sys.executable, "-c", "from segprep.convert import raster; "
                        "raster.rasterize([[(0,0),(5,0),(5,5)]],[1],8,8,method='official')"],
                       check=False)
        cm = class_maps.load("cityscapes")
        configs = [("auto (official PNGs)", ["--source", "auto"]),
                   ("polygons, raster official", ["--source", "polygons", "--raster", "official"]),
                   ("polygons, raster pillow", ["--source", "polygons", "--raster", "pillow"])]
        if args.only:
            configs = [c for c in configs if c[1][1] == args.only]
        # repeats interleave the tools, so that a slower spell of the machine hits all of them
        best_ref = float("inf")
        best = {name: float("inf") for name, _ in configs}
        outs = {name: tmp / name.split()[0] / extra[-1] for name, extra in configs}
        for _ in range(args.repeat):
            best_ref = min(best_ref, run_reference())
            for name, extra in configs:
                out = outs[name]
                shutil.rmtree(out, ignore_errors=True)
                cmd = [sys.executable, "-m", "segprep", "cityscapes", "gen-gt", str(seg_root),
                       "-o", str(out), "--targets", "trainIds", "-j", str(jobs), "-q", *extra]
                t0 = time.perf_counter()
                res = subprocess.run(cmd, capture_output=True, text=True)
                elapsed = time.perf_counter() - t0
                if res.returncode != 0:
                    print(res.stderr, file=sys.stderr)
                    return 1
                best[name] = min(best[name], elapsed)
        print(f"frames: {n} ({root}), best of {args.repeat}")
        print(f"cityscapesScripts json2labelImg trainIds (1 process): {best_ref:7.2f} s "
              f"{n / best_ref:7.1f} frames/s  {1000 * best_ref / n:6.1f} ms/frame")
        for name, out in outs.items():
            # check the outputs
            exact = 0
            for j in jsons:
                rel = j.parent.relative_to(root)
                if args.copies > 1:
                    rel = rel.parent / f"{rel.name}_{args.copies - 1}"
                got = read_png(out / rel /
                               j.name.replace("_polygons.json", "_labelTrainIds.png"))
                if "auto" in name or "official" in name:
                    off = read_png(str(j).replace("_polygons.json", "_labelIds.png"))
                    exact += bool(np.array_equal(got, cm.id_to_train_id[off]))
                else:
                    ref = read_png(ref_dir / j.name.replace("_polygons.json", "_labelTrainIds.png"))
                    exact += bool(np.array_equal(got, ref))
            against = "official labelIds" if ("auto" in name or "official" in name) \
                else "cityscapesScripts"
            t = best[name]
            print(f"segprep gen-gt {name:27s} (-j {jobs}, {m} frames): {t:7.2f} s "
                  f"{m / t:7.1f} frames/s {1000 * t / m:6.1f} ms/frame  "
                  f"speed-up x{(best_ref / n) / (t / m):5.2f}  "
                  f"identical to {against}: {exact}/{n}")
        print("(segprep timings are whole CLI runs: process start-up and worker start included)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
