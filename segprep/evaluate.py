"""Evaluate predictions against ground truth: Cityscapes (cityscapesScripts' pixel-level protocol),
BDD100K (the bdd100k toolkit's ``eval.seg``) and any ``.odgt`` manifest.

How a frame is scored: the ground truth of the frame becomes a *code map* — one small integer per
pixel naming its ``(ground-truth value, instance id)`` pair — and one joint histogram
``codes × prediction`` (:func:`segprep.evaluate_kernels.joint_histogram`) gives the confusion
matrix and, for Cityscapes, every per-instance count of iIoU. Code maps are cached on disk
(``--cache``, keyed by each ground-truth file's path, mtime and size), so that evaluating many
checkpoints against one validation set decodes only the predictions.

Protocols, and their sources:

* Cityscapes: mcordts/cityscapesScripts 2.3.0 ``evaluation/evalPixelLevelSemanticLabeling.py``.
  Ground truth ``<root>/gtFine/<split>/<city>/*_gtFine_labelIds.png`` and
  ``*_gtFine_instanceIds.png``; each ground-truth frame ``<city>_<seq>_<frame>`` takes the one
  prediction file under ``--pred`` (searched recursively) named ``<city>_<seq>_<frame>*.png``.
  Predictions hold labelIds (0..33) or, with ``pred_ids="trainIds"``, trainIds (0..18, 255), which
  are mapped to labelIds (255 → 0 ``unlabeled``) before scoring. Scores, JSON keys and numbers as
  cityscapesScripts (see :class:`segprep.metrics.CityscapesProtocol`).
* BDD100K: bdd100k/bdd100k ``bdd100k/eval/seg.py``: ground-truth trainId masks (0..18, 255
  ignore), predictions matched by file stem, a prediction >= 19 is a miss, a missing prediction
  counts all its pixels as misses (see :func:`segprep.metrics.bdd100k_scores`).
* odgt: the masks of a manifest (``fpath_segm``) against predictions named after each image's stem;
  K classes, ``ignore_index``; scores of :func:`segprep.metrics.scores`.

Predictions are single-channel PNGs (8-bit gray; palette PNGs are read as their indices, as PIL
gives them to both reference tools; 16-bit gray is accepted). An RGB prediction, a value that is
not a label, a size that differs from the ground truth or a damaged file is reported on one line
naming the file (and value and pixel count) — never a crash (cityscapesScripts issues #66, #79).
"""

from __future__ import annotations

import bisect
import hashlib
import json
import os
import struct
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from segprep import class_maps
from segprep.class_maps import IGNORE_INDEX, ClassMap
from segprep.errors import SegprepError
from segprep.evaluate_kernels import decode_label_png, joint_histogram, pair_codes
from segprep.io import Outcome, default_jobs, find_files, read_label
from segprep.metrics import (CityscapesProtocol, InstanceStats, bdd100k_scores, class_precision,
                             class_recall, scores)

try:
    import imagecodecs as _ic
except ImportError:  # pragma: no cover
    _ic = None

PathLike = str | os.PathLike

INSTANCE_MIN = 1000
"""Instance ids ``> INSTANCE_MIN`` are instances (cityscapesScripts: ``instanceNp > 1000``; an
instance id is ``label_id * 1000 + k``)."""

PRED_IDS = ("labelIds", "trainIds")
MISSING = ("error", "miss")

CACHE_VERSION = 1
_CACHE_MAGIC = b"SEGPREP-GT\x00"


def default_cache_dir() -> Path:
    """Where ground-truth code maps are cached by default: ``$XDG_CACHE_HOME/segprep/eval-gt``
    (``~/.cache/segprep/eval-gt``)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "segprep" / "eval-gt"


# =========================================================================== ground truth codes
@dataclass
class GtCodes:
    """A ground-truth frame as a code map.

    Attributes:
        codes: ``(H, W)`` uint8 (uint16 when more than 256 pairs) code per pixel.
        values: ``(M,)`` int64 ground-truth value (label id or trainId) of each code.
        instances: ``(M,)`` int64 instance id of each code (``> 1000``), 0 for no instance.
    """

    codes: np.ndarray
    values: np.ndarray
    instances: np.ndarray

    @property
    def num_codes(self) -> int:
        return int(self.values.size)


def build_codes(values: np.ndarray, instances: np.ndarray | None = None) -> GtCodes:
    """Code map of a ground-truth map (and of its instance map).

    Args:
        values: ``(H, W)`` uint8 or uint16 ground-truth label ids / trainIds.
        instances: optional ``(H, W)`` integer instance ids; ids ``<= 1000`` are "no instance".

    Returns:
        :class:`GtCodes` whose codes enumerate the distinct ``(value, instance)`` pairs (in
        first-seen order).

    Raises:
        ValueError: shapes differ, or a value or instance id is negative or beyond 16 bits.
    """
    values = _as_u16(np.asarray(values), "ground-truth values")
    if instances is not None:
        instances = _as_u16(np.asarray(instances), "instance ids").astype(np.uint16, copy=False)
        if instances.shape != values.shape:
            raise ValueError(f"instance map {instances.shape} and label map {values.shape} differ")
    codes, vals, insts = pair_codes(values, instances, INSTANCE_MIN)
    return GtCodes(codes, vals, insts)


def _as_u16(a: np.ndarray, what: str) -> np.ndarray:
    if a.dtype in (np.uint8, np.uint16):
        return a
    if a.size and (a.min() < 0 or a.max() > 65535):
        raise ValueError(f"{what} must lie in 0..65535")
    return a.astype(np.uint16)


class GtCache:
    """On-disk cache of :class:`GtCodes`, one file per ground-truth frame.

    A file is named by the SHA-1 of its key: the cache version, the protocol and, for every source
    file, its absolute path, mtime (ns) and size; a changed source file is a miss. The codes are
    stored zstd-compressed (``imagecodecs``; zlib where zstd is missing). A damaged or foreign
    cache file is a miss and is rewritten; a cache folder that cannot be written is not an error
    (the frame is decoded every time).

    Args:
        folder: the cache folder, or None for no cache.
    """

    def __init__(self, folder: PathLike | None):
        self.folder = Path(folder) if folder is not None else None
        self.hits = 0
        self.misses = 0
        self.write_errors = 0
        self._lock = threading.Lock()

    @staticmethod
    def key(kind: str, files: Sequence[PathLike]) -> str:
        parts = [f"v{CACHE_VERSION}", kind]
        for f in files:
            st = os.stat(f)
            parts.append(f"{os.path.abspath(f)}|{st.st_mtime_ns}|{st.st_size}")
        return "\n".join(parts)

    def get(self, kind: str, files: Sequence[PathLike], build: Callable[[], GtCodes]) -> GtCodes:
        """The cached codes of ``files`` (built with ``build`` and stored on a miss).

        Raises:
            SegprepError: a source file is missing (from ``os.stat`` or ``build``).
        """
        if self.folder is None:
            return build()
        try:
            key = self.key(kind, files)
        except FileNotFoundError as exc:
            raise SegprepError(exc.filename, "no such file") from None
        path = self.folder / (hashlib.sha1(key.encode()).hexdigest() + ".gt")
        codes = _load_cached(path, key)
        if codes is not None:
            with self._lock:
                self.hits += 1
            return codes
        codes = build()
        with self._lock:
            self.misses += 1
        try:
            from segprep.io import atomic_write_bytes

            atomic_write_bytes(path, _dump_cached(codes, key))
        except OSError:
            with self._lock:
                self.write_errors += 1
        return codes


def _compress(buf: bytes) -> tuple[str, bytes]:
    if _ic is not None and getattr(_ic, "ZSTD", None) is not None and _ic.ZSTD.available:
        return "zstd", bytes(_ic.zstd_encode(buf, level=3))
    import zlib

    return "zlib", zlib.compress(buf, 1)


def _decompress(codec: str, data: bytes, size: int) -> bytes:
    if codec == "zstd":
        return _ic.zstd_decode(data, out=size)
    import zlib

    return zlib.decompress(data)


def _dump_cached(c: GtCodes, key: str) -> bytes:
    codec, payload = _compress(np.ascontiguousarray(c.codes).tobytes())
    header = json.dumps({"key": key, "shape": list(c.codes.shape), "dtype": c.codes.dtype.str,
                         "values": c.values.tolist(), "instances": c.instances.tolist(),
                         "codec": codec}).encode()
    return _CACHE_MAGIC + struct.pack("<I", len(header)) + header + payload


def _load_cached(path: Path, key: str) -> GtCodes | None:
    try:
        with open(path, "rb") as fh:
            data = fh.read()
        if not data.startswith(_CACHE_MAGIC):
            return None
        n = len(_CACHE_MAGIC)
        (hlen,) = struct.unpack_from("<I", data, n)
        header = json.loads(data[n + 4:n + 4 + hlen])
        if header.get("key") != key:
            return None
        dtype = np.dtype(header["dtype"])
        shape = tuple(header["shape"])
        size = int(np.prod(shape)) * dtype.itemsize
        raw = _decompress(header["codec"], data[n + 4 + hlen:], size)
        if len(raw) != size:
            return None
        values = np.array(header["values"], np.int64)
        instances = np.array(header["instances"], np.int64)
        if values.size != instances.size or dtype not in (np.uint8, np.uint16):
            return None
        return GtCodes(np.frombuffer(raw, dtype).reshape(shape), values, instances)
    except (OSError, ValueError, KeyError, TypeError, struct.error, RuntimeError):
        return None
    except Exception:  # a codec error from a damaged file: rebuild it
        return None


# =========================================================================== reading labels
def read_label_map(path: PathLike) -> np.ndarray:
    """Read a single-channel label PNG (ground truth or prediction).

    Returns:
        ``(H, W)`` uint8 or uint16 samples (palette PNGs: their indices).

    Raises:
        SegprepError: missing, damaged, or not single-channel (RGB/RGBA/gray+alpha).
    """
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except FileNotFoundError:
        raise SegprepError(path, "no such file") from None
    except IsADirectoryError:
        raise SegprepError(path, "is a directory, expected a PNG file") from None
    except OSError as exc:
        raise SegprepError(path, f"cannot read: {exc.strerror or exc}") from None
    is_png = data[:4] == b"\x89PNG"
    decoded = decode_label_png(data, str(path)) if is_png else None
    if decoded is not None:
        return decoded[0]
    try:
        arr, _palette = read_label(path)
    except SegprepError:
        if is_png:
            raise
        raise SegprepError(path, "not a PNG file (nor an image Pillow can read)") from None
    if arr.ndim == 3:
        kind = {2: "gray+alpha", 3: "RGB", 4: "RGBA"}.get(arr.shape[2], f"{arr.shape[2]}-channel")
        raise SegprepError(path, f"is a {kind} image ({arr.shape[2]} channels); expected a "
                                 "single-channel PNG of class ids")
    if arr.ndim != 2:
        raise SegprepError(path, f"unexpected image shape {arr.shape}")
    if arr.dtype == bool:
        arr = arr.astype(np.uint8)
    if arr.dtype not in (np.uint8, np.uint16):
        if arr.size and (arr.min() < 0 or arr.max() > 65535):
            raise SegprepError(path, f"unsupported sample type {arr.dtype}")
        arr = arr.astype(np.uint16)
    return arr


def _describe_values(counts: dict[int, int], limit: int = 6) -> str:
    items = sorted(counts.items(), key=lambda kv: -kv[1])
    text = ", ".join(f"{v} ({n} px)" for v, n in items[:limit])
    if len(items) > limit:
        text += f", … ({len(items) - limit} more)"
    return text


def value_ranges(values: np.ndarray) -> str:
    """``[0, 1, 2, 5, 255]`` → ``"0-2, 5, 255"``."""
    vals = sorted(int(v) for v in values)
    out = []
    i = 0
    while i < len(vals):
        j = i
        while j + 1 < len(vals) and vals[j + 1] == vals[j] + 1:
            j += 1
        out.append(f"{vals[i]}-{vals[j]}" if j > i else str(vals[i]))
        i = j + 1
    return ", ".join(out)


def _prediction_histogram(gt: GtCodes, pred: np.ndarray, pred_path: PathLike, gt_path: PathLike
                          ) -> np.ndarray:
    """``(M, 256)`` joint histogram; a 16-bit prediction's values above 255 go to column 255 after
    the caller's validity check (they are reported there)."""
    if pred.shape != gt.codes.shape:
        raise SegprepError(pred_path, f"size {pred.shape[1]}x{pred.shape[0]} differs from the "
                                      f"ground truth {gt_path} ({gt.codes.shape[1]}x"
                                      f"{gt.codes.shape[0]})")
    if pred.dtype != np.uint8:
        pred = np.minimum(pred, 255).astype(np.uint8)
    return joint_histogram(gt.codes, pred, gt.num_codes)


def _large_values(pred: np.ndarray) -> dict[int, int]:
    """Counts of values > 255 of a 16-bit prediction."""
    if pred.dtype == np.uint8:
        return {}
    big = pred[pred > 255]
    if not big.size:
        return {}
    v, n = np.unique(big, return_counts=True)
    return {int(a): int(b) for a, b in zip(v, n)}


# =========================================================================== frame jobs
@dataclass
class FrameResult:
    """What one frame contributes: a confusion matrix and, for Cityscapes, its instances
    (``(n, 4)`` int64 rows ``label_id, size, tp, category_tp`` in ascending instance id)."""

    confusion: np.ndarray
    instances: np.ndarray | None = None
    missing: bool = False


@dataclass
class CityscapesJob:
    """Evaluate one Cityscapes frame (a picklable callable of the frame's paths)."""

    protocol: CityscapesProtocol
    pred_ids: str
    cache: GtCache

    def __post_init__(self) -> None:
        cmap = self.protocol.class_map
        self.allowed = np.zeros(256, bool)
        self.col_map = np.arange(256)
        if self.pred_ids == "trainIds":
            tids = cmap.train_ids[(cmap.train_ids >= 0)]
            self.allowed[np.unique(tids)] = True  # includes 255 where the table has it
            self.allowed[IGNORE_INDEX] = True
            self.col_map = cmap.train_id_to_id.astype(np.int64)
            self.valid_text = f"trainIds {value_ranges(np.flatnonzero(self.allowed))}"
        else:
            self.allowed[np.array(self.protocol.eval_ids)] = True
            self.valid_text = f"labelIds {value_ranges(np.array(self.protocol.eval_ids))}"
        self.cat_cols = {cat: np.array(ids, np.int64)
                         for cat, ids in self.protocol.inst_categories.items()}

    def gt_codes(self, label_path: PathLike, inst_path: PathLike) -> GtCodes:
        def build() -> GtCodes:
            lab = read_label_map(label_path)
            inst = read_label_map(inst_path)
            if inst.shape != lab.shape:
                raise SegprepError(inst_path, f"size {inst.shape[1]}x{inst.shape[0]} differs from "
                                              f"{label_path}")
            return build_codes(lab, inst)

        return self.cache.get("cityscapes", [label_path, inst_path], build)

    def __call__(self, item: tuple[str, str, str]) -> FrameResult:
        label_path, inst_path, pred_path = item
        p = self.protocol
        gt = self.gt_codes(label_path, inst_path)
        pred = read_label_map(pred_path)
        hist = _prediction_histogram(gt, pred, pred_path, label_path)
        cols = hist.sum(0)
        big = _large_values(pred)  # 16-bit values > 255, counted in column 255 by the histogram
        own = cols.copy()
        own[255] -= sum(big.values())
        bad = {int(v): int(own[v]) for v in np.flatnonzero((own > 0) & ~self.allowed)}
        bad.update(big)
        if bad:
            raise SegprepError(pred_path, f"invalid {self.pred_ids} value(s) "
                                          f"{_describe_values(bad)}; valid: {self.valid_text}")
        if self.pred_ids == "trainIds":
            mapped = np.zeros_like(hist)
            for v in np.flatnonzero(cols):
                mapped[:, self.col_map[v]] += hist[:, v]
            hist = mapped
        unknown = [int(v) for v in gt.values if v >= p.size or v not in p.names]
        if unknown:
            raise SegprepError(label_path, f"unknown label id(s) {', '.join(map(str, unknown))} in "
                                           "the ground truth")
        cm = np.zeros((p.size, p.size), np.int64)
        np.add.at(cm, gt.values, hist[:, :p.size])
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
        return FrameResult(cm, np.array(rows, np.int64).reshape(-1, 4))


@dataclass
class PlainJob:
    """Evaluate one frame of a trainId ground truth (BDD100K, odgt): a ``(K, K + 1)`` matrix,
    predictions outside ``[0, K)`` in the last column (misses)."""

    num_classes: int
    ignore_index: int
    cache: GtCache

    def gt_codes(self, gt_path: PathLike) -> GtCodes:
        return self.cache.get("plain", [gt_path], lambda: build_codes(read_label_map(gt_path)))

    def __call__(self, item: tuple[str, str | None]) -> FrameResult:
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
            return FrameResult(cm, missing=True)
        pred = read_label_map(pred_path)
        hist = _prediction_histogram(gt, pred, pred_path, gt_path)
        folded = np.zeros((gt.num_codes, k + 1), np.int64)
        folded[:, :k] = hist[:, :k]
        folded[:, k] = hist[:, k:].sum(1)
        cm = np.zeros((k, k + 1), np.int64)
        np.add.at(cm, gt.values[keep], folded[keep])
        return FrameResult(cm)


# =========================================================================== running
def thread_map(fn: Callable[[Any], Any], items: Sequence[Any], *, jobs: int | None = None,
               desc: str = "", quiet: bool = False, unit: str = "frame") -> Iterator[Outcome]:
    """Apply ``fn`` to every item in a pool of threads, in order, with a tqdm progress bar.

    Threads, not processes: the per-frame work (file reads, zlib-ng/zstd inflation, the numba
    kernels) runs without the GIL, and threads start at no cost, which matters for a 500-frame
    evaluation that takes about a second. Exceptions never escape: each item yields an
    :class:`~segprep.io.Outcome` (``SegprepError`` messages as they are, other exceptions with
    their type).
    """
    from tqdm import tqdm

    items = list(items)
    jobs = default_jobs() if not jobs else max(1, jobs)
    bar = tqdm(total=len(items), desc=desc, unit=unit, disable=quiet or not sys.stderr.isatty(),
               dynamic_ncols=True)

    def call(item: Any) -> Outcome:
        try:
            return Outcome(item, fn(item))
        except SegprepError as exc:
            return Outcome(item, error=str(exc))
        except MemoryError:
            return Outcome(item, error=f"{item}: out of memory")
        except Exception as exc:  # a bug or an unexpected library error: report, keep going
            return Outcome(item, error=f"{item}: {type(exc).__name__}: {exc}")

    try:
        if jobs == 1 or len(items) <= 1:
            for item in items:
                out = call(item)
                bar.update(1)
                yield out
            return
        with ThreadPoolExecutor(max_workers=min(jobs, len(items))) as ex:
            for out in ex.map(call, items):
                bar.update(1)
                yield out
    finally:
        bar.close()


@dataclass
class EvalReport:
    """The outcome of an evaluation.

    Attributes:
        protocol: ``"cityscapes"``, ``"bdd100k"`` or ``"odgt"``.
        frames: frames evaluated.
        seconds: wall time of the evaluation (pairing, decoding, counting).
        errors: one line per bad file; when not empty, there are no scores.
        warnings: lines worth telling (missing predictions counted as misses, unmatched files).
        confusion: the accumulated confusion matrix (Cityscapes: ``(34, 34)`` over label ids;
            others ``(K, K + 1)``).
        result: the machine-readable results (Cityscapes: cityscapesScripts' JSON layout;
            BDD100K: the toolkit's keys; odgt: :meth:`segprep.metrics.Scores.to_dict`).
        class_names: names of the evaluated classes, in table order.
        cache: ``{"hits", "misses", "write_errors", "folder"}``.
    """

    protocol: str
    frames: int = 0
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    confusion: np.ndarray | None = None
    result: dict | None = None
    class_names: list[str] = field(default_factory=list)
    cache: dict = field(default_factory=dict)
    eval_ids: list[int] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors and self.result is not None


def _cache_info(cache: GtCache) -> dict:
    return {"folder": str(cache.folder) if cache.folder else None, "hits": cache.hits,
            "misses": cache.misses, "write_errors": cache.write_errors}


# ----------------------------------------------------------------------------------- pairing
def cityscapes_frames(gt_root: PathLike, split: str = "val") -> list[Path]:
    """The ``*_gtFine_labelIds.png`` files of ``<gt_root>/gtFine/<split>/<city>/``, sorted.

    Raises:
        SegprepError: the folder is missing or holds no labelIds files.
    """
    folder = Path(gt_root) / "gtFine" / split
    if not folder.is_dir():
        raise SegprepError(folder, "no such directory (expected <root>/gtFine/<split>/<city>/)")
    files = find_files(folder, "_gtFine_labelIds.png")
    if not files:
        raise SegprepError(folder, "no *_gtFine_labelIds.png files (run `segprep cityscapes "
                                   "gen-gt --targets labelIds,instanceIds` first?)")
    return files


def frame_prefix(path: PathLike) -> str:
    """``<city>_<seq>_<frame>`` of a Cityscapes file name (cityscapesScripts ``getCsFileInfo``).

    Raises:
        SegprepError: the name does not have the Cityscapes form.
    """
    name = Path(path).name
    parts = name.split("_")
    if len(parts) < 4:
        raise SegprepError(path, "not a Cityscapes file name (<city>_<seq>_<frame>_<type>.png)")
    return "_".join(parts[:3])


def match_by_prefix(keys: Sequence[str], files: Sequence[Path], what: str, where: PathLike
                    ) -> list[Path]:
    """For each key, the one file whose name is ``<key>*.png`` (cityscapesScripts'
    ``getPrediction`` pattern), by binary search over the sorted names.

    Raises:
        SegprepError: some key has no file or several (all of them counted in one line).
    """
    files = [f for f in files if f.name.endswith(".png")]
    names = sorted((f.name, str(f)) for f in files)
    just = [n for n, _ in names]
    out: list[Path] = []
    missing: list[str] = []
    multiple: list[str] = []
    for key in keys:
        i = bisect.bisect_left(just, key)
        hits = []
        while i < len(just) and just[i].startswith(key):
            hits.append(names[i][1])
            i += 1
        if not hits:
            missing.append(key)
        elif len(hits) > 1:
            multiple.append(f"{key} ({', '.join(Path(h).name for h in hits[:3])})")
        else:
            out.append(Path(hits[0]))
    problems = []
    if missing:
        problems.append(f"no {what} for {len(missing)} of {len(keys)} frames: "
                        f"{', '.join(missing[:5])}{', …' if len(missing) > 5 else ''}")
    if multiple:
        problems.append(f"several {what}s for {len(multiple)} frames: "
                        f"{'; '.join(multiple[:3])}{'; …' if len(multiple) > 3 else ''}")
    if problems:
        raise SegprepError(where, "; ".join(problems) + " (each frame needs exactly one file "
                                                        "named <city>_<seq>_<frame>*.png)")
    return out


def _cache_for(cache: PathLike | None | bool) -> GtCache:
    if cache is False or cache is None:
        return GtCache(None)
    if cache is True:
        return GtCache(default_cache_dir())
    return GtCache(cache)


# ----------------------------------------------------------------------------------- Cityscapes
def evaluate_cityscapes(pred_dir: PathLike, gt_root: PathLike, split: str = "val", *,
                        pred_ids: str = "labelIds", jobs: int | None = None,
                        cache: PathLike | bool | None = True, quiet: bool = False,
                        class_map: str | ClassMap = "cityscapes") -> EvalReport:
    """Evaluate Cityscapes predictions exactly as cityscapesScripts' evalPixelLevelSemanticLabeling.

    Args:
        pred_dir: folder searched recursively for ``<city>_<seq>_<frame>*.png`` predictions.
        gt_root: Cityscapes root holding
            ``gtFine/<split>/<city>/*_gtFine_{labelIds,instanceIds}.png``.
        split: ``val`` (or ``train``, ``test`` …).
        pred_ids: ``labelIds`` (the official format) or ``trainIds``.
        jobs: threads (default: all cores).
        cache: cache folder, True for :func:`default_cache_dir`, False/None for no cache.
        quiet: no progress bar.
        class_map: the label table (a name or a :class:`ClassMap`).

    Returns:
        an :class:`EvalReport`; ``result`` has cityscapesScripts' JSON keys (``classScores``,
        ``classInstScores``, ``categoryScores``, ``categoryInstScores``, ``averageScore*``,
        ``confMatrix``, ``priors``, ``labels``), fractions in [0, 1].

    Raises:
        SegprepError: bad ``pred_ids``, missing folders, or predictions that do not pair one to one
            with the ground truth (every problem in one line).
    """
    t0 = time.perf_counter()
    if pred_ids not in PRED_IDS:
        raise SegprepError("--pred-ids", f"must be one of {', '.join(PRED_IDS)}, not {pred_ids!r}")
    cmap = class_maps.load(class_map) if isinstance(class_map, str) else class_map
    protocol = CityscapesProtocol(cmap)
    gt_files = cityscapes_frames(gt_root, split)
    pred_files = find_files(pred_dir, ".png")
    preds = match_by_prefix([frame_prefix(f) for f in gt_files], pred_files, "prediction",
                            pred_dir)
    items = [(str(g), str(g).replace("_gtFine_labelIds.png", "_gtFine_instanceIds.png"), str(p))
             for g, p in zip(gt_files, preds)]
    gcache = _cache_for(cache)
    job = CityscapesJob(protocol, pred_ids, gcache)
    report = EvalReport("cityscapes", class_names=[protocol.names[i] for i in protocol.not_ignored],
                        eval_ids=list(protocol.not_ignored))
    unused = len(pred_files) - len(set(preds))
    if unused:
        report.warnings.append(f"{unused} .png file(s) under {pred_dir} match no ground-truth "
                               f"frame of {split} (ignored)")
    cm = np.zeros((protocol.size, protocol.size), np.int64)
    stats = InstanceStats(protocol)
    results: list[FrameResult | None] = []
    for out in thread_map(job, items, jobs=jobs, desc="evaluate", quiet=quiet):
        if out.ok:
            results.append(out.value)
        else:
            report.errors.append(out.error or "")
    if not report.errors:
        for r in results:  # frame order, instances in ascending id: cityscapesScripts' order
            cm += r.confusion
            for label, size, tp, cat_tp in r.instances.tolist():
                stats.add(label, size, tp, cat_tp)
        report.result = protocol.result(cm, stats)
        report.confusion = cm
    report.frames = len(items)
    report.cache = _cache_info(gcache)
    report.seconds = time.perf_counter() - t0
    return report


# ----------------------------------------------------------------------------------- BDD / odgt
def _stem_keys(path: Path, suffixes: Sequence[str] = ()) -> list[str]:
    stem = path.name.rsplit(".", 1)[0]
    keys = [stem]
    for s in suffixes:
        if stem.endswith(s) and len(stem) > len(s):
            keys.append(stem[: -len(s)])
    return keys


def _pair_by_stem(gt_files: Sequence[Path], pred_files: Sequence[Path], gt_suffixes: Sequence[str]
                  ) -> tuple[list[Path | None], list[Path]]:
    """For each ground-truth file, the prediction with the same stem (or the stem without one of
    ``gt_suffixes``); and the predictions left unmatched.

    Raises:
        SegprepError: two predictions share a stem.
    """
    by_stem: dict[str, Path] = {}
    for p in pred_files:
        stem = p.name.rsplit(".", 1)[0]
        if stem in by_stem:
            raise SegprepError(p, f"two predictions named {stem!r}: {by_stem[stem]} and {p}")
        by_stem[stem] = p
    used: set[str] = set()
    out: list[Path | None] = []
    for g in gt_files:
        hit = None
        for key in _stem_keys(g, gt_suffixes):
            if key in by_stem:
                hit = key
                break
        out.append(by_stem[hit] if hit is not None else None)
        if hit is not None:
            used.add(hit)
    return out, [p for s, p in by_stem.items() if s not in used]


def _run_plain(protocol: str, pairs: list[tuple[str, str | None]], num_classes: int,
               ignore_index: int, class_names: list[str], missing: str, jobs: int | None,
               cache: PathLike | bool | None, quiet: bool, t0: float,
               extra_preds: list[Path], pred_dir: PathLike) -> EvalReport:
    gcache = _cache_for(cache)
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
    if extra_preds:
        report.warnings.append(f"{len(extra_preds)} prediction file(s) match no ground truth, "
                               f"e.g. {extra_preds[0]}")
    cm = np.zeros((num_classes, num_classes + 1), np.int64)
    for out in thread_map(job, pairs, jobs=jobs, desc="evaluate", quiet=quiet):
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
    report.cache = _cache_info(gcache)
    report.seconds = time.perf_counter() - t0
    return report


def _finite(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


BDD100K_GT_SUFFIXES = ("_train_id", "_train_ids", "_mask")
"""Suffixes of BDD100K ground-truth stems (2018 release ``<name>_train_id.png``) that predictions
named ``<name>.png`` omit."""


def evaluate_bdd100k(pred_dir: PathLike, gt_dir: PathLike, *, jobs: int | None = None,
                     cache: PathLike | bool | None = True, quiet: bool = False,
                     missing: str = "miss", class_map: str | ClassMap = "bdd100k") -> EvalReport:
    """Evaluate BDD100K semantic segmentation as the bdd100k toolkit's ``eval.seg``.

    Args:
        pred_dir: folder of ``<stem>.png`` trainId predictions (searched recursively).
        gt_dir: folder of ground-truth trainId masks (``<stem>.png`` or ``<stem>_train_id.png``).
        missing: ``miss`` (a missing prediction counts all its pixels as misses, as the toolkit)
            or ``error``.
        class_map: the label table whose train classes are the K = 19 evaluated classes
            (``bdd100k``: the toolkit's ``label.py``).

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
    preds, extra = _pair_by_stem(gt_files, find_files(pred_dir, ".png"), BDD100K_GT_SUFFIXES)
    pairs = [(str(g), str(p) if p is not None else None) for g, p in zip(gt_files, preds)]
    return _run_plain("bdd100k", pairs, len(names), IGNORE_INDEX, names, missing, jobs, cache,
                      quiet, t0, extra, pred_dir)


def _bdd_names(class_map: str | ClassMap) -> list[str]:
    cmap = class_maps.load(class_map) if isinstance(class_map, str) else class_map
    return list(cmap.train_names)


def evaluate_odgt(odgt: PathLike, pred_dir: PathLike, num_classes: int, *,
                  root: PathLike | None = None, ignore_index: int = IGNORE_INDEX,
                  class_map: str | ClassMap | None = None, jobs: int | None = None,
                  cache: PathLike | bool | None = True, quiet: bool = False,
                  missing: str = "error") -> EvalReport:
    """Evaluate predictions for the masks of an ``.odgt`` manifest.

    Each record's prediction is the file ``<image stem>.png`` under ``pred_dir`` (recursively;
    ``<mask stem>.png`` is accepted too). Predictions outside ``[0, K)`` are misses; ground truth
    ``ignore_index`` is not counted.

    Args:
        odgt: the manifest; relative paths resolve against ``root`` (default: its folder).
        num_classes: K.
        class_map: optional label table for class names (its trainIds must be ``0..K-1``).
        missing: ``error`` (default) or ``miss``.

    Returns:
        an :class:`EvalReport` whose ``result`` is :meth:`segprep.metrics.Scores.to_dict` (mIoU
        over classes with a defined IoU, pixel accuracy, mean accuracy, fwIoU, per-class IoU) plus
        per-class accuracy (recall) and precision.

    Raises:
        SegprepError: unreadable manifest, bad K, missing predictions (``missing="error"``).
    """
    from segprep import manifest

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
    pred_files = find_files(pred_dir, ".png")
    by_stem: dict[str, Path] = {}
    for p in pred_files:
        by_stem.setdefault(p.name.rsplit(".", 1)[0], p)
    pairs: list[tuple[str, str | None]] = []
    used = set()
    for r in records:
        hit = None
        for key in (Path(r.fpath_img).name.rsplit(".", 1)[0],
                    Path(r.fpath_segm).name.rsplit(".", 1)[0]):
            if key in by_stem:
                hit = key
                break
        if hit:
            used.add(hit)
        pairs.append((str(manifest.resolve(r.fpath_segm, base)),
                      str(by_stem[hit]) if hit else None))
    extra = [p for s, p in by_stem.items() if s not in used]
    return _run_plain("odgt", pairs, num_classes, ignore_index, names, missing, jobs, cache, quiet,
                      t0, extra, pred_dir)


# =========================================================================== presentation
def class_table(report: EvalReport) -> tuple[list[str], list[list]]:
    """Per-class table of an evaluation: ``(headers, rows)``, scores in percent (NaN: undefined).
    Cityscapes: IoU and iIoU of the 19 evaluated classes; BDD100K: IoU and Acc (precision);
    odgt: IoU and accuracy (recall)."""
    r = report.result or {}
    if report.protocol == "cityscapes":
        return (["class", "IoU %", "iIoU %"],
                [[n, r["classScores"][n] * 100, r["classInstScores"][n] * 100]
                 for n in report.class_names])
    if report.protocol == "bdd100k":
        return (["class", "IoU %", "Acc % (precision)"],
                [[n, r["IoU"][n], r["Acc"][n]] for n in report.class_names])
    return (["class", "IoU %", "Acc %"],
            [[n, _pct(r["classIoU"][n]), _pct(r["classAccuracy"][n])] for n in report.class_names])


def category_table(report: EvalReport) -> tuple[list[str], list[list]]:
    """Per-category table (Cityscapes; categories with a defined IoU), percent."""
    r = report.result or {}
    cats = [c for c in r.get("categoryScores", {}) if not np.isnan(r["categoryScores"][c])]
    return (["category", "IoU %", "iIoU %"],
            [[c, r["categoryScores"][c] * 100, r["categoryInstScores"][c] * 100] for c in cats])


def format_table(table: tuple[list[str], list[list]]) -> str:
    """Plain-text rendering of a :func:`class_table` (numbers with 2 decimals, NaN as ``-``)."""
    headers, rows = table
    cells = [[str(v) if isinstance(v, str) else ("-" if v is None or not np.isfinite(v)
                                                   else f"{v:.2f}") for v in row] for row in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) if cells else len(h)
              for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) if i == 0 else h.rjust(w)
                       for i, (h, w) in enumerate(zip(headers, widths)))]
    lines.append("  ".join("-" * w for w in widths))
    for c in cells:
        lines.append("  ".join(v.ljust(w) if i == 0 else v.rjust(w)
                               for i, (v, w) in enumerate(zip(c, widths))))
    return "\n".join(lines)


def _pct(x: float | None) -> float:
    return float("nan") if x is None else x * 100


def summary_line(report: EvalReport) -> str:
    """One line: the headline numbers, frames, seconds and the cache use."""
    r = report.result or {}
    if report.protocol == "cityscapes":
        head = (f"IoU classes {r['averageScoreClasses'] * 100:.2f}, iIoU classes "
                f"{r['averageScoreInstClasses'] * 100:.2f}, IoU categories "
                f"{r['averageScoreCategories'] * 100:.2f}, iIoU categories "
                f"{r['averageScoreInstCategories'] * 100:.2f}")
    elif report.protocol == "bdd100k":
        head = (f"mIoU {r['mIoU']:.2f}, mAcc {r['mAcc']:.2f}, fIoU {r['fIoU']:.2f}, "
                f"pAcc {r['pAcc']:.2f}")
    else:
        head = (f"mIoU {_pct(r.get('mIoU')):.2f}, pixel acc {_pct(r.get('pixelAccuracy')):.2f}, "
                f"mean acc {_pct(r.get('meanAccuracy')):.2f}, fwIoU {_pct(r.get('fwIoU')):.2f}")
    c = report.cache
    cache = (f"; ground-truth cache {c['hits']} hit(s), {c['misses']} miss(es)"
             if c.get("folder") else "; no ground-truth cache")
    return (f"{report.protocol}: {head} (%) — {report.frames} frames in {report.seconds:.2f} s"
            f"{cache}")


def plot_confusion(report: EvalReport, path: PathLike) -> None:
    """Write the row-normalised confusion matrix of the evaluated classes as a PNG (matplotlib
    Agg). Rows: ground truth; columns: prediction (plus "other" for every prediction that is not
    an evaluated class); each row divided by its ground-truth pixel count."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from segprep.io import atomic_write_bytes

    cm = np.asarray(report.confusion, np.float64)
    ids = report.eval_ids
    sub = cm[np.ix_(ids, ids)]
    other = cm[ids].sum(1) - sub.sum(1)
    mat = np.concatenate([sub, other[:, None]], axis=1)
    rows = mat.sum(1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        norm = np.where(rows > 0, mat / np.where(rows > 0, rows, 1), np.nan)
    names = list(report.class_names)
    n = len(names)
    fig, ax = plt.subplots(figsize=(max(6, 0.45 * n + 2), max(5, 0.42 * n + 1.5)), dpi=110)
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1, aspect="auto")
    ax.set_xticks(range(n + 1), names + ["other"], rotation=90, fontsize=7)
    ax.set_yticks(range(n), names, fontsize=7)
    ax.set_xlabel("prediction")
    ax.set_ylabel("ground truth")
    ax.set_title(f"{report.protocol}: confusion matrix (rows normalised), {report.frames} frames",
                 fontsize=9)
    if n <= 25:
        for i in range(n):
            for j in range(n + 1):
                v = norm[i, j]
                if np.isfinite(v) and v >= 0.01:
                    ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=5,
                            color="white" if v > 0.6 else "black")
    fig.colorbar(im, ax=ax, fraction=0.04)
    fig.tight_layout()
    import io as _io

    buf = _io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def json_text(report: EvalReport) -> str:
    """The JSON document written by ``--json``: the protocol's result dict (cityscapesScripts'
    layout for Cityscapes, sorted keys and indent 4 as its ``writeDict2JSON``; NaN written as
    ``NaN`` like it) plus a ``segprep`` entry (frames, seconds, protocol, cache use)."""
    doc = dict(report.result or {})
    doc["segprep"] = {"protocol": report.protocol, "frames": report.frames,
                      "seconds": round(report.seconds, 4), "cache": report.cache}
    if report.protocol != "cityscapes" and report.confusion is not None:
        doc["confMatrix"] = np.asarray(report.confusion).tolist()
    return json.dumps(doc, sort_keys=True, indent=4) + "\n"
