"""Benchmark the processes path of ``run_batch`` (``--parallel processes``) against the joblib/loky
pool it replaced, on ``cityscapes gen-gt``'s per-frame work (real Cityscapes train frames,
polygons rasterised, trainIds + color + instanceIds written).

Each round runs both, interleaved, each with a fresh pool (worker start-up included, as a command
pays it), into a fresh temp folder; best and median of ``--repeat`` rounds are printed. Outputs of
the two are compared byte for byte.

Usage: python scripts/bench_process_pool.py [--data ../shared/data] [-j 2] [--repeat 3]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from segprep.convert import cityscapes as cs  # noqa: E402
from segprep.datasets import cityscapes as cs_data  # noqa: E402
from segprep.io import batch  # noqa: E402


def loky_map(fn, items, n):
    """The processes path as it was before: joblib's loky backend, unordered generator."""
    from joblib import Parallel, delayed

    results = Parallel(n_jobs=n, batch_size="auto", return_as="generator_unordered")(
        delayed(batch._indexed_call)(fn, i, item) for i, item in enumerate(items))
    return [err for _i, _v, err in results]


def pool_map(fn, items, n):
    return [o.error for o in batch.run_batch(fn, items, jobs=n, prefer="processes", quiet=True)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("-j", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    root = Path(args.data) / "cityscapes"
    files = cs_data.polygon_files(root, "gtFine", ["train"])
    targets = ["trainIds", "color", "instanceIds"]
    times: dict[str, list[float]] = {"loky (before)": [], "ProcessPoolExecutor": []}
    cpu: dict[str, list[float]] = {k: [] for k in times}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeat):
            outs = {}
            for name, fn in (("loky (before)", loky_map), ("ProcessPoolExecutor", pool_map)):
                out = Path(tmp) / f"{r}-{name.split()[0]}"
                jobs = cs.make_jobs(root, files, targets, out, source="polygons", overwrite=True)
                c0 = resource.getrusage(resource.RUSAGE_CHILDREN)
                t0 = time.perf_counter()
                errors = [e for e in fn(cs.convert_frame, jobs, args.j) if e]
                times[name].append(time.perf_counter() - t0)
                assert not errors, errors[:3]
                outs[name] = out
                if name == "loky (before)":  # a fresh loky pool for the next round
                    from joblib.externals.loky import get_reusable_executor

                    get_reusable_executor().shutdown(wait=True)
                c1 = resource.getrusage(resource.RUSAGE_CHILDREN)  # workers reaped: their CPU
                cpu[name].append(c1.ru_utime + c1.ru_stime - c0.ru_utime - c0.ru_stime)
            a, b = outs.values()
            for f in sorted(a.rglob("*.png")):
                assert f.read_bytes() == (b / f.relative_to(a)).read_bytes(), f
    print(f"{len(files)} frames, -j {args.j}, targets {','.join(targets)}, polygons rasterised")
    for name, ts in times.items():
        print(f"{name:22s} wall best {min(ts):6.2f} s  median {statistics.median(ts):6.2f} s  "
              f"({len(files) / min(ts):5.1f} frames/s best); worker CPU best "
              f"{min(cpu[name]):6.2f} s  median {statistics.median(cpu[name]):6.2f} s")


if __name__ == "__main__":
    main()
