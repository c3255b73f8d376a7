"""Benchmark ``segprep bdd100k convert`` on the real BDD100K 2018 color maps (1280×720).

Prints frames/s on ``-j`` workers (default 2; threads, or processes with ``--parallel``)
including PNG decode, color lookup, PNG encode and the atomic write, and checks every output
against the official ``*_train_id.png``. Three measurements:

* ``stages``: one process, per-frame time of each step (read+decode, lookup, encode, write);
* ``batch``: the library's batch path (``run_batch(convert_file)``), pool already warm;
* ``cli``: the ``segprep bdd100k convert`` command in a fresh process (interpreter, imports and
  worker start-up included).

With ``--palette id`` the frames are first painted with the id-level palette (outside the timing)
so that the shape resolution of shared colors is timed too.

Usage: python scripts/bench_bdd100k.py [--data ../shared/data] [-j 2] [--repeat 2] [--palette id]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from segprep import class_maps  # noqa: E402
from segprep.convert import bdd100k as bdd  # noqa: E402
from segprep.convert.colors import decode_colors, encode_colors  # noqa: E402
from segprep.io import encode_png, read_label, read_png, run_batch, write_png  # noqa: E402


def stages(files: list[Path], palette: str, tmp: Path) -> dict[str, float]:
    """Mean milliseconds per frame of each step, in this process."""
    t = {"read+decode": 0.0, "lookup": 0.0, "encode": 0.0, "write": 0.0}
    decode_colors(read_label(files[0])[0], "bdd100k", level=palette)  # JIT / LUT warm-up
    cpu0 = time.process_time()
    for f in files:
        t0 = time.perf_counter()
        img, pal = read_label(f)
        t1 = time.perf_counter()
        out = bdd.convert_array(img, palette, pal)
        t2 = time.perf_counter()
        data = encode_png(out)
        t3 = time.perf_counter()
        (tmp / "x.png").write_bytes(data)
        t4 = time.perf_counter()
        for k, v in zip(t, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
            t[k] += v
    t["cpu"] = time.process_time() - cpu0  # CPU seconds, insensitive to other processes' load
    return {k: 1000 * v / len(files) for k, v in t.items()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("-j", "--jobs", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=2, help="timed passes over the 400 frames")
    ap.add_argument("--palette", choices=bdd.PALETTES, default="train")
    ap.add_argument("--parallel", choices=["threads", "processes"], default="threads",
                    help="how the -j workers run (the CLI's --parallel)")
    args = ap.parse_args()
    root = Path(args.data) / "bdd100k" / "seg"
    colors = sorted((root / "color_labels").rglob("*_train_color.png"))
    official = {c: root / "labels" / c.parent.name / c.name.replace("_train_color", "_train_id")
                for c in colors}
    print(f"{len(colors)} frames 1280x720, {args.jobs} worker {args.parallel}, "
          f"palette {args.palette}, "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        src = root / "color_labels"
        if args.palette == "id":  # paint the official masks with the id-level palette
            cm = class_maps.load("bdd100k")
            src = tmp / "id_colors"
            for c, o in official.items():
                write_png(src / c.parent.name / c.name.replace("_train_color", "_color"),
                          encode_colors(cm.train_id_to_id[read_png(o)], cm, "id"))
        inputs = sorted(src.rglob("*.png"))
        st = stages(inputs[:100], args.palette, tmp)
        cpu = st.pop("cpu")
        wall = sum(st.values())
        print("stages (1 process, wall ms/frame): " + ", ".join(f"{k} {v:.1f}" for k, v in st.items())
              + f"; total {wall:.1f} → {1000 / wall:.0f} frames/s/core; CPU {cpu:.1f} ms/frame → "
                f"{1000 / cpu:.0f} frames/s/core on an idle core")

        jobs = bdd.make_jobs(src, tmp / "out", palette=args.palette, overwrite=True)
        list(run_batch(bdd.convert_file, jobs[: 4 * args.jobs], jobs=args.jobs, quiet=True,
                          prefer=args.parallel))
        rates = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            outcomes = list(run_batch(bdd.convert_file, jobs, jobs=args.jobs, quiet=True,
                                         prefer=args.parallel))
            dt = time.perf_counter() - t0
            assert all(o.ok for o in outcomes), [o.error for o in outcomes if not o.ok][:3]
            rates.append(len(jobs) / dt)
        print(f"batch: {len(jobs)} frames, best {max(rates):.0f} frames/s "
              f"(passes: {', '.join(f'{r:.0f}' for r in rates)})")
        if args.palette == "train":
            bad = [c for c in colors if not np.array_equal(
                read_png(tmp / "out" / c.parent.name / official[c].name), read_png(official[c]))]
            print(f"outputs equal to the official *_train_id.png: {len(colors) - len(bad)}"
                  f"/{len(colors)}")
        cmd = [sys.executable, "-m", "segprep", "bdd100k", "convert", str(src), str(tmp / "cli"),
               "--palette", args.palette, "-j", str(args.jobs), "-q", "--overwrite",
               "--parallel", args.parallel]
        t0 = time.perf_counter()
        res = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
        dt = time.perf_counter() - t0
        print(f"cli: {len(jobs)} frames in {dt:.2f} s → {len(jobs) / dt:.0f} frames/s "
              f"(fresh process; {res.stderr.strip().splitlines()[-1]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
