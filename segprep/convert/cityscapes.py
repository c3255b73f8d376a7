"""Cityscapes ground truth: ``*_gtFine_polygons.json`` → labelIds, trainIds, color and instance PNGs.

Two sources per frame:

* ``official``: the released ``*_labelIds.png`` / ``*_instanceIds.png`` next to the JSON; every
  other target is a lookup-table image of them. 100 % faithful to the official release.
* ``polygons``: the JSON rasterised with :func:`segprep.convert.raster.rasterize` (``official``
  rule: bit-identical to the released PNGs; ``pillow``: bit-identical to cityscapesScripts with the
  installed Pillow).

Object rules (cityscapesScripts ``preparation/json2labelImg.py`` and ``json2instanceImg.py``):
objects are painted in JSON order, later over earlier; ``deleted`` objects are skipped; a label
unknown to the table but ending in ``group`` is drawn as its base label (and is not an instance);
labels with id < 0 (``license plate``) are skipped; instance ids are ``id * 1000 + k`` for classes
with instances, ``k`` counting that label's non-group objects from 0; the background is
``unlabeled`` (id 0, trainId 255, color black). The instanceTrainIds target uses trainIds in place
of ids and does not number classes whose trainId is 255 (as ``json2instanceImg`` with
``encoding="trainIds"``).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from segprep import class_maps
from segprep.class_maps import IGNORE_INDEX, ClassMap
from segprep.datasets.cityscapes import POLYGON_SUFFIX
from segprep.errors import SegprepError
from segprep.io import check_size, read_bytes, read_png, scratch, write_png

TARGETS: dict[str, str] = {
    "labelIds": "labelIds",
    "trainIds": "labelTrainIds",
    "color": "color",
    "instanceIds": "instanceIds",
    "instanceTrainIds": "instanceTrainIds",
}
"""Target name → file-name suffix (``<frame>_<gt>_<suffix>.png``), the official naming scheme."""

SOURCES = ("auto", "polygons")
INSTANCE_TARGETS = ("instanceIds", "instanceTrainIds")

#: how far (in pixels, as a fraction of the image size) a vertex may lie outside the image before
#: the polygon counts as out of bounds; real gtFine polygons overshoot by up to 7 px.
OUT_OF_BOUNDS_TOLERANCE = 0.05


# ----------------------------------------------------------------------------- annotations
@dataclass(frozen=True)
class CsObject:
    """One drawable object of a Cityscapes JSON.

    Attributes:
        label: the table's label name (``*group`` already mapped to its base label).
        is_group: the JSON label was ``<label>group``.
        polygon: ``(K, 2)`` float64 vertices ``(x, y)`` in pixels, as stored.
    """

    label: str
    is_group: bool
    polygon: np.ndarray


@dataclass(frozen=True)
class CsAnnotation:
    """A parsed ``*_polygons.json``: image size and the objects that are drawn, in JSON order."""

    width: int
    height: int
    objects: tuple[CsObject, ...]


def load_annotation(path: str | os.PathLike, class_map: ClassMap | None = None) -> CsAnnotation:
    """Parse and validate a Cityscapes polygon JSON.

    Deleted objects and objects whose label id is negative are dropped (they are never drawn).

    Args:
        path: the ``*_polygons.json`` file.
        class_map: label table (default: ``cityscapes``).

    Raises:
        SegprepError: missing or malformed JSON, missing keys, unknown label, a polygon that is not
            a list of ``[x, y]`` pairs, or a vertex far outside the image (see
            :data:`OUT_OF_BOUNDS_TOLERANCE`).
    """
    import orjson

    cm = class_map or class_maps.load("cityscapes")
    raw = read_bytes(path)
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise SegprepError(path, f"malformed JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise SegprepError(path, f"not a Cityscapes polygon file: expected a JSON object, got "
                                 f"{type(doc).__name__}")
    try:
        width, height = int(doc["imgWidth"]), int(doc["imgHeight"])
        raw_objects = doc["objects"]
    except KeyError as exc:
        raise SegprepError(path, f"not a Cityscapes polygon file: no key {exc}") from None
    except (TypeError, ValueError, OverflowError):
        raise SegprepError(path, f"imgWidth/imgHeight must be integers, got "
                                 f"{doc['imgWidth']!r}x{doc['imgHeight']!r}") from None
    if width <= 0 or height <= 0:
        raise SegprepError(path, f"bad image size {width}x{height}")
    check_size(path, width, height)  # before any allocation: a typo'd imgWidth is no OOM
    if not isinstance(raw_objects, list):
        raise SegprepError(path, f"'objects' must be a list, got {type(raw_objects).__name__}")
    names = set(cm.names)
    kept: list[tuple[int, str, bool, object]] = []  # (object index, label, is_group, polygon)
    for n, obj in enumerate(raw_objects):
        try:
            label = obj["label"]
            poly = obj["polygon"]
        except (KeyError, TypeError):
            raise SegprepError(path, f"object {n}: missing 'label' or 'polygon'") from None
        if obj.get("deleted"):
            continue
        is_group = False
        if label not in names and isinstance(label, str) and label.endswith("group"):
            label, is_group = label[: -len("group")], True
        if label not in names:
            raise SegprepError(path, f"object {n}: unknown label {obj['label']!r}")
        if cm.ids[cm.index_of(label)] < 0:
            continue
        kept.append((n, label, is_group, poly))
    polygons = _polygon_arrays(path, kept, width, height)
    objects = [CsObject(label, is_group, pts) for (_n, label, is_group, _p), pts
               in zip(kept, polygons)]
    return CsAnnotation(width, height, tuple(objects))


def _polygon_arrays(path: str | os.PathLike, kept: Sequence[tuple[int, str, bool, object]],
                    width: int, height: int) -> list[np.ndarray]:
    """The ``(K, 2)`` float64 vertex arrays of the kept objects, checked all at once.

    Fast path: every vertex of the frame goes through one ``np.asarray`` and one bounds check
    (about 20x faster than per object on real frames). When that fails, the objects are checked
    one by one so that the error names the first bad object.

    Raises:
        SegprepError: a polygon that is not a non-empty list of finite ``[x, y]`` pairs, or a
            vertex more than :data:`OUT_OF_BOUNDS_TOLERANCE` outside the image.
    """
    if not kept:
        return []
    tol_x, tol_y = OUT_OF_BOUNDS_TOLERANCE * width, OUT_OF_BOUNDS_TOLERANCE * height
    try:
        lengths = [len(p) for _n, _l, _g, p in kept]  # type: ignore[arg-type]
        flat = np.asarray([v for _n, _l, _g, p in kept for v in p],  # type: ignore[attr-defined]
                          dtype=np.float64)
        ok = (min(lengths) > 0 and flat.ndim == 2 and flat.shape[1] == 2
              and bool(np.isfinite(flat).all())
              and flat[:, 0].min() >= -tol_x and flat[:, 0].max() <= width - 1 + tol_x
              and flat[:, 1].min() >= -tol_y and flat[:, 1].max() <= height - 1 + tol_y)
    except (TypeError, ValueError):
        ok = False
    if ok:
        return np.split(flat, np.cumsum(lengths)[:-1])
    for n, label, _g, poly in kept:  # slow path: find the first bad object
        try:
            pts = np.asarray(poly, dtype=np.float64)
        except (TypeError, ValueError):
            raise SegprepError(path, f"object {n} ({label}): polygon is not a list of [x, y]") from None
        if pts.ndim != 2 or pts.shape[1] != 2 or pts.shape[0] == 0 or not np.isfinite(pts).all():
            raise SegprepError(path, f"object {n} ({label}): polygon is not a list of [x, y]")
        if (pts[:, 0].min() < -tol_x or pts[:, 0].max() > width - 1 + tol_x
                or pts[:, 1].min() < -tol_y or pts[:, 1].max() > height - 1 + tol_y):
            raise SegprepError(
                path, f"object {n} ({label}): polygon out of bounds (x {pts[:, 0].min():g}.."
                      f"{pts[:, 0].max():g}, y {pts[:, 1].min():g}..{pts[:, 1].max():g} "
                      f"for a {width}x{height} image)")
    raise SegprepError(path, "polygons could not be read")  # pragma: no cover - defensive


# ----------------------------------------------------------------------------- lookup tables
@dataclass(frozen=True, eq=False)
class _Luts:
    """65536-entry LUTs over instanceIds values (``id`` or ``id*1000+k``)."""

    label: np.ndarray  # uint8: instance value -> label id
    inst_train: np.ndarray  # uint16: instance value -> instanceTrainIds value
    valid: np.ndarray  # bool (65536,): value can occur in an official instanceIds PNG
    valid_label: np.ndarray  # bool (256,): label id in the table
    max_contiguous_id: int  # ids 0..max_contiguous_id are all in the table


@functools.lru_cache(maxsize=8)
def _luts(cm: ClassMap) -> _Luts:
    values = np.arange(65536, dtype=np.int64)
    is_inst = values >= 1000
    label = np.where(is_inst, values // 1000, values)
    label_u8 = np.where(label < 256, label, 0).astype(np.uint8)
    valid_label = np.zeros(256, bool)
    valid_label[cm.valid_ids[cm.valid_ids < 256]] = True
    has_inst = np.zeros(256, bool)
    has_inst[cm.ids[(cm.ids >= 0) & cm.has_instances]] = True
    valid = (label < 256) & valid_label[label_u8] & (~is_inst | has_inst[label_u8])
    train = cm.id_to_train_id[label_u8]
    inst_train = np.where(is_inst & (train != IGNORE_INDEX),
                          train.astype(np.int64) * 1000 + values % 1000, train).astype(np.uint16)
    max_contiguous = int(np.argmin(valid_label)) - 1 if not valid_label.all() else 255
    return _Luts(label_u8, inst_train, valid, valid_label, max_contiguous)


def _lut8(labels: np.ndarray, lut: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``lut[labels]`` for a uint8 image and a 256-entry uint8 LUT (OpenCV: ~8x numpy's speed),
    into ``out`` when given."""
    import cv2

    return cv2.LUT(np.ascontiguousarray(labels), np.ascontiguousarray(lut), dst=out)


def _rgba(labels: np.ndarray, cm: ClassMap) -> np.ndarray:
    """``(H, W, 4)`` uint8 RGBA color image of a labelIds image (alpha 255), as the official
    ``*_color.png``."""
    out = np.empty(labels.shape + (4,), np.uint8)
    for c in range(3):
        out[..., c] = _lut8(labels, cm.id_colors[:, c])
    out[..., 3] = 255
    return out


def targets_from_label_ids(label_ids: np.ndarray, instance_ids: np.ndarray | None,
                           targets: Iterable[str], class_map: ClassMap | None = None, *,
                           reuse: bool = False) -> dict[str, np.ndarray]:
    """Derive target images from an (official) labelIds image and, if given, instanceIds image.

    Args:
        label_ids: ``(H, W)`` uint8 labelIds.
        instance_ids: ``(H, W)`` uint16 instanceIds (needed for instance targets).
        targets: names from :data:`TARGETS`.
        class_map: label table (default ``cityscapes``).
        reuse: write trainIds into this thread's scratch array (:func:`segprep.io.scratch`).

    Returns:
        target → array: labelIds/trainIds ``(H, W)`` uint8, color ``(H, W, 4)`` uint8 RGBA,
        instanceIds/instanceTrainIds ``(H, W)`` uint16.
    """
    cm = class_map or class_maps.load("cityscapes")
    luts = _luts(cm) if instance_ids is not None else None
    out: dict[str, np.ndarray] = {}
    for t in targets:
        if t == "labelIds":
            out[t] = label_ids
        elif t == "trainIds":
            out[t] = _lut8(label_ids, cm.id_to_train_id,
                           scratch("cs_train_ids", label_ids.shape, np.uint8) if reuse else None)
        elif t == "color":
            out[t] = _rgba(label_ids, cm)
        elif t in INSTANCE_TARGETS:
            if instance_ids is None or luts is None:
                raise ValueError(f"target {t!r} needs the instanceIds image")
            out[t] = (instance_ids if t == "instanceIds"
                      else np.take(luts.inst_train, instance_ids))
        else:
            raise ValueError(f"unknown target {t!r}")
    return out


def instance_values(ann: CsAnnotation, class_map: ClassMap | None = None) -> np.ndarray:
    """Per object of ``ann``, its instanceIds value (``id * 1000 + k`` or ``id``), int64 ``(N,)``."""
    cm = class_map or class_maps.load("cityscapes")
    counters: dict[str, int] = {}
    values = np.empty(len(ann.objects), np.int64)
    for n, obj in enumerate(ann.objects):
        row = cm.index_of(obj.label)
        lid = int(cm.ids[row])
        if cm.has_instances[row] and not obj.is_group:
            k = counters.get(obj.label, 0)
            counters[obj.label] = k + 1
            lid = lid * 1000 + k
        values[n] = lid
    return values


def rasterize_annotation(ann: CsAnnotation, targets: Iterable[str], raster: str = "official",
                         class_map: ClassMap | None = None) -> dict[str, np.ndarray]:
    """Rasterise an annotation into the requested target images.

    All targets come from one drawing: the objects are painted with their label ids or, when an
    instance target is asked for, their instanceIds values, from which every target is a lookup (the
    filled geometry does not depend on the value painted).

    Args:
        ann: a parsed annotation (:func:`load_annotation`).
        targets: names from :data:`TARGETS`.
        raster: ``official`` (reproduces the released PNGs) or ``pillow`` (as cityscapesScripts).
        class_map: label table (default ``cityscapes``).

    Returns:
        target → array, as :func:`targets_from_label_ids`.
    """
    from segprep.convert.raster import rasterize

    cm = class_map or class_maps.load("cityscapes")
    targets = list(targets)
    need_inst = any(t in INSTANCE_TARGETS for t in targets)
    if targets and set(targets) == {"trainIds"}:
        # paint trainIds straight away: the filled geometry does not depend on the value painted,
        # so this equals the labelIds drawing mapped through id -> trainId, one pass less
        lut = cm.id_to_train_id
        values = np.array([lut[cm.ids[cm.index_of(o.label)]] for o in ann.objects], np.int64)
        painted = rasterize([o.polygon for o in ann.objects], values, ann.height, ann.width,
                            background=int(lut[0]), method=raster, dtype=np.uint8)
        return {"trainIds": painted}
    if need_inst:
        values = instance_values(ann, cm)
    else:
        values = np.array([cm.ids[cm.index_of(o.label)] for o in ann.objects], np.int64)
    painted = rasterize([o.polygon for o in ann.objects], values, ann.height, ann.width,
                        background=0, method=raster, dtype=np.int32 if need_inst else np.uint8)
    if need_inst:
        inst = painted.astype(np.uint16)
        label_ids = np.take(_luts(cm).label, inst)
    else:
        inst, label_ids = None, painted
    out = targets_from_label_ids(label_ids, inst, targets, cm)
    return {t: out[t] for t in targets}


def read_official(json_path: str | os.PathLike, ann_size: tuple[int, int], need_instances: bool,
                  class_map: ClassMap | None = None, *, reuse: bool = False
                  ) -> tuple[np.ndarray, np.ndarray | None]:
    """Read and check the official ``*_labelIds.png`` (and ``*_instanceIds.png``) beside a JSON.

    Args:
        json_path: the ``*_polygons.json`` path.
        ann_size: ``(width, height)`` from the JSON.
        need_instances: also read instanceIds.
        reuse: decode into this thread's scratch arrays (:func:`segprep.io.scratch`; the
            result is overwritten by the next call in the same thread).

    Returns:
        ``(label_ids, instance_ids)``: ``(H, W)`` uint8 and ``(H, W)`` uint16 (or None).

    Raises:
        SegprepError: unreadable PNG, wrong mode, size differing from the JSON, unknown ids.
    """
    cm = class_map or class_maps.load("cityscapes")
    luts = _luts(cm)
    base = str(json_path)[: -len(POLYGON_SUFFIX)]
    lab_path = f"{base}_labelIds.png"
    width, height = ann_size
    label_ids = read_png(lab_path, scratch("cs_label_ids", (height, width), np.uint8)
                         if reuse else None)
    _check_image(lab_path, label_ids, np.uint8, ann_size)
    if label_ids.max() > luts.max_contiguous_id and not luts.valid_label[label_ids].all():
        bad = label_ids[~luts.valid_label[label_ids]]
        vals, counts = np.unique(bad, return_counts=True)
        raise SegprepError(lab_path, f"unknown label id {int(vals[0])} ({int(counts[0])} px)")
    inst = None
    if need_instances:
        inst_path = f"{base}_instanceIds.png"
        inst = read_png(inst_path, scratch("cs_instance_ids", (height, width), np.uint16)
                        if reuse else None)
        _check_image(inst_path, inst, np.uint16, ann_size)
        if not luts.valid[inst].all():
            vals, counts = np.unique(inst[~luts.valid[inst]], return_counts=True)
            raise SegprepError(inst_path, f"invalid instance id {int(vals[0])} ({int(counts[0])} px)")
    return label_ids, inst


def _check_image(path: str, arr: np.ndarray, dtype: type, size: tuple[int, int]) -> None:
    if arr.ndim != 2 or arr.dtype != dtype:
        kind = "8-bit" if dtype == np.uint8 else "16-bit"
        raise SegprepError(path, f"expected a single-channel {kind} PNG, got shape {arr.shape} "
                                 f"{arr.dtype}")
    if (arr.shape[1], arr.shape[0]) != size:
        raise SegprepError(path, f"size {arr.shape[1]}x{arr.shape[0]} differs from the JSON's "
                                 f"{size[0]}x{size[1]}")


# ----------------------------------------------------------------------------- batch job
@dataclass(frozen=True)
class FrameJob:
    """Everything one worker needs to convert one frame (picklable)."""

    json_path: str
    out_base: str  # output path prefix: <dir>/<frame>_<gt>
    targets: tuple[str, ...]
    source: str = "auto"
    raster: str = "official"
    overwrite: bool = False
    class_map: str = "cityscapes"

    def output(self, target: str) -> str:
        return f"{self.out_base}_{TARGETS[target]}.png"

    @property
    def where(self) -> str:
        """The input file, as error lines name it."""
        return self.json_path


@dataclass
class GenGtResult:
    """What :func:`convert_frame` did: source used (``official``/``polygons``) or skipped."""

    source: str
    written: list[str] = field(default_factory=list)
    skipped: bool = False


def convert_frame(job: FrameJob) -> GenGtResult:
    """Convert one frame: write every target of ``job`` that is missing (or all, with overwrite).

    ``auto`` source reads the official PNGs when they are beside the JSON (and checks them against
    the JSON's size), otherwise rasterises. Outputs are written atomically.

    Raises:
        SegprepError: any bad input (see :func:`load_annotation` and :func:`read_official`).
    """
    todo = [t for t in job.targets if job.overwrite or not os.path.exists(job.output(t))]
    if not todo:
        return GenGtResult(source="", skipped=True)
    cm = class_maps.load(job.class_map)
    ann = load_annotation(job.json_path, cm)
    base = job.json_path[: -len(POLYGON_SUFFIX)]
    need_inst = any(t in INSTANCE_TARGETS for t in todo)
    use_official = job.source == "auto" and os.path.exists(f"{base}_labelIds.png") and (
        not need_inst or os.path.exists(f"{base}_instanceIds.png"))
    if use_official:
        # scratch arrays: the images are encoded and written below, before this thread's next frame
        label_ids, inst = read_official(job.json_path, (ann.width, ann.height), need_inst, cm,
                                        reuse=True)
        images = targets_from_label_ids(label_ids, inst, todo, cm, reuse=True)
        source = "official"
    else:
        images = rasterize_annotation(ann, todo, job.raster, cm)
        source = "polygons"
    result = GenGtResult(source=source)
    for t in todo:
        out = job.output(t)
        if source == "official" and os.path.abspath(out) == os.path.abspath(
                f"{base}_{TARGETS[t]}.png") and t in ("labelIds", "instanceIds"):
            continue  # the official file itself: nothing to write
        write_png(out, images[t])
        result.written.append(out)
    return result


def make_jobs(root: str | os.PathLike, files: Sequence[Path], targets: Sequence[str],
              out: str | os.PathLike | None = None, **kwargs) -> list[FrameJob]:
    """One :class:`FrameJob` per JSON; ``out`` mirrors the layout below ``root`` (default in place).

    Keyword arguments are passed to :class:`FrameJob` (``source``, ``raster``, ``overwrite``).
    """
    root = Path(root)
    jobs = []
    for f in files:
        stem = f.name[: -len(POLYGON_SUFFIX)]
        folder = f.parent if out is None else Path(out) / f.parent.relative_to(root)
        jobs.append(FrameJob(str(f), str(folder / stem), tuple(targets), **kwargs))
    return jobs
