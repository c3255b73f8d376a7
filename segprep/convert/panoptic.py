"""Cityscapes panoptic ground truth in COCO panoptic format, as cityscapesScripts 2.3.0
``preparation/createPanopticImgs.convert2panoptic`` writes it.

Convention (cityscapesScripts, followed exactly):

* One segment per distinct ``*_instanceIds.png`` value ``v`` whose label (``v`` below 1000, else
  ``v // 1000``) is not ``ignoreInEval``; segments of ignore-in-eval labels are dropped (their
  pixels stay black, id 0 = VOID). The segment id is ``v`` itself.
* The panoptic PNG is RGB with ``R = v % 256, G = v // 256, B = v // 65536`` (so
  ``id = R + 256 G + 256² B``), named ``<frame>_gtFine_panoptic.png``, all frames of a split in one
  flat folder ``cityscapes_panoptic_<split>[_trainId]/`` beside the split folders.
* ``segments_info`` lists the segments in increasing id: ``id``, ``category_id`` (the label id,
  or its trainId with ``train_ids``), ``area`` (pixels), ``bbox`` ``[x, y, width, height]`` of
  the pixels and ``iscrowd`` (1 for a value below 1000 of a class that has instances, i.e. a
  crowd/group region without an instance id; else 0).
* The split JSON ``cityscapes_panoptic_<split>[_trainId].json`` holds ``images`` (``id`` =
  ``<frame>``, ``width``, ``height``, ``file_name`` = ``<frame>_gtFine_leftImg8bit.png``),
  ``annotations`` (``image_id``, ``file_name``, ``segments_info``) in the sorted order of the
  instanceIds paths, and ``categories`` (every label that is not ignore-in-eval, in table order:
  ``id``, ``name``, ``color``, ``supercategory``, ``isthing``), written with sorted keys and an
  indent of 4 as ``json.dump`` does there (byte-identical files).

For gtCoarse the same names are used with ``gtCoarse`` in place of ``gtFine`` (cityscapesScripts
handles gtFine only).

The PNG carries everything ``segments_info`` says (category and crowd follow from the id), so a
rerun that finds a frame's PNG already written recomputes its segments from that PNG instead of
keeping per-frame side files; the split JSON is written once at the end, only when every frame of
the split succeeded (complete or absent).
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from segprep import class_maps
from segprep.class_maps import ClassMap
from segprep.convert import cityscapes as cs
from segprep.errors import SegprepError
from segprep.io import atomic_write_text, png_fast, scratch, write_png

PANOPTIC_SUFFIX = "panoptic"
"""Per-frame PNG name: ``<frame>_<gt>_panoptic.png``."""

INSTANCE_OFFSET = 1000
"""instanceIds values at or above this are ``label_id * 1000 + k`` (one object each)."""


def split_basename(split: str, train_ids: bool = False) -> str:
    """``cityscapes_panoptic_<split>`` (``_trainId`` appended with ``train_ids``): the name of the
    split's PNG folder and, with ``.json``, of its JSON (cityscapesScripts' ``outputBaseFile``)."""
    return f"cityscapes_panoptic_{split}{'_trainId' if train_ids else ''}"


# ----------------------------------------------------------------------------- tables
@dataclass(frozen=True, eq=False)
class PanopticTable:
    """Lookups over the 65,536 possible instanceIds values, from one label table.

    Attributes:
        keep: ``(65536,)`` uint8, 1 where the value is a segment (valid, not ignore-in-eval).
        valid: ``(65536,)`` uint8, 1 where the value can occur in an instanceIds PNG.
        category: ``(65536,)`` int64 category id of each value (label id or trainId).
        crowd: ``(65536,)`` uint8 ``iscrowd`` of each value.
        categories: the JSON ``categories`` list.
    """

    keep: np.ndarray
    valid: np.ndarray
    category: np.ndarray
    crowd: np.ndarray
    categories: list


@functools.lru_cache(maxsize=8)
def panoptic_table(class_map: ClassMap, train_ids: bool = False) -> PanopticTable:
    """The :class:`PanopticTable` of ``class_map`` (category ids are trainIds with ``train_ids``).

    A label id maps to its first row in the table (cityscapesScripts' ``id2label`` keeps the last
    one; the Cityscapes table has no repeated non-negative id).
    """
    cm = class_map
    values = np.arange(65536, dtype=np.int64)
    is_inst = values >= INSTANCE_OFFSET
    label = np.where(is_inst, values // INSTANCE_OFFSET, values)
    row_of = np.full(65536, -1, np.int64)
    for k in range(len(cm) - 1, -1, -1):  # reversed: first row wins
        i = int(cm.ids[k])
        if 0 <= i < 65536:
            row_of[i] = k
    row = np.where(label < 65536, row_of[np.minimum(label, 65535)], -1)
    known = row >= 0
    r = np.where(known, row, 0)
    has_inst = cm.has_instances[r] & known
    valid = known & (~is_inst | has_inst)
    keep = valid & ~cm.ignore_in_eval[r]
    category = np.where(keep, (cm.train_ids if train_ids else cm.ids)[r], -1).astype(np.int64)
    crowd = (keep & ~is_inst & has_inst).astype(np.uint8)
    categories = []
    for n in range(len(cm)):
        if cm.ignore_in_eval[n]:
            continue
        categories.append({"id": int(cm.train_ids[n] if train_ids else cm.ids[n]),
                           "name": cm.names[n],
                           "color": [int(c) for c in cm.colors[n]],
                           "supercategory": cm.categories[n],
                           "isthing": 1 if cm.has_instances[n] else 0})
    tab = PanopticTable(keep.astype(np.uint8), valid.astype(np.uint8), category, crowd, categories)
    for a in (tab.keep, tab.valid, tab.category, tab.crowd):
        a.setflags(write=False)
    return tab


# ----------------------------------------------------------------------------- kernel
def _kernel(name: str):
    """The numba-compiled kernel ``name`` (:func:`segprep.jit.kernel`)."""
    from segprep.jit import kernel

    return kernel(globals()[name], boundscheck=False)


def _segment_scan(values, height, width, keep, valid, rgb, write_rgb, count, x0, x1, y0, y1,
                  seen):  # pragma: no cover - runs compiled by numba
    """One pass over a ``(height * width,)`` uint16 value map, run by run along each row.

    For each kept value (``keep[v]``): pixel count, column and row extent, and (with
    ``write_rgb``) its RGB code ``(v % 256, v // 256, 0)`` in ``rgb`` (``(height * width * 3,)``
    uint8); other pixels are written black. ``count`` must be zero on entry; the kept values are
    listed in ``seen`` in first-seen order. Returns their number, or ``-(v + 1)`` for the first
    value ``v`` with ``valid[v] == 0``.
    """
    m = 0
    for row in range(height):
        base = row * width
        x = 0
        while x < width:
            v = values[base + x]
            e = x + 1
            while e < width and values[base + e] == v:
                e += 1
            if valid[v] == 0:
                return -(np.int64(v) + 1)
            if keep[v] != 0:
                if count[v] == 0:
                    seen[m] = v
                    m += 1
                    x0[v] = x
                    x1[v] = e - 1
                    y0[v] = row
                else:
                    if x < x0[v]:
                        x0[v] = x
                    if e - 1 > x1[v]:
                        x1[v] = e - 1
                y1[v] = row
                count[v] += e - x
                if write_rgb:
                    r = np.uint8(v & 255)
                    g = np.uint8(v >> 8)
                    for q in range(3 * (base + x), 3 * (base + e), 3):
                        rgb[q] = r
                        rgb[q + 1] = g
                        rgb[q + 2] = 0
            elif write_rgb:
                for q in range(3 * (base + x), 3 * (base + e)):
                    rgb[q] = 0
            x = e
    return m


@dataclass(frozen=True)
class Segments:
    """The segments of one frame, in increasing id.

    Attributes:
        ids, areas: ``(S,)`` int64 segment ids and pixel counts.
        bboxes: ``(S, 4)`` int64 ``[x, y, width, height]``.
    """

    ids: np.ndarray
    areas: np.ndarray
    bboxes: np.ndarray

    def info(self, table: PanopticTable) -> list[dict]:
        """The COCO ``segments_info`` list (Python ints)."""
        cats = table.category[self.ids].tolist()
        crowd = table.crowd[self.ids].tolist()
        return [{"id": i, "category_id": c, "area": a, "bbox": b, "iscrowd": k}
                for i, c, a, b, k in zip(self.ids.tolist(), cats, self.areas.tolist(),
                                         self.bboxes.tolist(), crowd)]


def scan_segments(values: np.ndarray, table: PanopticTable, rgb: np.ndarray | None = None,
                  *, check_valid: bool = True) -> Segments:
    """Segments of an instanceIds-valued map, and optionally its panoptic RGB image.

    Args:
        values: ``(H, W)`` uint16 instanceIds values.
        table: :func:`panoptic_table`.
        rgb: ``(H, W, 3)`` uint8 output for the panoptic image, or None.
        check_valid: refuse values that cannot occur in an instanceIds PNG (else: values that
            are not segments must be 0).

    Raises:
        ValueError: ``values`` holds a value refused as above (message: ``value <v>``).
    """
    values = np.ascontiguousarray(values)
    if values.ndim != 2 or values.dtype != np.uint16:
        raise ValueError(f"expected an (H, W) uint16 map, got {values.shape} {values.dtype}")
    height, width = values.shape
    count = np.zeros(65536, np.int64)
    x0 = np.empty(65536, np.int64)
    x1 = np.empty(65536, np.int64)
    y0 = np.empty(65536, np.int64)
    y1 = np.empty(65536, np.int64)
    seen = np.empty(65536, np.int64)
    if check_valid:
        valid = table.valid
    else:
        valid = table.keep.copy()
        valid[0] = 1
    out = rgb.reshape(-1) if rgb is not None else np.zeros(1, np.uint8)
    m = _kernel("_segment_scan")(values.reshape(-1), height, width, table.keep, valid, out,
                                 rgb is not None, count, x0, x1, y0, y1, seen)
    if m < 0:
        raise ValueError(f"value {-m - 1}")
    ids = np.sort(seen[:m])
    boxes = np.stack([x0[ids], y0[ids], x1[ids] - x0[ids] + 1, y1[ids] - y0[ids] + 1], axis=1)
    return Segments(ids, count[ids], boxes.reshape(-1, 4))


def panoptic_from_instance_ids(instance_ids: np.ndarray, class_map: ClassMap | None = None,
                               train_ids: bool = False) -> tuple[np.ndarray, list[dict]]:
    """Panoptic image and ``segments_info`` of one frame, as ``convert2panoptic``.

    Args:
        instance_ids: ``(H, W)`` uint16 instanceIds (``id`` or ``id * 1000 + k``).
        class_map: label table (default ``cityscapes``).
        train_ids: category ids are trainIds (``--use-train-id``).

    Returns:
        ``(rgb, segments_info)``: ``(H, W, 3)`` uint8 panoptic image (id = R + 256 G + 256² B;
        0 where the label is ignore-in-eval) and the COCO segment list in increasing id.

    Raises:
        ValueError: a value that no label of the table (with instances, for ``>= 1000``) has.
    """
    table = panoptic_table(class_map or class_maps.load("cityscapes"), train_ids)
    rgb = np.empty(instance_ids.shape + (3,), np.uint8)
    seg = scan_segments(instance_ids, table, rgb)
    return rgb, seg.info(table)


def segments_from_panoptic_png(path: str | os.PathLike, table: PanopticTable
                               ) -> tuple[Segments, int, int]:
    """Segments of a panoptic PNG written earlier (for a resumed run): ``(segments, W, H)``.

    Raises:
        SegprepError: unreadable PNG, not 8-bit RGB, or an id that is not a segment of the table.
    """
    rgb = png_fast.read(path, "panoptic_png")
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise SegprepError(path, f"not a panoptic PNG (8-bit RGB expected, got {rgb.shape} "
                                 f"{rgb.dtype}); rerun with --overwrite")
    if rgb[..., 2].any():
        raise SegprepError(path, "not a Cityscapes panoptic PNG (blue channel set); rerun with "
                                 "--overwrite")
    values = scratch("panoptic_values", rgb.shape[:2], np.uint16)
    np.left_shift(rgb[..., 1], 8, out=values, dtype=np.uint16)
    values |= rgb[..., 0]
    try:
        seg = scan_segments(values, table, check_valid=False)
    except ValueError as exc:
        raise SegprepError(path, f"not a panoptic PNG of this label table: segment {exc} is not "
                                 "one; rerun with --overwrite") from None
    return seg, rgb.shape[1], rgb.shape[0]


# ----------------------------------------------------------------------------- batch job
@dataclass(frozen=True)
class PanopticJob:
    """One frame of ``gen-gt`` with the panoptic target (picklable).

    Attributes:
        frame: the other targets of the frame (``targets`` may be empty) and the source options.
        split: the split the frame belongs to (its JSON's group).
        png: the panoptic PNG to write.
        image_id: ``<frame>`` (the name without ``_<gt>``).
        stem: ``<frame>_<gt>``.
        order: sort key of the frame in its split JSON (its instanceIds path below the split).
        train_ids: category ids are trainIds.
    """

    frame: cs.FrameJob
    split: str
    png: str
    image_id: str
    stem: str
    order: str
    train_ids: bool = False


@dataclass
class PanopticFrameResult:
    """What :func:`convert_frame` did, and the frame's ``images`` / ``annotations`` entries."""

    source: str
    image: dict
    annotation: dict
    written: list[str] = field(default_factory=list)
    skipped: bool = False


def convert_frame(job: PanopticJob) -> PanopticFrameResult:
    """Write the frame's other targets (:func:`segprep.convert.cityscapes.convert_frame`) and
    its panoptic PNG; return its JSON entries.

    An existing panoptic PNG is kept (unless ``overwrite``) and its segments are read back from
    it. The source is the official ``*_instanceIds.png`` beside the JSON (``auto``, checked
    against the JSON's size and the label table), else the JSON's polygons rasterised.

    Raises:
        SegprepError: any bad input (see :func:`segprep.convert.cityscapes.load_annotation`).
    """
    fj = job.frame
    written: list[str] = []
    skipped = True
    source = ""
    if fj.targets:
        res = cs.convert_frame(fj)
        written += res.written
        skipped = res.skipped
        source = res.source
    cm = class_maps.load(fj.class_map)
    table = panoptic_table(cm, job.train_ids)
    if not fj.overwrite and os.path.exists(job.png):
        seg, width, height = segments_from_panoptic_png(job.png, table)
    else:
        ann = cs.load_annotation(fj.json_path, cm)
        width, height = ann.width, ann.height
        base = fj.json_path[: -len(cs.POLYGON_SUFFIX)]
        inst_path = f"{base}_instanceIds.png"
        if fj.source == "auto" and os.path.exists(inst_path):
            inst = png_fast.read(inst_path, "cs_instance_ids")
            cs._check_image(inst_path, inst, np.uint16, (width, height))
            where, source = inst_path, "official"
        else:
            inst = cs.rasterize_annotation(ann, ["instanceIds"], fj.raster, cm)["instanceIds"]
            where, source = fj.json_path, "polygons"
        rgb = scratch("panoptic_rgb", (height, width, 3), np.uint8)
        try:
            seg = scan_segments(inst, table, rgb)
        except ValueError as exc:
            v = int(str(exc).split()[-1])
            raise SegprepError(where, f"invalid instance id {v} ({int((inst == v).sum())} px)"
                               ) from None
        write_png(job.png, rgb)
        written.append(job.png)
        skipped = False
    image = {"id": job.image_id, "width": int(width), "height": int(height),
             "file_name": f"{job.stem}_leftImg8bit.png"}
    annotation = {"image_id": job.image_id, "file_name": os.path.basename(job.png),
                  "segments_info": seg.info(table)}
    return PanopticFrameResult(source, image, annotation, written, skipped)


def make_jobs(root: str | os.PathLike, gt: str, frame_jobs: Sequence[cs.FrameJob],
              out: str | os.PathLike | None = None, train_ids: bool = False
              ) -> list[PanopticJob]:
    """Wrap :func:`segprep.convert.cityscapes.make_jobs`'s jobs (one per
    ``ROOT/<gt>/<split>/…/*_polygons.json``) with the panoptic output of their split:
    ``(OUT or ROOT)/<gt>/cityscapes_panoptic_<split>[_trainId]/<frame>_<gt>_panoptic.png``."""
    root = Path(root)
    gt_out = (Path(out) if out is not None else root) / gt
    jobs = []
    for fj in frame_jobs:
        path = Path(fj.json_path)
        rel = path.relative_to(root / gt)
        split = rel.parts[0]
        stem = path.name[: -len(cs.POLYGON_SUFFIX)]
        image_id = stem[: -len(f"_{gt}")] if stem.endswith(f"_{gt}") else stem
        png = gt_out / split_basename(split, train_ids) / f"{stem}_{PANOPTIC_SUFFIX}.png"
        order = str(rel.parent / f"{stem}_instanceIds.png")
        jobs.append(PanopticJob(fj, split, str(png), image_id, stem, order, train_ids))
    return jobs


def split_json_path(root: str | os.PathLike, gt: str, split: str, out: str | os.PathLike | None
                    = None, train_ids: bool = False) -> Path:
    """``(OUT or ROOT)/<gt>/cityscapes_panoptic_<split>[_trainId].json``."""
    return (Path(out) if out is not None else Path(root)) / gt / (
        split_basename(split, train_ids) + ".json")


def split_document(results: Sequence[tuple[PanopticJob, PanopticFrameResult]],
                   class_map: ClassMap | None = None, train_ids: bool = False) -> dict:
    """The split JSON's document from its frames' results (any order; sorted here as
    cityscapesScripts sorts its file list)."""
    if class_map is None:
        class_map = class_maps.load(results[0][0].frame.class_map if results else "cityscapes")
    table = panoptic_table(class_map, train_ids)
    ordered = sorted(results, key=lambda jr: jr[0].order)
    return {"images": [r.image for _j, r in ordered],
            "annotations": [r.annotation for _j, r in ordered],
            "categories": [dict(c) for c in table.categories]}


def write_split_json(path: str | os.PathLike, document: dict) -> None:
    """Write a split document atomically, formatted as cityscapesScripts' ``json.dump(d, f,
    sort_keys=True, indent=4)`` (byte-identical for the same data)."""
    atomic_write_text(path, json.dumps(document, sort_keys=True, indent=4))


def group_by_split(outcomes: Sequence) -> dict[str, tuple[list, int]]:
    """Outcomes of :func:`convert_frame` (``run_batch`` ``Outcome`` objects, any order)
    grouped by split: ``split -> ([(job, result) of the frames that succeeded], failed count)``,
    splits in first-seen order."""
    groups: dict[str, tuple[list, int]] = {}
    for o in outcomes:
        ok, failed = groups.get(o.item.split, ([], 0))
        if o.ok:
            ok.append((o.item, o.value))
        else:
            failed += 1
        groups[o.item.split] = (ok, failed)
    return groups
