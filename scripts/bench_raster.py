"""Time ``rasterize_official`` against ``rasterize_pillow`` on the same real Cityscapes frames.

Usage::

    .venv/bin/python scripts/bench_raster.py [--root ../shared/data/cityscapes] [--frames N] [--repeat R]

The polygons of each frame (labelIds values, cityscapesScripts' object rules) are parsed once,
before timing; only the rasteriser call is timed (canvas allocation and conversion to the int32
array included, JSON parsing and PNG I/O excluded). Both rasterisers are warmed up on one frame
first, so the numba kernel's one-time compile / on-disk cache load is NOT in the per-frame
numbers (it is printed separately). Each repeat runs one full pass over all frames per method
(the order of the methods alternates between repeats); the fastest pass of each method counts.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import PIL

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
    best = {name: np.inf for name in methods}
    for rep in range(args.repeat):
        for name in (list(methods) if rep % 2 == 0 else list(methods)[::-1]):
            fn = methods[name]
            t = time.perf_counter()
            for fr in frames:
                fn(*fr)
            best[name] = min(best[name], time.perf_counter() - t)
    assert first.shape == (frames[0][2], frames[0][3])

    n_polys = sum(len(fr[0]) for fr in frames)
    print(f"{len(frames)} frames ({n_polys} polygons), fastest of {args.repeat} passes, "
          f"warm-up excluded; {platform.machine()}, Python {platform.python_version()}, "
          f"numpy {np.__version__}, Pillow {PIL.__version__}")
    print(f"  first official call (numba import + compile or cache load): "
          f"{warm_official * 1e3:.0f} ms")
    ms = {name: b / len(frames) * 1e3 for name, b in best.items()}
    for name in methods:
        print(f"  {name:8s} {ms[name]:7.2f} ms/frame")
    print(f"  ratio official/pillow: {ms['official'] / ms['pillow']:.2f} "
          f"(official is {ms['pillow'] / ms['official']:.2f}x pillow's speed)")


if __name__ == "__main__":
    main()
