"""Evaluation of trainId ground truth: BDD100K (the bdd100k toolkit's ``eval.seg``, bdd100k/bdd100k
``bdd100k/eval/seg.py``) and any ``.odgt`` manifest (:func:`segprep.metrics.scores`).

BDD100K: ground-truth trainId masks (0..18, 255 ignore), predictions matched by file stem, a
prediction >= 19 is a miss, a missing prediction counts all its pixels as misses (see
:func:`segprep.metrics.bdd100k_scores`). odgt: the masks of a manifest (``fpath_segm``) against
predictions named after each image's stem; K classes, ``ignore_index``.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from segprep import class_maps, manifest
from segprep.class_maps import IGNORE_INDEX, ClassMap
from segprep.datasets import bdd100k as bdd_data
from segprep.datasets import generic
from segprep.errors import SegprepError
from segprep.evaluation.gt_cache import GtCache, GtCodes, build_codes, cache_for, cache_info
from segprep.evaluation.label_maps import prediction_histogram, read_label_map
from segprep.evaluation.report import EvalReport, FrameCounts
from segprep.io import find_files, run_batch
from segprep.metrics import bdd100k_scores, class_precision, class_recall, scores

PathLike = str | os.PathLike

MISSING = ("error", "miss")


@dataclass
class PlainJob:
    """Evaluate one frame of a trainId ground truth (BDD100K, odgt): a ``(K, K + 1)`` matrix,
    predictions outside ``[0, K)`` in the last column (misses)."""

    num_classes: int
    ignore_index: int
    cache: GtCache

    def gt_codes(self, gt_path: PathLike) -> GtCodes:
        return self.cache.get("plain", [gt_path], lambda: build_codes(read_label_map(gt_path)))

    def __call__(self, item: tuple[str, str | None]) -> FrameCounts:
        gt_path, pred_path = item
        k = self.num_classes
        gt = self.gt_codes(gt_path)
        bad = [int(v) for v in gt.values if v >= k and v != self.ignore_index]
        if bad:
            raise SegprepError(gt_path, f"ground-truth value(s) {', '.join(map(str, bad))} are "
                                        f"neither a class (0-{k - 1}) nor ignore "
                                        f"({self.ignore_index})")
        keep = gt.values < k
        if pred_path is None:  # a missing prediction: every pixel is a miss (bdd100k toolkit)
            counts = np.bincount(gt.codes.ravel(), minlength=gt.num_codes)
            cm = np.zeros((k, k + 1), np.int64)
            np.add.at(cm[:, k], gt.values[keep], counts[keep])
            return FrameCounts(cm, missing=True)
        pred = read_label_map(pred_path)
        hist = prediction_histogram(gt, pred, pred_path, gt_path)
        folded = np.zeros((gt.num_codes, k + 1), np.int64)
        folded[:, :k] = hist[:, :k]
        folded[:, k] = hist[:, k:].sum(1)
        cm = np.zeros((k, k + 1), np.int64)
        np.add.at(cm, gt.values[keep], folded[keep])
        return FrameCounts(cm)



def _run_plain(protocol: str, pairs: list[tuple[str, str | None]], match: generic.Match,
               num_classes: int, ignore_index: int, class_names: list[str], missing: str,
               jobs: int | None, cache: PathLike | bool | None, quiet: bool, t0: float,
               pred_dir: PathLike, scheduler: str | None = None) -> EvalReport:
    """Score ``(ground truth, prediction or None)`` pairs made by the stem rule."""
    if match.multiple:
        raise SegprepError(pred_dir, generic.Match([], multiple=match.multiple).problems(
            "prediction", len(pairs), "with this stem, in any sub-folder"))
    gcache = cache_for(cache)
    job = PlainJob(num_classes, ignore_index, gcache)
    report = EvalReport(protocol, class_names=class_names, eval_ids=list(range(num_classes)))
    n_missing = sum(1 for _, p in pairs if p is None)
    if n_missing and missing == "error":
        names = [Path(g).name for g, p in pairs if p is None]
        raise SegprepError(pred_dir, f"no prediction for {n_missing} of {len(pairs)} frames: "
                                     f"{', '.join(names[:5])}{', …' if len(names) > 5 else ''}")
    if n_missing:
        report.warnings.append(f"{n_missing} of {len(pairs)} frames have no prediction; their "
                               "pixels count as misses (bdd100k toolkit behaviour)")
    if match.extra:
        report.warnings.append(f"{len(match.extra)} prediction file(s) match no ground truth, "
                               f"e.g. {match.extra[0]}")
    cm = np.zeros((num_classes, num_classes + 1), np.int64)
    for out in run_batch(job, pairs, jobs=jobs, desc="evaluate", quiet=quiet, unit="frame",
                         ordered=True, scheduler=scheduler):
        if out.ok:
            cm += out.value.confusion
        else:
            report.errors.append(out.error or "")
    if not report.errors:
        report.confusion = cm
        if protocol == "bdd100k":
            report.result = bdd100k_scores(cm, class_names)
        else:
            s = scores(cm)
            report.result = s.to_dict(class_names)
            report.result["classAccuracy"] = {n: _finite(v) for n, v in
                                              zip(class_names, class_recall(cm))}
            report.result["classPrecision"] = {n: _finite(v) for n, v in
                                               zip(class_names, class_precision(cm))}
    report.frames = len(pairs)
    report.cache = cache_info(gcache)
    report.seconds = time.perf_counter() - t0
    return report


def _finite(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


def evaluate_bdd100k(pred_dir: PathLike, gt_dir: PathLike, *, jobs: int | None = None,
                     cache: PathLike | bool | None = True, quiet: bool = False,
                     missing: str = "miss", class_map: str | ClassMap = "bdd100k",
                     scheduler: str | None = None) -> EvalReport:
    """Evaluate BDD100K semantic segmentation as the bdd100k toolkit's ``eval.seg``.

    Args:
        pred_dir: folder of ``<stem>.png`` trainId predictions (searched recursively).
        gt_dir: folder of ground-truth trainId masks (``<stem>.png`` or ``<stem>_train_id.png``).
        missing: ``miss`` (a missing prediction counts all its pixels as misses, as the toolkit)
            or ``error``.
        class_map: the label table whose train classes are the K = 19 evaluated classes
            (``bdd100k``: the toolkit's ``label.py``).
        scheduler: a Dask scheduler (``tcp://HOST:PORT`` or ``local:N``): its workers score the
            frames and send back only their confusion matrices, summed here
            (:mod:`segprep.io.cluster`).

    Returns:
        an :class:`EvalReport` whose ``result`` has the toolkit's keys ``IoU``, ``Acc`` (per
        class, percent; Acc is per-class precision, as the toolkit computes it), ``mIoU``,
        ``mAcc``, ``fIoU``, ``pAcc``.

    Raises:
        SegprepError: missing folders, no ground truth, or (``missing="error"``) frames without
            prediction.
    """
    t0 = time.perf_counter()
    names = _bdd_names(class_map)
    gt_files = find_files(gt_dir, ".png")
    if not gt_files:
        raise SegprepError(gt_dir, "no ground-truth .png files")
    match = generic.match_by_stem([bdd_data.gt_keys(g) for g in gt_files],
                                  find_files(pred_dir, ".png"))
    pairs = [(str(g), str(p) if p is not None else None) for g, p in zip(gt_files, match.files)]
    return _run_plain("bdd100k", pairs, match, len(names), IGNORE_INDEX, names, missing, jobs,
                      cache, quiet, t0, pred_dir, scheduler)


def _bdd_names(class_map: str | ClassMap) -> list[str]:
    cmap = class_maps.load(class_map) if isinstance(class_map, str) else class_map
    return list(cmap.train_names)


def evaluate_odgt(odgt: PathLike, pred_dir: PathLike, num_classes: int, *,
                  root: PathLike | None = None, ignore_index: int = IGNORE_INDEX,
                  class_map: str | ClassMap | None = None, jobs: int | None = None,
                  cache: PathLike | bool | None = True, quiet: bool = False,
                  missing: str = "error", scheduler: str | None = None) -> EvalReport:
    """Evaluate predictions for the masks of an ``.odgt`` manifest.

    Each record's prediction is the file ``<image stem>.png`` under ``pred_dir`` (recursively;
    ``<mask stem>.png`` is accepted too). Predictions outside ``[0, K)`` are misses; ground truth
    ``ignore_index`` is not counted.

    Args:
        odgt: the manifest; relative paths resolve against ``root`` (default: its folder).
        num_classes: K.
        class_map: optional label table for class names (its trainIds must be ``0..K-1``).
        missing: ``error`` (default) or ``miss``.
        scheduler: a Dask scheduler, as :func:`evaluate_bdd100k`.

    Returns:
        an :class:`EvalReport` whose ``result`` is :meth:`segprep.metrics.Scores.to_dict` (mIoU
        over classes with a defined IoU, pixel accuracy, mean accuracy, fwIoU, per-class IoU) plus
        per-class accuracy (recall) and precision.

    Raises:
        SegprepError: unreadable manifest, bad K, missing predictions (``missing="error"``).
    """
    t0 = time.perf_counter()
    if not 1 <= num_classes <= 255:
        raise SegprepError("--num-classes", f"must be in 1..255, not {num_classes}")
    records = manifest.read_odgt(odgt)
    base = Path(root) if root is not None else manifest.default_root(odgt)
    if class_map is not None:
        cmap = class_maps.load(class_map) if isinstance(class_map, str) else class_map
        names = list(cmap.train_names)
        if len(names) != num_classes:
            raise SegprepError("--class-map", f"{cmap.name} has {len(names)} train classes, "
                                              f"--num-classes is {num_classes}")
    else:
        names = [str(i) for i in range(num_classes)]
    match = generic.match_by_stem([(generic.stem(r.fpath_img), generic.stem(r.fpath_segm))
                                   for r in records], find_files(pred_dir, ".png"))
    pairs = [(str(manifest.resolve(r.fpath_segm, base)), str(p) if p is not None else None)
             for r, p in zip(records, match.files)]
    return _run_plain("odgt", pairs, match, num_classes, ignore_index, names, missing, jobs,
                      cache, quiet, t0, pred_dir, scheduler)


