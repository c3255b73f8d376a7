"""Reading label maps for evaluation (ground truth and predictions) and describing bad values."""

from __future__ import annotations

import os

import numpy as np

from segprep.errors import SegprepError
from segprep.evaluation.gt_cache import GtCodes
from segprep.evaluation.kernels import decode_label_png, joint_histogram
from segprep.io import read_bytes, read_label

PathLike = str | os.PathLike


def read_label_map(path: PathLike) -> np.ndarray:
    """Read a single-channel label PNG (ground truth or prediction).

    Returns:
        ``(H, W)`` uint8 or uint16 samples (palette PNGs: their indices).

    Raises:
        SegprepError: missing, damaged, or not single-channel (RGB/RGBA/gray+alpha).
    """
    data = read_bytes(path)
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


def describe_values(counts: dict[int, int], limit: int = 6) -> str:
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


def prediction_histogram(gt: GtCodes, pred: np.ndarray, pred_path: PathLike, gt_path: PathLike
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


def large_values(pred: np.ndarray) -> dict[int, int]:
    """Counts of values > 255 of a 16-bit prediction."""
    if pred.dtype == np.uint8:
        return {}
    big = pred[pred > 255]
    if not big.size:
        return {}
    v, n = np.unique(big, return_counts=True)
    return {int(a): int(b) for a, b in zip(v, n)}


