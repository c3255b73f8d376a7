"""Cityscapes panoptic segmentation: PQ, SQ and RQ as cityscapesScripts 2.3.0
``evaluation/evalPanopticSemanticLabeling`` computes them (Kirillov et al., "Panoptic
Segmentation", CVPR 2019).

Inputs (COCO panoptic format): a ground-truth JSON and folder of PNGs (e.g. what
``segprep cityscapes gen-gt --targets panoptic`` writes) and a prediction JSON and folder.
Frames are matched by ``image_id``; each annotation's ``file_name`` is its PNG in the folder.
A PNG pixel's segment id is ``R + 256 G + 256² B``.

The protocol, followed exactly:

* ``VOID`` = 0: ground-truth pixels with id 0 are void; prediction pixels with id 0 are void unless
  0 is listed in the prediction's ``segments_info``. Ground-truth pixels whose id is not listed in
  ``segments_info`` take part in nothing. Ground-truth areas are those of ``segments_info``;
  prediction areas are counted in the PNG.
* A ground-truth segment (not crowd) and a predicted segment of the same category match when
  ``IoU = I / (A_pred + A_gt - I - V) > 0.5``, ``V`` the predicted segment's pixels on void
  (``OFFSET`` = 256³ pairs the ids of both maps in the reference's one ``np.unique``; here one
  pass counts the pairs). A match adds 1 to TP and its IoU to the IoU sum of the category.
* Unmatched non-crowd ground-truth segments are FN. An unmatched predicted segment is FP unless
  more than half of it lies on void or on the (last listed) crowd segment of its category.
* Per class and averaged over All / Things / Stuff: :func:`segprep.metrics.panoptic_quality`.

Where the reference crashes or guesses, this module refuses with a message naming the file, the
image and the segment: an unknown ``category_id``, a PNG segment id missing from
``segments_info``, a listed segment absent from the PNG, duplicate segment or image ids, a PNG
that is not 8-bit RGB(A) or whose size differs from the ground truth's, a missing prediction.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from segprep.errors import SegprepError
from segprep.metrics import panoptic_quality

OFFSET = 256 * 256 * 256
"""cityscapesScripts' pairing offset of ground-truth and predicted ids (``gt * OFFSET + pred``)."""
VOID = 0
"""The void segment id."""


# ----------------------------------------------------------------------------- JSON
def load_json(path: str | os.PathLike, what: str) -> dict:
    """Read a COCO panoptic JSON and check its shape.

    Args:
        path: the file.
        what: ``"ground truth"`` (``categories`` required; segments need ``area`` and
            ``iscrowd``) or ``"prediction"``.

    Returns:
        The document (``annotations`` as a list; ``categories`` for the ground truth).

    Raises:
        SegprepError: unreadable or malformed JSON, missing or mistyped keys, duplicate
            ``image_id`` or category id.
    """
    import orjson

    from segprep.io import read_bytes

    try:
        doc = orjson.loads(read_bytes(path))
    except orjson.JSONDecodeError as exc:
        raise SegprepError(path, f"malformed JSON ({exc})") from None
    gt = what == "ground truth"
    if not isinstance(doc, dict) or not isinstance(doc.get("annotations"), list):
        raise SegprepError(path, f"not a COCO panoptic {what} file: no 'annotations' list")
    if gt:
        cats = doc.get("categories")
        if not isinstance(cats, list) or not cats:
            raise SegprepError(path, "no 'categories' list")
        seen = set()
        for n, c in enumerate(cats):
            if not isinstance(c, dict) or not _is_int(c.get("id")) or "isthing" not in c:
                raise SegprepError(path, f"category {n}: needs an integer 'id' and 'isthing'")
            if c["id"] in seen:
                raise SegprepError(path, f"category id {c['id']} listed twice")
            seen.add(c["id"])
    ids = set()
    for n, ann in enumerate(doc["annotations"]):
        if not isinstance(ann, dict) or not isinstance(ann.get("image_id"), str) \
                or not isinstance(ann.get("file_name"), str) \
                or not isinstance(ann.get("segments_info"), list):
            raise SegprepError(path, f"annotation {n}: needs 'image_id', 'file_name' (strings) "
                                     "and a 'segments_info' list")
        if ann["image_id"] in ids:
            raise SegprepError(path, f"image_id {ann['image_id']!r} has two annotations")
        ids.add(ann["image_id"])
        for s in ann["segments_info"]:
            # JSON values: type(v) is int is _is_int(v) (no bool, no other int subclass), and
            # ~4x faster over a split's segments than a generator of _is_int calls
            if type(s) is dict and type(s.get("id")) is int \
                    and type(s.get("category_id")) is int \
                    and (not gt or (type(s.get("area")) is int
                                    and type(s.get("iscrowd")) is int)):
                continue
            keys = ("id", "category_id", "area", "iscrowd") if gt else ("id", "category_id")
            if not isinstance(s, dict) or not all(_is_int(s.get(k)) for k in keys):
                raise SegprepError(path, f"image_id {ann['image_id']!r}: segment "
                                         f"{s.get('id') if isinstance(s, dict) else s!r}: needs "
                                         f"integer {', '.join(repr(k) for k in keys)}")
    return doc


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


# ----------------------------------------------------------------------------- per frame
@dataclass(frozen=True)
class FrameJob:
    """One frame to score (picklable): its PNGs and segment lists, in ``segments_info`` order."""

    image_id: str
    gt_png: str
    pred_png: str
    gt_ids: tuple[int, ...]
    gt_cats: tuple[int, ...]
    gt_areas: tuple[int, ...]
    gt_crowd: tuple[bool, ...]
    pred_ids: tuple[int, ...]
    pred_cats: tuple[int, ...]

    def __str__(self) -> str:  # how an unexpected error names the frame
        return f"{self.pred_png} (image_id {self.image_id!r})"


def _kernel(name: str):
    """The numba-compiled kernel ``name`` (:func:`segprep.jit.kernel`)."""
    from segprep.jit import kernel

    return kernel(globals()[name], boundscheck=False)


def _pair_table(gt, gc, pred, pc, n, gt_keys, pred_keys, table, unknown, gt64, pred64,
                words):  # pragma: no cover - runs compiled by numba
    """Count ``(gt segment, predicted segment)`` pixel pairs of two RGB(A) id maps.

    ``gt``/``pred``: flat uint8 samples with ``gc``/``pc`` channels per pixel (first three: the
    id); ``gt_keys``/``pred_keys``: sorted int64 ids; ``table``: ``((G + 1) * (P + 1),)`` int64
    zeros, row = gt key index (``G``: any other id), column = pred key index (``P``: any other
    id). ``unknown[0]`` receives the first other predicted id met. Runs of equal pairs are added
    at once; with ``words`` (little-endian, 8-byte aligned samples; ``gt64``/``pred64`` the
    uint64 views of the first ``8 * (n // 8)`` pixels) each aligned group of 8 pixels that
    repeats the previous pixel in both maps is recognised by ``gc + pc`` word compares.
    """
    ncol = pred_keys.size + 1
    prev_g = np.int64(-1)
    prev_p = np.int64(-1)
    gi = 0
    pj = 0
    run = np.int64(0)
    gpat = np.zeros(4, np.uint64)
    ppat = np.zeros(4, np.uint64)
    gpat_key = np.int64(-1)
    ppat_key = np.int64(-1)
    i = 0
    while i < n:
        if words and i > 0 and (i & 7) == 0 and i + 8 <= n:
            a = (i - 1) * gc  # the previous pixel, repeated 8 times, as gc words
            key = np.int64(0)
            for c in range(gc):
                key |= np.int64(gt[a + c]) << (8 * c)
            if key != gpat_key:
                for w in range(gc):
                    word = np.uint64(0)
                    for j in range(8):
                        byte = (key >> (8 * ((w * 8 + j) % gc))) & 255
                        word |= np.uint64(byte) << np.uint64(8 * j)
                    gpat[w] = word
                gpat_key = key
            b = (i - 1) * pc
            key = np.int64(0)
            for c in range(pc):
                key |= np.int64(pred[b + c]) << (8 * c)
            if key != ppat_key:
                for w in range(pc):
                    word = np.uint64(0)
                    for j in range(8):
                        byte = (key >> (8 * ((w * 8 + j) % pc))) & 255
                        word |= np.uint64(byte) << np.uint64(8 * j)
                    ppat[w] = word
                ppat_key = key
            k = i >> 3
            same = True
            for w in range(gc):
                if gt64[k * gc + w] != gpat[w]:
                    same = False
                    break
            if same:
                for w in range(pc):
                    if pred64[k * pc + w] != ppat[w]:
                        same = False
                        break
            if same:
                run += 8
                i += 8
                continue
        a = i * gc
        b = i * pc
        g = np.int64(gt[a]) | (np.int64(gt[a + 1]) << 8) | (np.int64(gt[a + 2]) << 16)
        p = np.int64(pred[b]) | (np.int64(pred[b + 1]) << 8) | (np.int64(pred[b + 2]) << 16)
        i += 1
        if g == prev_g and p == prev_p:
            run += 1
            continue
        if run:
            table[gi * ncol + pj] += run
        if g != prev_g:  # binary search of g in gt_keys (gt_keys.size if absent)
            lo = 0
            hi = gt_keys.size
            while lo < hi:
                mid = (lo + hi) >> 1
                if gt_keys[mid] < g:
                    lo = mid + 1
                else:
                    hi = mid
            gi = lo if lo < gt_keys.size and gt_keys[lo] == g else gt_keys.size
            prev_g = g
        if p != prev_p:
            lo = 0
            hi = pred_keys.size
            while lo < hi:
                mid = (lo + hi) >> 1
                if pred_keys[mid] < p:
                    lo = mid + 1
                else:
                    hi = mid
            pj = lo if lo < pred_keys.size and pred_keys[lo] == p else pred_keys.size
            if pj == pred_keys.size and unknown[1] == 0:
                unknown[0] = p
                unknown[1] = 1
            prev_p = p
        run = 1
    if run:
        table[gi * ncol + pj] += run
    return 0


def pair_table(gt: np.ndarray, pred: np.ndarray, gt_keys: np.ndarray, pred_keys: np.ndarray
               ) -> tuple[np.ndarray, int | None]:
    """Pixel counts of every (ground-truth id, predicted id) pair of two panoptic images.

    Args:
        gt, pred: ``(H, W, 3|4)`` uint8 RGB(A) images of the same size (id = R + 256 G + 256² B;
            alpha ignored).
        gt_keys, pred_keys: sorted unique int64 ids (G and P of them).

    Returns:
        ``(table, unknown)``: ``(G + 1, P + 1)`` int64 counts, the last row/column gathering
        every id not in the keys; ``unknown`` is one predicted id not in ``pred_keys`` (None
        when there is none).
    """
    n = gt.shape[0] * gt.shape[1]
    g = np.ascontiguousarray(gt).reshape(-1)
    p = np.ascontiguousarray(pred).reshape(-1)
    gc, pc = gt.shape[2], pred.shape[2]
    n8 = n // 8
    words = (sys.byteorder == "little" and n8 > 0 and g.ctypes.data % 8 == 0
             and p.ctypes.data % 8 == 0)
    g64 = g[: n8 * 8 * gc].view(np.uint64) if words else np.zeros(1, np.uint64)
    p64 = p[: n8 * 8 * pc].view(np.uint64) if words else np.zeros(1, np.uint64)
    table = np.zeros((gt_keys.size + 1) * (pred_keys.size + 1), np.int64)
    unknown = np.zeros(2, np.int64)
    _kernel("_pair_table")(g, gc, p, pc, n, gt_keys, pred_keys, table, unknown, g64, p64, words)
    return (table.reshape(gt_keys.size + 1, pred_keys.size + 1),
            int(unknown[0]) if unknown[1] else None)


def _read_rgb(path: str, key: str, data: bytes | None = None) -> np.ndarray:
    """An 8-bit RGB(A) PNG's samples (``data``: the file's bytes, when already read); anything
    else (gray, 16-bit, palette: the reference reads palette indices there, not colours) is
    refused."""
    from segprep.io import png_fast, read_bytes, read_png

    if data is None:
        data = read_bytes(path)
    arr = png_fast.decode(data, path, key)
    if arr is None:
        if len(data) > 25 and data[25] == 3:
            raise SegprepError(path, "a palette PNG: save the panoptic image as 8-bit RGB "
                                     "(segment id = R + 256 G + 256^2 B)")
        arr = read_png(path)  # interlaced or low bit depth: libpng
    if arr.ndim != 3 or arr.shape[2] not in (3, 4) or arr.dtype != np.uint8:
        kind = f"{arr.shape[2]}-channel" if arr.ndim == 3 else "single-channel"
        raise SegprepError(path, f"expected an 8-bit RGB or RGBA panoptic PNG (segment id = R + "
                                 f"256 G + 256^2 B), got a {kind} {arr.dtype} image")
    return arr


def _size_error(job: FrameJob, pred_wh: tuple[int, int], gt_wh: tuple[int, int]
                ) -> SegprepError:
    return SegprepError(job.pred_png, f"size {pred_wh[0]}x{pred_wh[1]} differs from the ground "
                                      f"truth's {gt_wh[0]}x{gt_wh[1]} ({job.gt_png})")


def _ids_of(rgb: np.ndarray) -> np.ndarray:
    return (rgb[..., 0].astype(np.int64) | (rgb[..., 1].astype(np.int64) << 8)
            | (rgb[..., 2].astype(np.int64) << 16))


def evaluate_frame(job: FrameJob) -> dict[int, list]:
    """Score one frame.

    Returns:
        category id → ``[tp, fp, fn, iou_sum]`` (only the categories the frame touches).

    Raises:
        SegprepError: a PNG that cannot be read or is not RGB(A), sizes that differ, a PNG
            segment id missing from the prediction's ``segments_info``, or a listed predicted
            segment absent from its PNG.
    """
    from segprep.evaluation.panoptic_png import pair_table_png, rgb_png
    from segprep.io import read_bytes

    gdata = read_bytes(job.gt_png)
    ginfo = rgb_png(gdata, job.gt_png)
    pdata = read_bytes(job.pred_png)
    pinfo = rgb_png(pdata, job.pred_png)
    gt_keys = np.unique(np.array(job.gt_ids + (VOID,), np.int64))
    pred_keys = np.unique(np.array(job.pred_ids + (VOID,), np.int64))
    ng, npk = gt_keys.size, pred_keys.size
    pred: np.ndarray | None = None
    if ginfo is not None and pinfo is not None:  # 8-bit RGB(A): straight from the image data
        if (ginfo.width, ginfo.height) != (pinfo.width, pinfo.height):
            raise _size_error(job, (pinfo.width, pinfo.height), (ginfo.width, ginfo.height))
        table, unknown = pair_table_png(ginfo, pinfo, gt_keys, pred_keys, job.gt_png,
                                        job.pred_png)
    else:  # other kinds: decoded (or refused) first
        gt = _read_rgb(job.gt_png, "panoptic_eval_gt", gdata)
        pred = _read_rgb(job.pred_png, "panoptic_eval_pred", pdata)
        if gt.shape[:2] != pred.shape[:2]:
            raise _size_error(job, (pred.shape[1], pred.shape[0]), (gt.shape[1], gt.shape[0]))
        table, unknown = pair_table(gt, pred, gt_keys, pred_keys)
    if unknown is not None:
        if pred is None:
            pred = _read_rgb(job.pred_png, "panoptic_eval_pred", pdata)
        ids = _ids_of(pred)
        bad, counts = np.unique(ids[~np.isin(ids, pred_keys)], return_counts=True)
        listed = ", ".join(f"{int(v)} ({int(c)} px)" for v, c in zip(bad[:5], counts[:5]))
        more = f" and {bad.size - 5} more" if bad.size > 5 else ""
        raise SegprepError(job.pred_png, f"image_id {job.image_id!r}: segment id(s) {listed}"
                                         f"{more} in the PNG are not in its segments_info")
    pred_col = {int(v): j for j, v in enumerate(pred_keys.tolist())}
    gt_row = {int(v): i for i, v in enumerate(gt_keys.tolist())}
    pred_area = table.sum(axis=0)
    for sid in job.pred_ids:
        if pred_area[pred_col[sid]] == 0:
            raise SegprepError(job.pred_png, f"image_id {job.image_id!r}: segment {sid} of "
                                             "segments_info has no pixel in the PNG")
    gt_info = {sid: (cat, area, crowd) for sid, cat, area, crowd
               in zip(job.gt_ids, job.gt_cats, job.gt_areas, job.gt_crowd)}
    pred_cat = dict(zip(job.pred_ids, job.pred_cats))
    void_row = table[gt_row[VOID]]
    stats: dict[int, list] = {}

    def stat(cat: int) -> list:
        s = stats.get(cat)
        if s is None:
            s = stats[cat] = [0, 0, 0, 0.0]
        return s

    # matches, in increasing (gt id, pred id) as the reference's np.unique visits them
    gt_matched: set[int] = set()
    pred_matched: set[int] = set()
    rows, cols = np.nonzero(table[:ng, :npk])
    for i, j, inter in zip(rows.tolist(), cols.tolist(), table[rows, cols].tolist()):
        g = int(gt_keys[i])
        p = int(pred_keys[j])
        info = gt_info.get(g)
        if info is None or p not in pred_cat:
            continue
        cat, area, crowd = info
        if crowd or cat != pred_cat[p]:
            continue
        union = int(pred_area[j]) + area - inter - int(void_row[j])
        if union <= 0:
            raise SegprepError(job.gt_png, f"image_id {job.image_id!r}: segment {g}: its area "
                                           f"in segments_info ({area}) is smaller than its "
                                           "pixels")
        iou = inter / union
        if iou > 0.5:
            s = stat(cat)
            s[0] += 1
            s[3] += iou
            gt_matched.add(g)
            pred_matched.add(p)
    crowd_of: dict[int, int] = {}
    for g, (cat, _area, crowd) in gt_info.items():
        if g in gt_matched:
            continue
        if crowd:
            crowd_of[cat] = g
            continue
        stat(cat)[2] += 1
    for p, cat in pred_cat.items():
        if p in pred_matched:
            continue
        j = pred_col[p]
        inter = int(void_row[j])
        if cat in crowd_of:
            inter += int(table[gt_row[crowd_of[cat]], j])
        if inter / int(pred_area[j]) > 0.5:
            continue
        stat(cat)[1] += 1
    return stats


# ----------------------------------------------------------------------------- whole set
@dataclass
class PanopticReport:
    """The outcome of :func:`evaluate_panoptic`.

    Attributes:
        results: cityscapesScripts' result dict (``All``/``Things``/``Stuff`` with ``pq``,
            ``sq``, ``rq``, ``n``; ``per_class`` by category id), or None when a frame failed.
        categories: category id → the ground truth's category entry, in its order.
        stats: category id → ``[tp, fp, fn, iou_sum]`` summed over the frames.
        frames: frames scored; seconds: wall time.
        errors: one line per bad file or segment (then there are no results).
        warnings: predictions without ground truth (ignored, as the reference does).
    """

    results: dict | None = None
    categories: dict = field(default_factory=dict)
    stats: dict = field(default_factory=dict)
    frames: int = 0
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def make_jobs(gt_doc: dict, gt_folder: str | os.PathLike, pred_doc: dict,
              pred_folder: str | os.PathLike, pred_json: str | os.PathLike, categories: dict
              ) -> tuple[list[FrameJob | None], list[str], list[str]]:
    """Pair ground-truth and predicted annotations by ``image_id``.

    Returns:
        ``(jobs, errors, warnings)``: one job per ground-truth annotation (None where its
        prediction is missing or breaks the format: the reason is in ``errors``), and a warning
        for predictions of images the ground truth does not have.
    """
    preds = {a["image_id"]: a for a in pred_doc["annotations"]}
    jobs: list[FrameJob | None] = []
    errors: list[str] = []
    gt_ids = set()
    for ann in gt_doc["annotations"]:
        iid = ann["image_id"]
        gt_ids.add(iid)
        pa = preds.get(iid)
        if pa is None:
            errors.append(f"{pred_json}: no prediction for image_id {iid!r}")
            jobs.append(None)
            continue
        bad = _segment_errors(pa["segments_info"], categories)
        gbad = _duplicates(ann["segments_info"])
        if bad or gbad:
            errors += [f"{pred_json}: image_id {iid!r}: {b}" for b in bad]
            errors += [f"ground truth image_id {iid!r}: {b}" for b in gbad]
            jobs.append(None)
            continue
        gs, ps = ann["segments_info"], pa["segments_info"]
        jobs.append(FrameJob(
            iid, os.path.join(gt_folder, ann["file_name"]),
            os.path.join(pred_folder, pa["file_name"]),
            tuple(s["id"] for s in gs), tuple(s["category_id"] for s in gs),
            tuple(s["area"] for s in gs), tuple(s["iscrowd"] == 1 for s in gs),
            tuple(s["id"] for s in ps), tuple(s["category_id"] for s in ps)))
    extra = [i for i in preds if i not in gt_ids]
    warnings = []
    if extra:
        warnings.append(f"{pred_json}: {len(extra)} prediction(s) of images not in the ground "
                        f"truth ignored (e.g. {extra[0]!r})")
    return jobs, errors, warnings


def _duplicates(segments: Sequence[dict]) -> list[str]:
    seen, out = set(), []
    for s in segments:
        if s["id"] in seen:
            out.append(f"segment id {s['id']} listed twice in segments_info")
        seen.add(s["id"])
    return out


def _segment_errors(segments: Sequence[dict], categories: dict) -> list[str]:
    out = _duplicates(segments)
    for s in segments:
        if s["category_id"] not in categories:
            out.append(f"segment {s['id']} has unknown category_id {s['category_id']}")
        if not 0 <= s["id"] < OFFSET:
            out.append(f"segment id {s['id']} cannot be stored in an RGB PNG (0 .. 256^3 - 1)")
    return out


def evaluate_panoptic(gt_json: str | os.PathLike, gt_folder: str | os.PathLike,
                      pred_json: str | os.PathLike, pred_folder: str | os.PathLike, *,
                      jobs: int | None = None, quiet: bool = False,
                      scheduler: str | None = None) -> PanopticReport:
    """Score panoptic predictions against Cityscapes panoptic ground truth, as
    ``evalPanopticSemanticLabeling.evaluatePanoptic``.

    Frames run in parallel threads (the decoding and the pair count release the GIL); each
    returns small per-category counts, summed here in the ground truth's frame order.

    Args:
        gt_json, gt_folder: the ground-truth JSON and its PNG folder.
        pred_json, pred_folder: the prediction JSON and its PNG folder.
        jobs: threads (default: all cores).
        quiet: no progress bar.
        scheduler: a Dask scheduler (``tcp://HOST:PORT`` or ``local:N``, see
            :mod:`segprep.io.cluster`): its workers read both PNGs of each frame and send back
            only the frame's per-category counts, summed here in the same order.

    Returns:
        A :class:`PanopticReport`; with errors (one line each, every bad frame listed) there
        are no results.

    Raises:
        SegprepError: a JSON that cannot be read or is not COCO panoptic, a missing folder.
    """
    from segprep.io import run_batch

    t0 = time.perf_counter()
    for folder in (gt_folder, pred_folder):
        if not Path(folder).is_dir():
            raise SegprepError(folder, "no such folder")
    gt_doc = load_json(gt_json, "ground truth")
    pred_doc = load_json(pred_json, "prediction")
    categories = {c["id"]: c for c in gt_doc["categories"]}
    job_list, errors, warnings = make_jobs(gt_doc, gt_folder, pred_doc, pred_folder, pred_json,
                                           categories)
    report = PanopticReport(categories=categories, errors=errors, warnings=warnings)
    todo = [j for j in job_list if j is not None]
    per_frame: dict[str, dict] = {}
    for outcome in run_batch(evaluate_frame, todo, jobs=jobs, desc="panoptic", quiet=quiet,
                                unit="frame", prefer="threads", opencv=False,
                                scheduler=scheduler):
        if outcome.ok:
            per_frame[outcome.item.image_id] = outcome.value
        else:
            report.errors.append(outcome.error or "")
    report.frames = len(per_frame)
    if not report.errors:
        stats: dict[int, list] = {}
        for job in todo:  # ground-truth order
            for cat, (tp, fp, fn, iou) in per_frame[job.image_id].items():
                s = stats.setdefault(cat, [0, 0, 0, 0.0])
                s[0] += tp
                s[1] += fp
                s[2] += fn
                s[3] += iou
        report.stats = stats
        report.results = panoptic_quality(
            stats, {cid: c["isthing"] == 1 for cid, c in categories.items()})
    report.seconds = time.perf_counter() - t0
    return report


# ----------------------------------------------------------------------------- presentation
