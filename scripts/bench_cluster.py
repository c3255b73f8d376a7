#!/usr/bin/env python
"""Benchmark: the same batch locally (``-j 2`` threads) and on a Dask cluster, gen-gt and evaluate.

Two commands (``--command gen-gt|evaluate|both``, default both), each timed interleaved, best of
``--repeat``, in these configurations:

1. ``… -j 2`` (a whole CLI run);
2. ``… --scheduler tcp://…`` (a whole CLI run) on a cluster that is already up, started as
   docs/cluster.md's recipe does: ``dask scheduler`` and ``dask worker tcp://… --nworkers 2
   --nthreads 1``, separate processes;
3. ``… --scheduler local:2`` (a whole CLI run: starting the 2-process LocalCluster is included,
   as a user of ``local:N`` pays it);

and, for gen-gt only, the batch alone in this process (:func:`segprep.io.run_batch`, ``jobs=2``
threads and on the running cluster) with the overhead per task of the cluster
(``(2 x wall - time spent inside the tasks) / tasks``).

- gen-gt: ``segprep cityscapes gen-gt ROOT --targets trainIds`` on ``--copies`` symlinked copies
  of every city folder (default 5: 1025 frames of the shared 205); every run's outputs are checked
  byte-identical to the first local run.
- evaluate: ``segprep evaluate cityscapes --pred P --gt R`` (``--pred-ids auto``, the default) on
  the val frames of ROOT plus train/aachen taken as a held-out val city, ``--eval-copies`` times
  under distinct city names (default 3: 477 frames); predictions are each frame's labelIds shifted
  by a few pixels with two classes swapped in a box, written by Pillow. The ground-truth cache is
  warm (one untimed run first), as when many checkpoints are scored against one val set; every
  run's JSON must equal the first local run's (the ``segprep`` key, with the seconds, aside).

Each timing also gives the CPU seconds it cost (user + system, of this process and every process
below it: the CLI and its cluster, or the running cluster's scheduler, nannies and workers), per
frame: on a shared machine whose load moves the wall times (``os.getloadavg`` is printed with
them), the CPU cost per frame is the steadier comparison of the two paths.

Usage: python scripts/bench_cluster.py [ROOT] [--command gen-gt|evaluate|both] [--copies N]
       [--eval-copies N] [--repeat N] [--workers N] [--source auto|polygons]
ROOT defaults to ../shared/data/cityscapes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha1(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*.png"))}


def cpu_seconds() -> float:
    """User + system CPU seconds of this process, its live descendants and its reaped children."""
    import resource

    import psutil

    me = psutil.Process()
    total = 0.0
    for p in [me, *me.children(recursive=True)]:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.Error:
            pass
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return total + kids.ru_utime + kids.ru_stime


def load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def start_cluster(workers: int, procs: list[subprocess.Popen]) -> str:
    """``dask scheduler`` on an ephemeral loopback port and ``dask worker … --nworkers N
    --nthreads 1``, as separate processes (appended to ``procs``); returns the address once every
    worker is connected."""
    import distributed

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    address = f"tcp://127.0.0.1:{port}"
    dask_cli = str(Path(sys.executable).with_name("dask"))
    quiet_out: dict = dict(stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    procs.append(subprocess.Popen([dask_cli, "scheduler", "--host", "127.0.0.1", "--port",
                                   str(port), "--no-dashboard"], **quiet_out))
    procs.append(subprocess.Popen([dask_cli, "worker", address, "--nworkers", str(workers),
                                   "--nthreads", "1", "--no-dashboard"], **quiet_out))
    with distributed.Client(address, timeout=60) as probe:
        probe.wait_for_workers(workers, timeout=120)
    return address


def cli_run(args: list[str]) -> float:
    """Seconds of one ``python -m segprep ARGS`` process (exits on failure)."""
    t0 = time.perf_counter()
    res = subprocess.run([sys.executable, "-m", "segprep", *args], capture_output=True, text=True)
    if res.returncode != 0:
        raise SystemExit(res.stderr)
    return time.perf_counter() - t0


# ------------------------------------------------------------------------------------ gen-gt
def gen_gt_setup(root: Path, tmp: Path, args: argparse.Namespace, address: str
                 ) -> tuple[int, dict[str, Callable[[Path], float]]]:
    """The gen-gt configurations (each writes into the folder it is given) and the frame count."""
    from segprep.convert import cityscapes as cs
    from segprep.datasets import cityscapes as cs_data
    from segprep.io import run_batch

    w = args.workers
    from bench_gen_gt import link_city_copies  # scripts/ is on sys.path when run as a script

    seg_root = link_city_copies(root, tmp / "root", args.copies)
    files = cs_data.polygon_files(seg_root)
    # warm the numba cache of the rasteriser outside the timings
    subprocess.run([sys.executable, "-c", "from segprep.convert import raster; "
                    "raster.rasterize([[(0,0),(5,0),(5,5)]],[1],8,8,method='official')"],
                   check=False)
    cli = ["cityscapes", "gen-gt", str(seg_root), "--targets", "trainIds", "--source",
           args.source, "-q"]

    def batch_run(out: Path, **kw) -> float:
        jobs = cs.make_jobs(seg_root, files, ["trainIds"], out, source=args.source)
        t0 = time.perf_counter()
        bad = [o.error for o in run_batch(cs.convert_frame, jobs, quiet=True, **kw) if not o.ok]
        if bad:
            raise SystemExit("\n".join(bad[:5]))
        return time.perf_counter() - t0

    return len(files), {
        f"CLI -j {w}": lambda out: cli_run([*cli, "-o", str(out), "-j", str(w)]),
        f"CLI --scheduler tcp:// ({w} up)":
            lambda out: cli_run([*cli, "-o", str(out), "--scheduler", address]),
        f"CLI --scheduler local:{w}":
            lambda out: cli_run([*cli, "-o", str(out), "--scheduler", f"local:{w}"]),
        f"batch jobs={w} (threads)": lambda out: batch_run(out, jobs=w),
        f"batch on the running {w} workers": lambda out: batch_run(out, scheduler=address),
    }


# ---------------------------------------------------------------------------------- evaluate
def eval_frames(root: Path, tmp: Path, copies: int) -> tuple[Path, Path, int]:
    """A Cityscapes root whose val split holds ROOT's val cities and train/aachen, ``copies``
    times under distinct city names (symbolic links), and one shifted prediction per frame
    (written once, linked under each copy's name)."""
    from PIL import Image

    from segprep.io import read_png

    cities = sorted((root / "gtFine" / "val").glob("*")) + [root / "gtFine" / "train" / "aachen"]
    gt_root, pred_dir, made = tmp / "eval_root", tmp / "eval_pred", tmp / "eval_pred_once"
    made.mkdir(parents=True)
    n = 0
    for city in cities:
        for i, lab in enumerate(sorted(city.glob("*_gtFine_labelIds.png"))):
            frame = lab.name[:-len("_gtFine_labelIds.png")]
            p = np.roll(read_png(lab), (3 + i % 3, -5 - i % 7), axis=(0, 1))
            box = p[300:600, 700:1300]
            box[box == 26] = 27
            box[box == 7] = 8
            Image.fromarray(p).save(made / f"{frame}_leftImg8bit.png")
            for k in range(copies):
                name = f"{city.name}{k}"
                new = name + frame[len(city.name):]
                dst = gt_root / "gtFine" / "val" / name
                dst.mkdir(parents=True, exist_ok=True)
                for kind in ("labelIds", "instanceIds"):
                    (dst / f"{new}_gtFine_{kind}.png").symlink_to(
                        city.resolve() / f"{frame}_gtFine_{kind}.png")
                (pred_dir / name).mkdir(parents=True, exist_ok=True)
                (pred_dir / name / f"{new}_leftImg8bit.png").symlink_to(
                    made / f"{frame}_leftImg8bit.png")
                n += 1
    return gt_root, pred_dir, n


def eval_setup(root: Path, tmp: Path, args: argparse.Namespace, address: str
               ) -> tuple[int, dict[str, Callable[[Path], float]]]:
    """The evaluate configurations (each writes its JSON into the folder it is given) and the
    frame count; the ground-truth cache is filled by one untimed run."""
    w = args.workers
    gt_root, pred_dir, n = eval_frames(root, tmp, args.eval_copies)
    cache = tmp / "eval_cache"
    cli = ["evaluate", "cityscapes", "--pred", str(pred_dir), "--gt", str(gt_root), "--cache",
           str(cache), "-q"]
    cli_run([*cli, "-j", str(w)])

    def run(out: Path, extra: list[str]) -> float:
        out.mkdir(parents=True)
        return cli_run([*cli, "--json", str(out / "result.json"), *extra])

    return n, {
        f"CLI -j {w}": lambda out: run(out, ["-j", str(w)]),
        f"CLI --scheduler tcp:// ({w} up)": lambda out: run(out, ["--scheduler", address]),
        f"CLI --scheduler local:{w}": lambda out: run(out, ["--scheduler", f"local:{w}"]),
    }


def eval_digest(out: Path) -> dict:
    doc = json.loads((out / "result.json").read_text())
    doc.pop("segprep", None)  # seconds, cache counts
    return doc


# ------------------------------------------------------------------------------- the timings
def time_configs(title: str, n: int, configs: dict[str, Callable[[Path], float]], tmp: Path,
                 args: argparse.Namespace, address: str, check: Callable[[Path], object]) -> bool:
    """Run every configuration ``args.repeat`` times, interleaved; print the best of each, its
    ratio to the local run and its CPU cost. Returns False when outputs differ."""
    from segprep.io import cluster

    w = args.workers
    best = {name: float("inf") for name in configs}
    cpu = {name: float("inf") for name in configs}
    loads: dict[str, list[str]] = {name: [] for name in configs}
    overhead = []
    reference = None
    for _ in range(args.repeat):
        for name, fn in configs.items():
            out = tmp / "out"
            shutil.rmtree(out, ignore_errors=True)
            before = load()
            session = cluster._sessions.get(address)
            tasks0, secs0 = (session.tasks, session.task_seconds) if session else (0, 0.0)
            c0 = cpu_seconds()
            t = fn(out)
            cpu[name] = min(cpu[name], cpu_seconds() - c0)
            loads[name].append(f"{before} -> {load()}")
            best[name] = min(best[name], t)
            if name.startswith("batch on"):
                session = cluster._sessions[address]
                tasks = session.tasks - tasks0
                overhead.append((t, tasks, (w * t - (session.task_seconds - secs0)) / tasks))
            got = check(out)
            if reference is None:
                reference = got
            elif got != reference:
                print(f"{title}: {name}: outputs differ from the first run", file=sys.stderr)
                return False
    print(f"{title}: {n} frames, {w} workers, best of {args.repeat}; outputs identical across "
          "every run")
    base_cli = best[f"CLI -j {w}"]
    base_batch = best.get(f"batch jobs={w} (threads)", base_cli)
    for name, t in best.items():
        base = base_cli if name.startswith("CLI") else base_batch
        print(f"  {name:32s} {t:7.2f} s {1000 * t / n:6.2f} ms/frame  x{t / base:5.2f} of local "
              f"cpu {1000 * cpu[name] / n:5.2f} ms/frame   load {'; '.join(loads[name])}")
    if overhead:
        t, tasks, per_task = min(overhead)
        print(f"  overhead per task on the running cluster (best run): {1000 * per_task:.1f} ms x "
              f"{tasks} tasks = {100 * per_task * tasks / (w * t):.1f} % of {w} x wall "
              f"(chunks {cluster.chunk_sizes(n, w)[:3]}… down to {cluster.MIN_CHUNK})")
    return True


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root", nargs="?", default=str(HERE.parent.parent / "shared/data/cityscapes"))
    ap.add_argument("--command", choices=["gen-gt", "evaluate", "both"], default="both")
    ap.add_argument("--copies", type=int, default=5, help="gen-gt: symlinked copies of every city")
    ap.add_argument("--eval-copies", type=int, default=3,
                    help="evaluate: copies of the val frames (and train/aachen)")
    ap.add_argument("--repeat", type=int, default=3, help="interleaved repeats, best kept")
    ap.add_argument("--workers", type=int, default=2, help="-j N and local:N (default 2)")
    ap.add_argument("--source", choices=["auto", "polygons"], default="auto",
                    help="gen-gt --source (auto: from the official PNGs; polygons: rasterise)")
    args = ap.parse_args()

    from segprep.io import cluster

    root = Path(args.root)
    if not list(root.glob("gtFine/*/*")):
        print(f"no gtFine/<split>/<city> under {root}", file=sys.stderr)
        return 2
    tmp = Path(tempfile.mkdtemp(prefix="bench_cluster_"))
    procs: list[subprocess.Popen] = []
    ok = True
    try:
        address = start_cluster(args.workers, procs)
        print(f"cpu cores of this process: {len(os.sched_getaffinity(0))}; load {load()}")
        if args.command in ("gen-gt", "both"):
            n, configs = gen_gt_setup(root, tmp, args, address)
            ok &= time_configs(f"gen-gt --targets trainIds --source {args.source}", n, configs,
                               tmp, args, address, digest)
        if args.command in ("evaluate", "both"):
            n, configs = eval_setup(root, tmp, args, address)
            ok &= time_configs("evaluate cityscapes (--pred-ids auto, warm cache)", n, configs,
                               tmp, args, address, eval_digest)
    finally:
        cluster.close_all()
        for p in reversed(procs):
            p.terminate()
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
