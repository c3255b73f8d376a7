"""Cityscapes pixel-level evaluation, exactly as cityscapesScripts 2.3.0
``evaluation/evalPixelLevelSemanticLabeling.py``: IoU and iIoU per class and category.

Ground truth ``<root>/gtFine/<split>/<city>/*_gtFine_labelIds.png`` and ``*_gtFine_instanceIds.png``;
each frame takes the one prediction named by :func:`segprep.datasets.cityscapes.match_predictions`.
Predictions hold labelIds (0..33) or trainIds (0..18, 255; mapped to labelIds, 255 → 0
``unlabeled``, before scoring). Scores, JSON keys and numbers as cityscapesScripts (see
:class:`segprep.metrics.CityscapesProtocol`).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import numpy as np

from segprep import class_maps
from segprep.class_maps import ClassMap
from segprep.datasets import cityscapes as cs_data
from segprep.errors import SegprepError
from segprep.evaluation.gt_cache import GtCache, GtCodes, build_codes, cache_for, cache_info
from segprep.evaluation.label_maps import (
    describe_values,
    large_values,
    prediction_histogram,
    read_label_map,
    value_ranges,
)
from segprep.evaluation.pred_ids import decide, valid_values
from segprep.evaluation.report import EvalReport, FrameCounts
from segprep.io import find_files, run_batch
from segprep.metrics import CityscapesProtocol, InstanceStats

PathLike = str | os.PathLike

PRED_IDS = ("auto", "labelIds", "trainIds")
"""What predictions hold; ``auto`` decides from their values (:mod:`segprep.evaluation.pred_ids`)."""
INSTANCE_MIN = cs_data.INSTANCE_MIN


@dataclass
class FrameHistogram:
    """A measured frame before scoring: its ground-truth codes and the ``(M, 256)`` joint
    histogram of codes and prediction values (kept when ``--pred-ids auto`` must first see every
    prediction)."""

    item: tuple[str, str, str]
    gt: GtCodes
    hist: np.ndarray
    large: dict[int, int]

    @property
    def values(self) -> np.ndarray:
        """``(256,)`` histogram of the prediction's values (16-bit values > 255 in bin 255)."""
        return self.hist.sum(0)


def _reading(cmap: ClassMap, protocol: CityscapesProtocol, pred_ids: str
             ) -> tuple[np.ndarray, np.ndarray, str]:
    """``(allowed values, value → labelId column map, text of the valid values)``."""
    if pred_ids == "trainIds":
        allowed = valid_values(cmap, "trainIds")
        col_map = cmap.train_id_to_id.astype(np.int64)
        return allowed, col_map, f"trainIds {value_ranges(np.flatnonzero(allowed))}"
    allowed = np.zeros(256, bool)  # labelIds: the evaluated ones (cityscapesScripts' check)
    col_map = np.arange(256)
    allowed[np.array(protocol.eval_ids)] = True
    return allowed, col_map, f"labelIds {value_ranges(np.array(protocol.eval_ids))}"


@dataclass
class FrameTally:
    """One frame as a Dask worker sends it back (the ``--scheduler`` path): only what the
    reduction needs, never a code map or a histogram of codes.

    Attributes:
        values: ``(256,)`` int64 histogram of the prediction's values, for ``--pred-ids auto``
            to decide on (None when ``pred_ids`` is given).
        counts: for each reading the frame was scored with (``auto``: both ``labelIds`` and
            ``trainIds``, whichever the decision picks; else the one given), its
            :class:`FrameCounts` or the one-line error of that reading.
    """

    values: np.ndarray | None
    counts: dict[str, FrameCounts | str]


@dataclass
class CityscapesJob:
    """Evaluate one Cityscapes frame (a callable of the frame's paths, run by
    :func:`segprep.io.run_batch`): :meth:`measure` decodes, :meth:`score` counts."""

    protocol: CityscapesProtocol
    pred_ids: str
    cache: GtCache

    def __post_init__(self) -> None:
        self.cat_cols = {cat: np.array(ids, np.int64)
                         for cat, ids in self.protocol.inst_categories.items()}
        self.readings = {kind: _reading(self.protocol.class_map, self.protocol, kind)
                         for kind in ("labelIds", "trainIds")}

    def set_pred_ids(self, pred_ids: str) -> None:
        """What predictions hold (``auto``: :meth:`__call__` only measures)."""
        self.pred_ids = pred_ids

    def gt_codes(self, label_path: PathLike, inst_path: PathLike) -> GtCodes:
        def build() -> GtCodes:
            lab = read_label_map(label_path)
            inst = read_label_map(inst_path)
            if inst.shape != lab.shape:
                raise SegprepError(inst_path, f"size {inst.shape[1]}x{inst.shape[0]} differs from "
                                              f"{label_path}")
            return build_codes(lab, inst)

        return self.cache.get("cityscapes", [label_path, inst_path], build)

    def measure(self, item: tuple[str, str, str]) -> FrameHistogram:
        """Decode a frame's ground truth (or take it from the cache) and prediction."""
        label_path, inst_path, pred_path = item
        gt = self.gt_codes(label_path, inst_path)
        pred = read_label_map(pred_path)
        hist = prediction_histogram(gt, pred, pred_path, label_path)
        return FrameHistogram(item, gt, hist, large_values(pred))

    def tally(self, item: tuple[str, str, str]) -> FrameTally:
        """Measure and score a frame in one pass, on a Dask worker: with ``auto``, under both
        readings (scoring costs ~0.1 ms next to ~10 ms of decoding), so that the frame is decoded
        once and only counts travel back.

        Raises:
            SegprepError: what :meth:`measure` raises; with a given ``pred_ids``, what
                :meth:`score` raises too.
        """
        frame = self.measure(item)
        if self.pred_ids != "auto":
            return FrameTally(None, {self.pred_ids: self.score(frame)})
        counts: dict[str, FrameCounts | str] = {}
        for kind in self.readings:
            try:
                counts[kind] = self.score(frame, kind)
            except SegprepError as exc:
                counts[kind] = str(exc)
        return FrameTally(frame.values, counts)

    def __call__(self, item: tuple[str, str, str]) -> FrameCounts | FrameHistogram:
        frame = self.measure(item)
        return frame if self.pred_ids == "auto" else self.score(frame)

    def score(self, frame: FrameHistogram, kind: str | None = None) -> FrameCounts:
        """The frame's confusion matrix and instance counts, predictions read as ``kind``
        (default :attr:`pred_ids`).

        Raises:
            SegprepError: a value that is not a valid ``kind`` value, an unknown label id in the
                ground truth.
        """
        kind = kind or self.pred_ids
        allowed, col_map, valid_text = self.readings[kind]
        label_path, inst_path, pred_path = frame.item
        p = self.protocol
        gt, hist, big = frame.gt, frame.hist, frame.large
        cols = hist.sum(0)
        own = cols.copy()
        own[255] -= sum(big.values())  # 16-bit values > 255, counted in column 255
        bad = {int(v): int(own[v]) for v in np.flatnonzero((own > 0) & ~allowed)}
        bad.update(big)
        if bad:
            raise SegprepError(pred_path, f"invalid {kind} value(s) "
                                          f"{describe_values(bad)}; valid: {valid_text}")
        if kind == "trainIds":
            mapped = np.zeros_like(hist)
            for v in np.flatnonzero(cols):
                mapped[:, col_map[v]] += hist[:, v]
            hist = mapped
        unknown = [int(v) for v in gt.values if v >= p.size or v not in p.names]
        if unknown:
            raise SegprepError(label_path, f"unknown label id(s) {', '.join(map(str, unknown))} in "
                                           "the ground truth")
        cm = np.zeros((p.size, p.size), np.int64)
        np.add.at(cm, gt.values, hist[:, :p.size])
        return FrameCounts(cm, self._instances(gt, hist, inst_path))

    def _instances(self, gt: GtCodes, hist: np.ndarray, inst_path: str) -> np.ndarray:
        """``(n, 4)`` int64 rows ``label_id, size, tp, category_tp`` of the frame's evaluated
        instances, in ascending instance id (``hist``: ``(M, 256)`` columns = label ids)."""
        p = self.protocol
        rows = []
        inst_codes = np.flatnonzero(gt.instances)
        if inst_codes.size:
            ids = gt.instances[inst_codes]
            order = np.argsort(ids, kind="stable")
            inst_codes, ids = inst_codes[order], ids[order]
            starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
            ends = np.r_[starts[1:], ids.size]
            for s, e in zip(starts, ends):
                inst_id = int(ids[s])
                label = inst_id // INSTANCE_MIN
                if label >= p.size or label not in p.names:
                    raise SegprepError(inst_path,
                                       f"instance id {inst_id}: unknown label id {label}")
                if p.ignored[label]:
                    continue
                if not p.has_instances[label]:
                    raise SegprepError(inst_path, f"instance id {inst_id}: label "
                                                  f"{p.names[label]!r} has no instances")
                h = hist[inst_codes[s:e]]
                size = int(h.sum())
                tp = int(h[:, label].sum())
                cat = p.label_category[label]
                cat_tp = int(h[:, self.cat_cols[cat]].sum()) if cat in self.cat_cols else 0
                rows.append((label, size, tp, cat_tp))
        return np.array(rows, np.int64).reshape(-1, 4)


def evaluate_cityscapes(pred_dir: PathLike, gt_root: PathLike, split: str = "val", *,
                        pred_ids: str = "labelIds", jobs: int | None = None,
                        cache: PathLike | bool | None = True, quiet: bool = False,
                        class_map: str | ClassMap = "cityscapes",
                        scheduler: str | None = None) -> EvalReport:
    """Evaluate Cityscapes predictions exactly as cityscapesScripts' evalPixelLevelSemanticLabeling.

    Args:
        pred_dir: folder searched recursively for ``<city>_<seq>_<frame>*.png`` predictions.
        gt_root: Cityscapes root holding
            ``gtFine/<split>/<city>/*_gtFine_{labelIds,instanceIds}.png``.
        split: ``val`` (or ``train``, ``test`` …).
        pred_ids: ``labelIds`` (the official format), ``trainIds``, or ``auto``: decided from
            the values of all predictions (:func:`segprep.evaluation.pred_ids.decide`; the
            decision is in ``report.notes``).
        jobs: threads (default: all cores).
        cache: cache folder, True for :func:`~segprep.evaluation.gt_cache.default_cache_dir`,
            False/None for no cache.
        quiet: no progress bar.
        class_map: the label table (a name or a :class:`ClassMap`).
        scheduler: a Dask scheduler (``tcp://HOST:PORT`` or ``local:N``, see
            :mod:`segprep.io.cluster`) whose workers evaluate the frames and send back only their
            confusion matrices and instance counts, summed here; with ``auto`` they first send
            each prediction's value histogram, then score once decided. The cache folder is
            then each worker's (its counts stay there).

    Returns:
        an :class:`EvalReport`; ``result`` has cityscapesScripts' JSON keys (``classScores``,
        ``classInstScores``, ``categoryScores``, ``categoryInstScores``, ``averageScore*``,
        ``confMatrix``, ``priors``, ``labels``), fractions in [0, 1].

    Raises:
        SegprepError: bad ``pred_ids``, missing folders, predictions that do not pair one to one
            with the ground truth (every problem in one line), or ``auto`` that cannot decide.
    """
    t0 = time.perf_counter()
    if pred_ids not in PRED_IDS:
        raise SegprepError("--pred-ids", f"must be one of {', '.join(PRED_IDS)}, not {pred_ids!r}")
    cmap = class_maps.load(class_map) if isinstance(class_map, str) else class_map
    protocol = CityscapesProtocol(cmap)
    gt_files = cs_data.gt_label_files(gt_root, split)
    pred_files = find_files(pred_dir, ".png")
    match = cs_data.match_predictions([cs_data.frame_key(f) for f in gt_files], pred_files)
    problems = match.problems("prediction", len(gt_files), cs_data.MATCH_RULE)
    if problems:
        raise SegprepError(pred_dir, problems)
    items = [(str(g), cs_data.instance_file(g), str(p)) for g, p in zip(gt_files, match.files)]
    gcache = cache_for(cache)
    job = CityscapesJob(protocol, pred_ids, gcache)
    report = EvalReport("cityscapes", class_names=[protocol.names[i] for i in protocol.not_ignored],
                        eval_ids=list(protocol.not_ignored))
    if match.extra:
        report.warnings.append(f"{len(match.extra)} .png file(s) under {pred_dir} match no "
                               f"ground-truth frame of {split} (ignored)")
    if scheduler:
        results = _score_on_cluster(job, items, report, quiet, scheduler)
    else:
        results = _score_here(job, items, report, jobs, quiet)
    if not report.errors:
        cm = np.zeros((protocol.size, protocol.size), np.int64)
        stats = InstanceStats(protocol)
        for r in results:  # frame order, instances in ascending id: cityscapesScripts' order
            cm += r.confusion
            rows = r.instances.tolist() if r.instances is not None else []
            for label, size, tp, cat_tp in rows:
                stats.add(label, size, tp, cat_tp)
        report.result = protocol.result(cm, stats)
        report.confusion = cm
    report.frames = len(items)
    report.cache = cache_info(gcache)
    report.seconds = time.perf_counter() - t0
    return report


def _score_here(job: CityscapesJob, items: list[tuple[str, str, str]], report: EvalReport,
                jobs: int | None, quiet: bool) -> list[FrameCounts]:
    """The frames' counts from threads of this process (errors into ``report``); with ``auto``,
    every frame is measured, the reading decided, then the measured frames scored."""
    results: list = []
    for out in run_batch(job, items, jobs=jobs, desc="evaluate", quiet=quiet, unit="frame",
                         ordered=True):
        if out.ok:
            results.append(out.value)
        else:
            report.errors.append(out.error or "")
    if job.pred_ids != "auto" or report.errors:
        return results
    decision = decide([f.values for f in results], [item[2] for item in items],
                      job.protocol.class_map)
    report.notes.append(decision.reason)
    job.set_pred_ids(decision.kind)
    scored = []
    for frame in results:
        try:
            scored.append(job.score(frame))
        except SegprepError as exc:
            report.errors.append(str(exc))
    return scored


def _score_on_cluster(job: CityscapesJob, items: list[tuple[str, str, str]], report: EvalReport,
                      quiet: bool, scheduler: str) -> list[FrameCounts]:
    """The frames' counts from Dask workers (errors into ``report``), one pass: each worker
    reads the ground truth and the prediction, and sends back a :class:`FrameTally` (with
    ``auto``: the value histogram and the counts under both readings); the reading is decided
    here and its counts kept."""
    tallies: list[FrameTally] = []
    for out in run_batch(job.tally, items, desc="evaluate", quiet=quiet, unit="frame",
                         ordered=True, scheduler=scheduler):
        if out.ok:
            tallies.append(out.value)
        else:
            report.errors.append(out.error or "")
    if report.errors:
        return []
    kind = job.pred_ids
    if kind == "auto":
        values = [t.values for t in tallies if t.values is not None]  # every one, with auto
        decision = decide(values, [item[2] for item in items], job.protocol.class_map)
        report.notes.append(decision.reason)
        kind = decision.kind
    results = []
    for t in tallies:
        counts = t.counts[kind]
        if isinstance(counts, str):
            report.errors.append(counts)
        else:
            results.append(counts)
    return results
