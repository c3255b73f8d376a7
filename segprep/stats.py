"""Class statistics of a manifest's masks: pixel and image counts, frequencies, class weights.

Counts come from one histogram per mask (:func:`segprep.manifest.histogram`), in parallel over
masks. Two class-weighting schemes are computed, for a weighted cross-entropy:

* **median-frequency balancing** (Eigen & Fergus, ICCV 2015, as used by SegNet, Badrinarayanan
  et al., TPAMI 2017): ``freq(c) = pixels(c) / (total pixels of the images where c is present)``
  and ``w(c) = median_c'(freq(c')) / freq(c)``;
* **inverse log** (ENet, Paszke et al., 2016): ``w(c) = 1 / ln(1.02 + p(c))`` with
  ``p(c) = pixels(c) / all labelled pixels``.

"Pixels" are labelled pixels: the ``ignore_index`` pixels are excluded everywhere (from the
class counts, from an image's total and from the denominators). A class absent from every mask
gets weight 0 under both schemes and does not take part in the median (its frequency is 0 and
its weight would be infinite, resp. 1/ln 1.02 ≈ 50.5 for a class that never contributes a
gradient); such classes are listed under ``absent_classes`` in the JSON.

The JSON written by ``segprep odgt stats -o stats.json`` has these keys, in this order:
``odgt``, ``num_classes``, ``ignore_index``, ``num_images``, ``num_pixels``,
``num_labelled_pixels``, ``num_ignored_pixels``, ``pixel_count``, ``image_count``,
``frequency``, ``median_frequency_freq``, ``class_weights`` (``median_frequency``,
``inverse_log``), ``absent_classes``, ``class_names`` (only with a class map) and
``image_classes`` (``fpath_segm`` → sorted list of the trainIds present, used by
``segprep odgt split --stratify --stats``). :func:`load_class_weights` reads it back.

SegNet's published CamVid weights (SegNet-Tutorial ``segnet_train.prototxt``,
``class_weighting``) are closer to what comes out when its void class 11 is counted as a twelfth
class (``--num-classes 12``: void takes part in the median) than with void ignored
(``--num-classes 11 --ignore-index 11``, segprep's convention for ignored pixels). Measured on the
367 SegNet train masks: 0.94-1.11x the published weights with 12 classes, 1.02-1.20x with void
ignored, except SignSymbol in both (0.37x / 0.40x of the published 9.6446).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from segprep.class_maps import IGNORE_INDEX
from segprep.errors import SegprepError
from segprep.io import chunked, run_batch
from segprep.manifest import Record, check_mask_mode, decode_jobs, mask_histogram, resolve

WEIGHT_KINDS = ("median_frequency", "inverse_log")
ENET_C = 1.02
"""ENet's constant ``c`` in ``w = 1 / ln(c + p)`` (Paszke et al. 2016, section 5.2)."""

PathLike = str | os.PathLike


# ----------------------------------------------------------------------------------- counting
def count_mask(path: PathLike, num_classes: int, ignore_index: int = IGNORE_INDEX) -> np.ndarray:
    """Pixels of each class in one mask.

    Args:
        path: a single-channel trainId mask (``L`` or ``P`` PNG; palette indices are the values).
        num_classes: ``K``; valid values are ``0 .. K-1`` and ``ignore_index``.
        ignore_index: the value of unlabelled pixels (not counted).

    Returns:
        ``(K + 1,)`` int64: pixels of classes ``0 .. K-1``, then the number of ignored pixels.

    Raises:
        SegprepError: unreadable/RGB mask, a mode ``odgt validate`` refuses (16-bit, RGB:
            :func:`segprep.manifest.check_mask_mode`), or values other than ``0 .. K-1`` and
            ``ignore_index`` (the message lists them with their pixel counts).
    """
    check_mask_mode(path)
    hist = mask_histogram(path)
    bad = np.flatnonzero(hist > 0)
    bad = bad[(bad >= num_classes) & (bad != ignore_index)]
    if bad.size:
        shown = ", ".join(f"{v} ({hist[v]} px)" for v in bad[:8])
        raise SegprepError(path, f"value(s) outside 0..{num_classes - 1} and ignore "
                                 f"{ignore_index}: {shown}")
    ignored = int(hist[ignore_index]) if ignore_index < hist.size else 0
    return np.concatenate([hist[:num_classes], [ignored]]).astype(np.int64)


def _count_chunk(item: tuple[tuple[tuple[str, str], ...], int, int]
                 ) -> list[tuple[str, np.ndarray | None, str | None]]:
    """Count a chunk of masks; per-mask errors are returned, not raised."""
    masks, k, ignore = item
    out: list[tuple[str, np.ndarray | None, str | None]] = []
    for key, path in masks:
        try:
            out.append((key, count_mask(path, k, ignore), None))
        except SegprepError as exc:
            out.append((key, None, str(exc)))
    return out


def count_records(records: Sequence[Record], root: PathLike, num_classes: int,
                  ignore_index: int = IGNORE_INDEX, jobs: int | None = None, quiet: bool = False,
                  scheduler: str | None = None) -> tuple[dict[str, np.ndarray], list[str]]:
    """Per-mask class pixel counts of a manifest's masks, in parallel.

    Masks are sent to the workers in chunks (:func:`segprep.io.chunked`); with
    ``jobs=None`` a small manifest is counted in-process (:func:`segprep.manifest.decode_jobs`).
    With ``scheduler`` (a Dask scheduler, :mod:`segprep.io.cluster`) each mask is one item, the
    cluster path cuts the chunks, and only the per-mask counts come back.

    Returns:
        ``(counts, errors)``: ``fpath_segm`` → ``(K + 1,)`` int64 (see :func:`count_mask`) for
        every mask read, and one-line errors of the others (sorted).
    """
    masks = [(r.fpath_segm, str(resolve(r.fpath_segm, root))) for r in records]
    n_jobs = decode_jobs(jobs, records, len(masks))
    groups = [(m,) for m in masks] if scheduler else chunked(masks, n_jobs)
    chunks = [(c, num_classes, ignore_index) for c in groups]
    counts: dict[str, np.ndarray] = {}
    errors = []
    for out in run_batch(_count_chunk, chunks, jobs=n_jobs, desc="stats", quiet=quiet,
                         unit="chunk", prefer="processes", scheduler=scheduler,
                         probe=masks[0][1] if masks else None):
        if not out.ok:  # unexpected failure of a whole chunk
            errors.append(out.error or "")
            continue
        for key, value, err in out.value:
            if err is None:
                counts[key] = value
            else:
                errors.append(err)
    return counts, sorted(errors)


# ----------------------------------------------------------------------------------- weights
def median_frequency_weights(pixel_count: np.ndarray, present_pixels: np.ndarray) -> np.ndarray:
    """Median-frequency balancing weights (Eigen & Fergus 2015; SegNet).

    Args:
        pixel_count: ``(K,)`` labelled pixels of each class over the dataset.
        present_pixels: ``(K,)`` total labelled pixels of the images in which each class is
            present.

    Returns:
        ``(K,)`` float64 ``median(freq) / freq(c)``, the median over present classes; 0 for
        absent classes.
    """
    pixel_count = np.asarray(pixel_count, np.float64)
    present_pixels = np.asarray(present_pixels, np.float64)
    freq = np.divide(pixel_count, present_pixels, out=np.zeros_like(pixel_count),
                     where=present_pixels > 0)
    w = np.zeros_like(freq)
    present = freq > 0
    if present.any():
        w[present] = np.median(freq[present]) / freq[present]
    return w


def inverse_log_weights(pixel_count: np.ndarray, c: float = ENET_C) -> np.ndarray:
    """ENet's class weights ``1 / ln(c + p(c))``, ``p(c)`` = share of labelled pixels.

    Args:
        pixel_count: ``(K,)`` labelled pixels of each class.
        c: ENet's constant (1.02), which bounds the weights to ``(0, 1/ln(c)]`` ≈ (0, 50.5].

    Returns:
        ``(K,)`` float64; 0 for absent classes.
    """
    pixel_count = np.asarray(pixel_count, np.float64)
    total = pixel_count.sum()
    p = pixel_count / total if total > 0 else np.zeros_like(pixel_count)
    w = 1.0 / np.log(c + p)
    w[pixel_count == 0] = 0.0
    return w


# ----------------------------------------------------------------------------------- stats
@dataclass
class DatasetStats:
    """Class statistics of a set of masks (see the module docstring for the definitions).

    Attributes:
        num_classes: ``K``. ignore_index: the ignored value.
        pixel_count: ``(K,)`` int64 labelled pixels per class.
        image_count: ``(K,)`` int64 images in which each class is present.
        present_pixels: ``(K,)`` int64 labelled pixels of the images where each class is present.
        num_pixels, num_ignored_pixels: all pixels, ignored pixels (ints).
        image_classes: ``fpath_segm`` → sorted trainIds present in that mask.
    """

    num_classes: int
    ignore_index: int
    pixel_count: np.ndarray
    image_count: np.ndarray
    present_pixels: np.ndarray
    num_pixels: int
    num_ignored_pixels: int
    image_classes: dict[str, list[int]] = field(default_factory=dict)
    class_names: list[str] | None = None
    odgt: str = ""

    @property
    def num_images(self) -> int:
        return len(self.image_classes)

    @property
    def num_labelled_pixels(self) -> int:
        return int(self.pixel_count.sum())

    @property
    def frequency(self) -> np.ndarray:
        """``(K,)`` float64 share of labelled pixels of each class (sums to 1)."""
        total = self.pixel_count.sum()
        return self.pixel_count / total if total > 0 else np.zeros(self.num_classes)

    @property
    def median_frequency_freq(self) -> np.ndarray:
        """``(K,)`` float64 ``freq(c)`` of median-frequency balancing (0 for absent classes)."""
        pc = self.pixel_count.astype(np.float64)
        pp = self.present_pixels.astype(np.float64)
        return np.divide(pc, pp, out=np.zeros_like(pc), where=pp > 0)

    def weights(self, kind: str = "median_frequency") -> np.ndarray:
        """``(K,)`` float64 class weights of ``kind`` (:data:`WEIGHT_KINDS`)."""
        if kind == "median_frequency":
            return median_frequency_weights(self.pixel_count, self.present_pixels)
        if kind == "inverse_log":
            return inverse_log_weights(self.pixel_count)
        raise ValueError(f"unknown weight kind {kind!r}; choose from {', '.join(WEIGHT_KINDS)}")

    def to_dict(self) -> dict[str, Any]:
        """The stats.json content, keys in a fixed order (floats as Python floats)."""
        d: dict[str, Any] = {
            "odgt": self.odgt,
            "num_classes": self.num_classes,
            "ignore_index": self.ignore_index,
            "num_images": self.num_images,
            "num_pixels": int(self.num_pixels),
            "num_labelled_pixels": self.num_labelled_pixels,
            "num_ignored_pixels": int(self.num_ignored_pixels),
            "pixel_count": [int(x) for x in self.pixel_count],
            "image_count": [int(x) for x in self.image_count],
            "frequency": [float(x) for x in self.frequency],
            "median_frequency_freq": [float(x) for x in self.median_frequency_freq],
            "class_weights": {k: [float(x) for x in self.weights(k)] for k in WEIGHT_KINDS},
            "absent_classes": [int(c) for c in np.flatnonzero(self.pixel_count == 0)],
        }
        if self.class_names is not None:
            d["class_names"] = list(self.class_names)
        d["image_classes"] = {k: self.image_classes[k] for k in sorted(self.image_classes)}
        return d


def aggregate(counts: dict[str, np.ndarray], num_classes: int, ignore_index: int = IGNORE_INDEX,
              class_names: Sequence[str] | None = None, odgt: str = "") -> DatasetStats:
    """Sum per-mask counts (from :func:`count_records`) into :class:`DatasetStats`.

    Args:
        counts: ``fpath_segm`` → ``(K + 1,)`` int64 class pixels then ignored pixels.
    """
    k = num_classes
    if counts:
        keys = sorted(counts)
        m = np.stack([counts[key] for key in keys]).astype(np.int64)  # (N, K+1)
    else:
        keys, m = [], np.zeros((0, k + 1), np.int64)
    cls = m[:, :k]
    present = cls > 0
    labelled = cls.sum(axis=1)  # (N,)
    return DatasetStats(
        num_classes=k, ignore_index=ignore_index,
        pixel_count=cls.sum(axis=0),
        image_count=present.sum(axis=0).astype(np.int64),
        present_pixels=(present * labelled[:, None]).sum(axis=0).astype(np.int64),
        num_pixels=int(m.sum()), num_ignored_pixels=int(m[:, k].sum()),
        image_classes={key: [int(c) for c in np.flatnonzero(row)]
                       for key, row in zip(keys, present)},
        class_names=list(class_names) if class_names is not None else None, odgt=odgt)


def compute_stats(records: Sequence[Record], root: PathLike, num_classes: int,
                  ignore_index: int = IGNORE_INDEX, class_names: Sequence[str] | None = None,
                  jobs: int | None = None, quiet: bool = False, odgt: str = "",
                  scheduler: str | None = None) -> tuple[DatasetStats, list[str]]:
    """Class statistics of a manifest's masks (counted in parallel).

    ``scheduler``: count on a Dask cluster (see :func:`count_records`); histograms merge here.

    Returns:
        ``(stats, errors)``; the stats cover only the masks that could be read, ``errors`` lists
        the others (one line each).

    Raises:
        SegprepError: ``num_classes`` out of 1..256 or ``class_names`` of the wrong length.
    """
    if not 0 < num_classes <= 256:
        raise SegprepError("--num-classes", f"must be in 1..256, got {num_classes}")
    if class_names is not None and len(class_names) != num_classes:
        raise SegprepError("--class-map", f"{len(class_names)} class names for "
                                          f"{num_classes} classes")
    counts, errors = count_records(records, root, num_classes, ignore_index, jobs, quiet,
                                   scheduler)
    return aggregate(counts, num_classes, ignore_index, class_names, odgt), errors


# ----------------------------------------------------------------------------------- files
def load_stats(path: PathLike) -> dict[str, Any]:
    """Read a stats.json written by ``segprep odgt stats``.

    Raises:
        SegprepError: missing file, bad JSON, or not a stats file.
    """
    try:
        with open(path, encoding="utf-8") as fh:
            d = json.load(fh)
    except FileNotFoundError:
        raise SegprepError(path, "no such file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SegprepError(path, f"not a JSON file ({exc})") from None
    except OSError as exc:
        raise SegprepError(path, f"cannot read: {exc.strerror or exc}") from None
    if not isinstance(d, dict) or "num_classes" not in d or "class_weights" not in d:
        raise SegprepError(path, "not a stats file written by `segprep odgt stats` (no "
                                 "num_classes / class_weights)")
    return d


def load_class_weights(path: PathLike, kind: str = "median_frequency") -> np.ndarray:
    """Class weights for a weighted cross-entropy, from a ``segprep odgt stats`` JSON.

    Args:
        path: the stats.json.
        kind: ``"median_frequency"`` (SegNet) or ``"inverse_log"`` (ENet).

    Returns:
        ``(K,)`` float32, indexed by trainId; absent classes have weight 0.

    Raises:
        SegprepError: unreadable file, unknown ``kind``, wrong length, or negative / non-finite
            weights.
    """
    d = load_stats(path)
    weights = d["class_weights"]
    if kind not in weights:
        raise SegprepError(path, f"no class weights {kind!r}; available: "
                                 f"{', '.join(sorted(weights))}")
    w = np.asarray(weights[kind], dtype=np.float64)
    k = int(d["num_classes"])
    if w.shape != (k,):
        raise SegprepError(path, f"{kind} weights have shape {w.shape}, expected ({k},)")
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise SegprepError(path, f"{kind} weights must be finite and non-negative")
    return w.astype(np.float32)


def plot_stats(stats: DatasetStats, path: PathLike) -> None:
    """Write a bar chart (PNG) of the class pixel frequencies, log scale, with image counts.

    Written atomically with matplotlib's Agg backend (no display needed).
    """
    import io

    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    from segprep.io import atomic_write_bytes

    k = stats.num_classes
    names = stats.class_names or [str(c) for c in range(k)]
    labels = [f"{c} {n}" if stats.class_names else n for c, n in enumerate(names)]
    fig = Figure(figsize=(max(6.0, 0.45 * k + 2), 4.5), dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    freq = stats.frequency
    x = np.arange(k)
    ax.bar(x, np.where(freq > 0, freq, np.nan), color="#4c72b0")
    ax.set_yscale("log")
    ax.set_xticks(x)
    ax.set_xticklabels(labels, rotation=60, ha="right", fontsize=8)
    ax.set_ylabel("share of labelled pixels (log)")
    ax.set_xlabel("class (number above a bar: images containing it)", fontsize=8)
    ax.set_title(f"{Path(stats.odgt).name or 'masks'}: {stats.num_images} images, "
                 f"{stats.num_labelled_pixels:,} labelled px, "
                 f"{stats.num_ignored_pixels / max(stats.num_pixels, 1):.1%} ignored",
                 fontsize=9)
    for xi, f, n in zip(x, freq, stats.image_count):
        if f > 0:
            ax.annotate(str(int(n)), (xi, f), ha="center", va="bottom", fontsize=6,
                        xytext=(0, 1), textcoords="offset points")
    ax.grid(axis="y", which="major", alpha=0.3)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    atomic_write_bytes(path, buf.getvalue())
