#!/usr/bin/env python
"""Benchmark: Cityscapes panoptic ground truth and evaluation, segprep vs cityscapesScripts 2.3.0.

In one run, on the same frames (every frame of ROOT's gtFine: 205 in ../shared/data), interleaved,
best of ``--repeat`` (3):

1. ground truth: cityscapesScripts ``createPanopticImgs.convert2panoptic`` (one process, as its
   ``main``) vs ``segprep cityscapes gen-gt --targets panoptic --overwrite -j JOBS`` run
   in-process (click's test runner: the CLI code without the interpreter start) and as a
   subprocess (everything included);
2. evaluation: cityscapesScripts ``evalPanopticSemanticLabeling.evaluatePanoptic`` (a
   multiprocessing pool of all cores, as its ``main``) vs ``evaluate_panoptic`` with ``-j JOBS``
   threads, and ``segprep evaluate cityscapes-panoptic`` as a subprocess. Ground truth: the
   panoptic ground truth of step 1; predictions: each frame's panoptic map shifted by a few pixels
   with a third of its segments relabelled, written by Pillow (what most tools write).

Checks that segprep's PNGs are pixel-identical and its JSONs byte-identical to cityscapesScripts',
and that every PQ/SQ/RQ equals its numbers within 1e-9; prints seconds, ms/frame and ratios.

With ``--copies N`` the evaluation runs on every frame N times (as N distinct images: links under
other names and ``image_id``), so that the fixed start of a CLI process weighs as it does on a full
split (the Cityscapes val split has 500 frames).

``--frames N`` takes the first N frames only (split, city and name order: 174 = the 100 aachen and
59 lindau frames and 15 of bonn); ``--eval-only`` skips timing the ground truth.

Usage: python scripts/bench_panoptic.py [ROOT] [-j JOBS] [--repeat N] [--copies N] [--frames N]
       [--eval-only]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SPLITS = ("train", "val", "test")


def link_root(root: Path, dest: Path, frames: int = 0) -> int:
    """A Cityscapes root of symbolic links to ROOT's gtFine frames (the first ``frames`` of
    them in split, city and name order; all when 0); returns the frame count."""
    keys: list[str] = []
    for split in SPLITS:
        for js in sorted((root / "gtFine" / split).glob("*/*_gtFine_polygons.json")):
            if frames and len(keys) >= frames:
                break
            keys.append(js.name[:-len("_polygons.json")])
            for f in sorted(js.parent.glob(keys[-1] + "_*")):
                t = dest / "gtFine" / split / f.parent.name / f.name
                t.parent.mkdir(parents=True, exist_ok=True)
                t.symlink_to(f.resolve())
    return len(keys)


def make_predictions(gt_json: Path, gt_folder: Path, out: Path) -> tuple[Path, Path]:
    from PIL import Image

    rng = np.random.default_rng(0)
    doc = json.loads(gt_json.read_text())
    cats = [c["id"] for c in doc["categories"]]
    folder = out / "pred"
    folder.mkdir(parents=True)
    anns = []
    for i, ann in enumerate(doc["annotations"]):
        rgb = np.asarray(Image.open(gt_folder / ann["file_name"]))
        rgb = np.roll(rgb, (3 + i % 3, -5 - i % 7), axis=(0, 1))
        present = set(np.unique(rgb[..., 0] + 256 * rgb[..., 1].astype(np.int64)).tolist())
        segs = [{"id": s["id"], "category_id": s["category_id"] if rng.random() > 1 / 3
                 else int(rng.choice(cats))} for s in ann["segments_info"] if s["id"] in present]
        name = ann["file_name"].replace("_gtFine_panoptic", "_pred")
        Image.fromarray(rgb).save(folder / name)
        anns.append({"image_id": ann["image_id"], "file_name": name, "segments_info": segs})
    pred_json = out / "pred.json"
    pred_json.write_text(json.dumps({"annotations": anns}))
    return pred_json, folder


def copies_of(gt_json: Path, gt_folder: Path, pred_json: Path, pred_folder: Path, out: Path,
           k: int) -> tuple[Path, Path, Path, Path]:
    """Ground truth and predictions with every frame ``k`` times: links ``c<i>_<name>`` and
    image ids ``<id>_c<i>``."""
    gt, pred = json.loads(gt_json.read_text()), json.loads(pred_json.read_text())
    new_gt = {"images": [], "annotations": [], "categories": gt["categories"]}
    new_pred: dict[str, list] = {"annotations": []}
    for d in ("gt", "pred"):
        (out / d).mkdir(parents=True)
    for c in range(k):
        new_gt["images"] += [dict(im, id=f"{im['id']}_c{c}", file_name=f"c{c}_{im['file_name']}")
                             for im in gt["images"]]
        for doc, folder, new, d in ((gt, gt_folder, new_gt, "gt"),
                                    (pred, pred_folder, new_pred, "pred")):
            for a in doc["annotations"]:
                name = f"c{c}_{a['file_name']}"
                (out / d / name).symlink_to((folder / a["file_name"]).resolve())
                new["annotations"].append(dict(a, image_id=f"{a['image_id']}_c{c}",
                                               file_name=name))
    (out / "gt.json").write_text(json.dumps(new_gt))
    (out / "pred.json").write_text(json.dumps(new_pred))
    return out / "gt.json", out / "gt", out / "pred.json", out / "pred"


def same_gt(ours: Path, ref: Path) -> bool:
    from segprep.io import read_png

    for split in SPLITS:
        base = f"cityscapes_panoptic_{split}"
        if (ours / f"{base}.json").read_bytes() != (ref / f"{base}.json").read_bytes():
            return False
        for f in sorted((ref / base).iterdir()):
            if not np.array_equal(read_png(f), read_png(ours / base / f.name)):
                return False
    return True


def max_diff(a: dict, b: dict) -> float:
    worst = 0.0
    for name in ("All", "Things", "Stuff"):
        if a[name]["n"] != b[name]["n"]:
            return float("inf")
        worst = max(worst, *(abs(a[name][k] - b[name][k]) for k in ("pq", "sq", "rq")))
    for cid, v in b["per_class"].items():
        worst = max(worst, *(abs(a["per_class"][cid][k] - v[k]) for k in ("pq", "sq", "rq")))
    return worst


def time_gen_gt(root: Path, tmp: Path, n: int, jobs: int, repeat: int) -> bool:
    """Ground truth, timed: convert2panoptic vs segprep gen-gt in-process and as a CLI process;
    True when segprep's files equal the reference's."""
    from cityscapesscripts.preparation.createPanopticImgs import convert2panoptic
    from click.testing import CliRunner

    from segprep.cli.main import cli

    ref_out, our_out, cli_out = tmp / "ref", tmp / "ours", tmp / "cli"
    ref_out.mkdir()
    gen_cmd = ["cityscapes", "gen-gt", str(root), "--targets", "panoptic", "--overwrite",
               "-j", str(jobs), "-q"]
    t_gen: dict[str, list[float]] = {}
    for _ in range(repeat):
        t0 = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):
            convert2panoptic(str(root / "gtFine"), str(ref_out), False, list(SPLITS))
        t_gen.setdefault("cityscapesScripts convert2panoptic", []).append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        res = CliRunner().invoke(cli, gen_cmd + ["-o", str(our_out)], catch_exceptions=False)
        t_gen.setdefault("segprep gen-gt (in-process)", []).append(time.perf_counter() - t0)
        if res.exit_code != 0:
            raise SystemExit(res.output)
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "segprep", *gen_cmd, "-o", str(cli_out)],
                              capture_output=True, text=True)
        t_gen.setdefault("segprep gen-gt (CLI process)", []).append(time.perf_counter() - t0)
        if proc.returncode != 0:
            raise SystemExit(proc.stderr)
    identical = same_gt(our_out / "gtFine", ref_out) and same_gt(cli_out / "gtFine", ref_out)
    print_table(t_gen, n, header=True)
    print(f"ground truth identical (PNG pixels, JSON bytes): {identical}", flush=True)
    return identical


def eval_inputs(tmp: Path, copies: int) -> tuple[Path, Path, Path, Path]:
    """One ground-truth JSON and folder of every split's frames (from ``tmp/ours``, segprep's
    ground truth), their predictions, and ``copies`` of each frame when asked."""
    our_out = tmp / "ours"
    docs = [json.loads((our_out / "gtFine" / f"cityscapes_panoptic_{s}.json").read_text())
            for s in SPLITS]
    all_gt = tmp / "gt_all"
    all_gt.mkdir()
    for s in SPLITS:
        for f in (our_out / "gtFine" / f"cityscapes_panoptic_{s}").iterdir():
            (all_gt / f.name).symlink_to(f)
    gt_json = tmp / "gt_all.json"
    gt_json.write_text(json.dumps({"images": [i for d in docs for i in d["images"]],
                                   "annotations": [a for d in docs for a in d["annotations"]],
                                   "categories": docs[0]["categories"]}))
    pred_json, pred_folder = make_predictions(gt_json, all_gt, tmp)
    if copies > 1:
        return copies_of(gt_json, all_gt, pred_json, pred_folder, tmp / "copies", copies)
    return gt_json, all_gt, pred_json, pred_folder


def time_eval(tmp: Path, n_eval: int, jobs: int, repeat: int, copies: int) -> bool:
    """Evaluation, timed: evaluatePanoptic vs segprep in-process and as a CLI process; True when
    every PQ/SQ/RQ equals the reference's within 1e-9."""
    from cityscapesscripts.evaluation.evalPanopticSemanticLabeling import evaluatePanoptic

    from segprep.evaluation.panoptic import evaluate_panoptic

    gt_json, gt_folder, pred_json, pred_folder = eval_inputs(tmp, copies)
    if copies > 1:
        print(f"evaluation: {n_eval} frames ({copies} copies of each)", flush=True)
    evaluate_panoptic(gt_json, gt_folder, pred_json, pred_folder, jobs=jobs, quiet=True)
    cmd = [sys.executable, "-m", "segprep", "evaluate", "cityscapes-panoptic", "--gt-json",
           str(gt_json), "--gt-folder", str(gt_folder), "--pred-json", str(pred_json),
           "--pred-folder", str(pred_folder), "-j", str(jobs), "-q", "--json",
           str(tmp / "cli.json")]
    t_ev: dict[str, list[float]] = {}
    diffs = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):
            ref = evaluatePanoptic(str(gt_json), str(gt_folder), str(pred_json),
                                   str(pred_folder), str(tmp / "ref_result.json"))
        t_ev.setdefault("cityscapesScripts evaluatePanoptic", []).append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        rep = evaluate_panoptic(gt_json, gt_folder, pred_json, pred_folder, jobs=jobs,
                                quiet=True)
        t_ev.setdefault("segprep evaluate (in-process)", []).append(time.perf_counter() - t0)
        if rep.errors:
            raise SystemExit("\n".join(rep.errors[:5]))
        diffs.append(max_diff(rep.results or {}, ref))
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        t_ev.setdefault("segprep evaluate (CLI process)", []).append(time.perf_counter() - t0)
        if proc.returncode != 0:
            raise SystemExit(proc.stderr)
        diffs.append(max_diff(json.loads((tmp / "cli.json").read_text(), object_hook=_int_keys),
                              ref))
    print_table(t_ev, n_eval)
    worst = max(diffs)
    r = rep.results or {}
    print(f"evaluation max |diff| vs cityscapesScripts: {worst:.1e}; PQ {100 * r['All']['pq']:.4f}"
          f" SQ {100 * r['All']['sq']:.4f} RQ {100 * r['All']['rq']:.4f}; load "
          f"{'/'.join(f'{x:.1f}' for x in os.getloadavg())}")
    return worst <= 1e-9


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root", nargs="?", default=str(HERE.parent.parent / "shared/data/cityscapes"))
    ap.add_argument("-j", "--jobs", type=int, default=0, help="segprep threads (0 = all cores)")
    ap.add_argument("--repeat", type=int, default=3, help="runs of each, best kept")
    ap.add_argument("--copies", type=int, default=1,
                    help="evaluate every frame this many times (as distinct images)")
    ap.add_argument("--frames", type=int, default=0,
                    help="only the first N frames (sorted by split, city, name; 0 = all)")
    ap.add_argument("--eval-only", action="store_true",
                    help="time the evaluation only (the ground truth is made once by segprep)")
    args = ap.parse_args()

    from click.testing import CliRunner

    from segprep.cli.main import cli
    from segprep.io import default_jobs

    jobs = args.jobs or default_jobs()
    tmp = Path(tempfile.mkdtemp(prefix="bench_panoptic_"))
    try:
        root = tmp / "root"
        n = link_root(Path(args.root), root, args.frames)
        print(f"{n} frames; segprep -j {jobs} (threads); {os.cpu_count()} CPUs; best of "
              f"{args.repeat}, interleaved; load {'/'.join(f'{x:.1f}' for x in os.getloadavg())}",
              flush=True)
        # one untimed segprep run first: numba kernels loaded from its disk cache (or compiled)
        CliRunner().invoke(cli, ["cityscapes", "gen-gt", str(root), "--targets", "panoptic",
                                 "-j", str(jobs), "-q", "-o", str(tmp / "ours")],
                           catch_exceptions=False)
        identical = args.eval_only or time_gen_gt(root, tmp, n, jobs, args.repeat)
        close = time_eval(tmp, n * max(1, args.copies), jobs, args.repeat, args.copies)
        return 0 if identical and close else 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def print_table(times: dict[str, list[float]], n: int, header: bool = False) -> None:
    """Best time of each run, ms/frame and speed-up over the first (the reference)."""
    if header:
        print(f"{'run':<40}{'seconds':>9}{'ms/frame':>10}{'speed-up':>10}")
    base = None
    for label, ts in times.items():
        best = min(ts)
        base = base or best
        print(f"{label:<40}{best:>9.2f}{best / n * 1000:>10.1f}{base / best:>9.1f}x", flush=True)


def _int_keys(d: dict) -> dict:
    """JSON object hook: per_class keys back to ints, as the reference's dict has them."""
    return {int(k) if k.isdigit() else k: v for k, v in d.items()}


if __name__ == "__main__":
    sys.exit(main())
