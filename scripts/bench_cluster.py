#!/usr/bin/env python
"""Benchmark: the same gen-gt batch locally (``-j 2`` threads) and on a Dask cluster (``local:2``).

On N symlinked copies of every city folder (``--copies``, default 5: 1025 frames of the shared
205), five timings, interleaved, best of ``--repeat``:

1. ``segprep cityscapes gen-gt ROOT -o OUT -j 2`` (a whole CLI run);
2. ``segprep cityscapes gen-gt ROOT -o OUT --scheduler tcp://…`` (a whole CLI run) on a cluster
   that is already up, started as the README's recipe does: ``dask scheduler`` and
   ``dask worker tcp://… --nworkers 2 --nthreads 1``, separate processes;
3. ``… --scheduler local:2`` (a whole CLI run: starting the 2-process LocalCluster is included,
   as a user of ``local:N`` pays it);
4. the batch alone in this process, :func:`segprep.io.run_batch` with ``jobs=2`` (threads);
5. the batch alone on the running cluster of 2.,

and, for 5., the overhead per task: ``(2 x wall - time spent inside the tasks) / tasks`` (the
scheduling, transfers and the idle tail of the batch, per task) and its share of the wall time.
Outputs of every run are checked byte-identical to the first local run.

Each timing also gives the CPU seconds it cost (user + system, of this process and every process
below it: the CLI and its cluster, or the running cluster's scheduler, nannies and workers), per
frame: on a shared machine whose load moves the wall times (``os.getloadavg`` is printed with
them), the CPU cost per frame is the steadier comparison of the two paths.

Usage: python scripts/bench_cluster.py [ROOT] [--copies N] [--repeat N] [--workers N]
       [--source auto|polygons]
ROOT defaults to ../shared/data/cityscapes.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root", nargs="?", default=str(HERE.parent.parent / "shared/data/cityscapes"))
    ap.add_argument("--copies", type=int, default=5, help="symlinked copies of every city folder")
    ap.add_argument("--repeat", type=int, default=3, help="interleaved repeats, best kept")
    ap.add_argument("--workers", type=int, default=2, help="-j N and local:N (default 2)")
    ap.add_argument("--source", choices=["auto", "polygons"], default="auto",
                    help="gen-gt --source (auto: from the official PNGs; polygons: rasterise)")
    args = ap.parse_args()

    import distributed

    from segprep.convert import cityscapes as cs
    from segprep.datasets import cityscapes as cs_data
    from segprep.io import cluster, run_batch

    root = Path(args.root)
    cities = sorted(root.glob("gtFine/*/*"))
    if not cities:
        print(f"no gtFine/<split>/<city> under {root}", file=sys.stderr)
        return 2
    w = args.workers
    tmp = Path(tempfile.mkdtemp(prefix="bench_cluster_"))
    procs: list[subprocess.Popen] = []
    try:
        seg_root = tmp / "root"
        for city in cities:
            for k in range(args.copies):
                link = seg_root / "gtFine" / city.parent.name / f"{city.name}_{k}"
                link.parent.mkdir(parents=True, exist_ok=True)
                link.symlink_to(city.resolve(), target_is_directory=True)
        files = cs_data.polygon_files(seg_root)
        n = len(files)
        # warm the numba cache of the rasteriser outside the timings
        subprocess.run([sys.executable, "-c", "from segprep.convert import raster; "
                        "raster.rasterize([[(0,0),(5,0),(5,5)]],[1],8,8,method='official')"],
                       check=False)
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        address = f"tcp://127.0.0.1:{port}"
        dask_cli = str(Path(sys.executable).with_name("dask"))
        quiet_out = dict(stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(subprocess.Popen([dask_cli, "scheduler", "--host", "127.0.0.1", "--port",
                                       str(port), "--no-dashboard"], **quiet_out))
        procs.append(subprocess.Popen([dask_cli, "worker", address, "--nworkers", str(w),
                                       "--nthreads", "1", "--no-dashboard"], **quiet_out))
        with distributed.Client(address, timeout=60) as probe:
            probe.wait_for_workers(w, timeout=120)
        cli = [sys.executable, "-m", "segprep", "cityscapes", "gen-gt", str(seg_root),
               "--targets", "trainIds", "--source", args.source, "-q"]

        def cli_run(out: Path, extra: list[str]) -> float:
            t0 = time.perf_counter()
            res = subprocess.run([*cli, "-o", str(out), *extra], capture_output=True, text=True)
            if res.returncode != 0:
                raise SystemExit(res.stderr)
            return time.perf_counter() - t0

        def batch_run(out: Path, **kw) -> float:
            jobs = cs.make_jobs(seg_root, files, ["trainIds"], out, source=args.source)
            t0 = time.perf_counter()
            bad = [o.error for o in run_batch(cs.convert_frame, jobs, quiet=True, **kw)
                   if not o.ok]
            if bad:
                raise SystemExit("\n".join(bad[:5]))
            return time.perf_counter() - t0

        configs = {
            f"CLI -j {w}": lambda out: cli_run(out, ["-j", str(w)]),
            f"CLI --scheduler tcp:// ({w} up)": lambda out: cli_run(out, ["--scheduler", address]),
            f"CLI --scheduler local:{w}": lambda out: cli_run(out, ["--scheduler", f"local:{w}"]),
            f"batch jobs={w} (threads)": lambda out: batch_run(out, jobs=w),
            f"batch on the running {w} workers": lambda out: batch_run(out, scheduler=address),
        }
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
                    inside = session.task_seconds - secs0
                    overhead.append((t, tasks, (w * t - inside) / tasks))
                got = digest(out)
                if reference is None:
                    reference = got
                    assert len(reference) == n, (len(reference), n)
                elif got != reference:
                    print(f"{name}: outputs differ from the first run", file=sys.stderr)
                    return 1
        print(f"gen-gt --targets trainIds --source {args.source}: {n} frames "
              f"({len(cities)} cities x {args.copies} copies), {w} workers, best of {args.repeat}; "
              f"outputs byte-identical across every run")
        base_cli, base_batch = best[f"CLI -j {w}"], best[f"batch jobs={w} (threads)"]
        for name, t in best.items():
            base = base_cli if name.startswith("CLI") else base_batch
            print(f"{name:30s} {t:7.2f} s {n / t:7.1f} frames/s  {1000 * t / n:6.2f} ms/frame  "
                  f"vs local {100 * (t / base - 1):+6.1f} %  cpu {1000 * cpu[name] / n:5.2f} "
                  f"ms/frame   load {'; '.join(loads[name])}")
        t, tasks, per_task = min(overhead)
        print(f"overhead per task on the running cluster (best run): {1000 * per_task:.1f} ms x "
              f"{tasks} tasks = {100 * per_task * tasks / (w * t):.1f} % of {w} x wall "
              f"(chunks {cluster.chunk_sizes(n, w)[:3]}… down to {cluster.MIN_CHUNK})")
        print(f"cpu cores of this process: {len(os.sched_getaffinity(0))}")
    finally:
        cluster.close_all()
        for p in reversed(procs):
            p.terminate()
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
