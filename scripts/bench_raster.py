"""Time ``rasterize_official`` against ``rasterize_pillow`` on the same real Cityscapes frames.

Usage::

    .venv/bin/python scripts/bench_raster.py [--root ../shared/data/cityscapes] [--frames N] [--repeat R]

The polygons of each frame (labelIds values, cityscapesScripts' object rules) are parsed once,
before timing; only the rasterisation is timed (canvas allocation included, JSON parsing and PNG
I/O excluded). Both rasterisers are warmed up on one frame first, so the numba kernel's one-time
compile / cache load is NOT in the numbers (it is reported separately). Each frame is drawn
``--repeat`` times per method, interleaved, and the best of the repeats per frame is summed.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))

from segprep import class_maps  # noqa: E402
from segprep.convert.raster import rasterize_official, rasterize_pillow  # noqa: E402


def load_frame(path: Path) -> tuple[list, list[int], int, int]:
    """Polygons and labelIds of one ``*_gtFine_polygons.json``, in drawing order."""
    cmap = class_maps.load("cityscapes")
    ids = dict(zip(cmap.names, (int(i) for i in cmap.ids)))
    doc = json.loads(path.read_text(encoding="utf-8"))
    polys, vals = [], []
    for obj in doc["objects"]:
        if obj.get("deleted"):
            continue
        label = obj["label"]
        if label not in ids and label.endswith("group"):
            label = label[: -len("group")]
        if ids[label] < 0:
            continue
        polys.append(obj["polygon"])
        vals.append(ids[label])
    return polys, vals, int(doc["imgHeight"]), int(doc["imgWidth"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", type=Path, default=PROJECT.parent / "shared" / "data" / "cityscapes")
    ap.add_argument("--frames", type=int, default=0, help="use the first N frames (0 = all)")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    files = sorted(args.root.glob("gtFine/*/*/*_gtFine_polygons.json"))
    if args.frames:
        files = files[: args.frames]
    if not files:
        sys.exit(f"no *_gtFine_polygons.json under {args.root}/gtFine")
    frames = [load_frame(f) for f in files]

    t0 = time.perf_counter()
    first = rasterize_official(*frames[0])
    warm_official = time.perf_counter() - t0
    rasterize_pillow(*frames[0])

    methods = {"official": rasterize_official, "pillow": rasterize_pillow}
    best = {name: np.full(len(frames), np.inf) for name in methods}
    for _ in range(args.repeat):
        for i, fr in enumerate(frames):
            for name, fn in methods.items():
                t = time.perf_counter()
                fn(*fr)
                best[name][i] = min(best[name][i], time.perf_counter() - t)
    assert first.shape == (frames[0][2], frames[0][3])

    n_polys = sum(len(fr[0]) for fr in frames)
    print(f"{len(frames)} frames ({n_polys} polygons), best of {args.repeat} per frame, "
          f"warm-up excluded; {platform.processor() or platform.machine()}, "
          f"Python {platform.python_version()}")
    print(f"  first official call (numba compile or cache load): {warm_official * 1e3:.0f} ms")
    ms = {name: b.sum() / len(frames) * 1e3 for name, b in best.items()}
    for name in methods:
        print(f"  {name:8s} {ms[name]:7.2f} ms/frame")
    print(f"  ratio official/pillow: {ms['official'] / ms['pillow']:.2f} "
          f"(official is {ms['pillow'] / ms['official']:.2f}x pillow's speed)")


if __name__ == "__main__":
    main()
