"""Confusion matrix and segmentation scores, shared by the trainer and the evaluator.

Conventions:

* A confusion matrix is ``(K, K + 1)`` int64: row = ground-truth class, column = predicted class;
  the extra last column counts pixels whose prediction is not a class in ``[0, K)`` (e.g. 255 or
  19 for a 19-class problem). Such a pixel is a miss (a false negative of its ground-truth class)
  and a false positive of no class, as in the bdd100k toolkit's ``eval.seg``. Pixels whose ground
  truth is ``ignore_index`` (or any value outside ``[0, K)``) are not counted.
* IoU of class c = TP / (TP + FP + FN). A class with TP + FP + FN = 0 (absent from the ground truth
  and never predicted) has IoU NaN and is skipped by the mean (cityscapesScripts
  ``getIouScoreForLabel`` returns NaN there). ``mean_over="present"`` averages only over classes
  present in the ground truth, as the bdd100k toolkit's mIoU.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

IGNORE_INDEX = 255


def confusion_matrix(gt: np.ndarray, pred: np.ndarray, num_classes: int,
                     ignore_index: int = IGNORE_INDEX) -> np.ndarray:
    """Confusion matrix of one prediction by ``np.bincount``.

    Args:
        gt: ``(...)`` integer ground truth (trainIds), any shape.
        pred: integer prediction, same shape as ``gt``.
        num_classes: K.
        ignore_index: ground-truth value that is not counted (values outside ``[0, K)`` are not
            counted either).

    Returns:
        ``(K, K + 1)`` int64; the last column counts predictions outside ``[0, K)``.

    Raises:
        ValueError: shapes differ.
    """
    gt = np.asarray(gt)
    pred = np.asarray(pred)
    if gt.shape != pred.shape:
        raise ValueError(f"shape mismatch: ground truth {gt.shape} vs prediction {pred.shape}")
    k = int(num_classes)
    g = gt.ravel()
    p = pred.ravel()
    if g.dtype == np.uint8 and p.dtype == np.uint8 and k <= 255:
        # LUT path for 8-bit maps: no int64 temporaries over the whole image
        pcol = np.full(256, k, np.int32)
        pcol[:k] = np.arange(k, dtype=np.int32)
        grow = np.full(256, -1, np.int32)
        grow[:k] = np.arange(k, dtype=np.int32) * (k + 1)
        if 0 <= ignore_index < k:
            grow[ignore_index] = -1
        rows = grow[g]
        keep = rows >= 0
        idx = rows[keep] + pcol[p[keep]]
    else:
        g = g.astype(np.int64)
        p = p.astype(np.int64)
        valid = (g >= 0) & (g < k) & (g != ignore_index)
        p = np.where((p >= 0) & (p < k), p, k)
        idx = g[valid] * (k + 1) + p[valid]
    return np.bincount(idx, minlength=k * (k + 1)).reshape(k, k + 1).astype(np.int64)


def confusion_matrix_torch(gt, pred, num_classes: int, ignore_index: int = IGNORE_INDEX):
    """:func:`confusion_matrix` on torch tensors (on their device, by ``torch.bincount``).

    Args:
        gt: ``(N, H, W)`` (any shape) integer tensor.
        pred: integer tensor of the same shape (e.g. ``logits.argmax(1)``).

    Returns:
        ``(K, K + 1)`` int64 tensor on the same device.
    """
    import torch

    k = int(num_classes)
    g = gt.reshape(-1).long()
    p = pred.reshape(-1).long()
    valid = (g >= 0) & (g < k) & (g != ignore_index)
    p = torch.where((p >= 0) & (p < k), p, torch.full_like(p, k))
    idx = g[valid] * (k + 1) + p[valid]
    return torch.bincount(idx, minlength=k * (k + 1)).reshape(k, k + 1)


def _as_full(cm: np.ndarray) -> np.ndarray:
    cm = np.asarray(cm, dtype=np.int64)
    if cm.ndim != 2 or cm.shape[1] not in (cm.shape[0], cm.shape[0] + 1):
        raise ValueError(f"not a confusion matrix: shape {cm.shape}")
    if cm.shape[1] == cm.shape[0]:
        cm = np.concatenate([cm, np.zeros((cm.shape[0], 1), np.int64)], axis=1)
    return cm


def class_iou(cm: np.ndarray) -> np.ndarray:
    """Per-class IoU ``(K,)`` float64 from a ``(K, K[+1])`` confusion matrix; NaN where
    TP + FP + FN = 0."""
    cm = _as_full(cm)
    k = cm.shape[0]
    tp = np.diag(cm[:, :k]).astype(np.float64)
    fp = cm[:, :k].sum(0) - tp
    fn = cm.sum(1) - tp
    denom = tp + fp + fn
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denom > 0, tp / np.where(denom > 0, denom, 1), np.nan)


@dataclass
class Scores:
    """Summary scores of a confusion matrix (fractions in [0, 1], not percent).

    Attributes:
        iou: ``(K,)`` per-class IoU (NaN: class absent from ground truth and never predicted).
        miou: mean IoU over classes with a defined IoU (``mean_over="valid"``) or over classes
            present in the ground truth (``mean_over="present"``).
        pixel_accuracy: correct / counted pixels.
        mean_accuracy: mean per-class recall over classes present in the ground truth.
        fw_iou: frequency-weighted IoU (weights = ground-truth pixel share).
        gt_pixels: ``(K,)`` ground-truth pixel counts.
    """

    iou: np.ndarray
    miou: float
    pixel_accuracy: float
    mean_accuracy: float
    fw_iou: float
    gt_pixels: np.ndarray = field(repr=False)

    def to_dict(self, class_names: list[str] | tuple[str, ...] | None = None) -> dict:
        names = list(class_names) if class_names is not None else [str(i) for i in
                                                                    range(len(self.iou))]
        return {
            "mIoU": _f(self.miou), "pixelAccuracy": _f(self.pixel_accuracy),
            "meanAccuracy": _f(self.mean_accuracy), "fwIoU": _f(self.fw_iou),
            "classIoU": {n: _f(v) for n, v in zip(names, self.iou)},
        }


def _f(x: float) -> float | None:
    return None if x is None or not np.isfinite(x) else float(x)


def scores(cm: np.ndarray, mean_over: str = "valid") -> Scores:
    """Compute IoU, mIoU, pixel accuracy, mean accuracy and fwIoU from a confusion matrix.

    Args:
        cm: ``(K, K)`` or ``(K, K + 1)`` confusion matrix (see module docstring).
        mean_over: ``"valid"`` (classes with a defined IoU; Cityscapes) or ``"present"`` (classes
            with ground-truth pixels; bdd100k toolkit).

    Raises:
        ValueError: bad matrix shape or ``mean_over``.
    """
    cm = _as_full(cm)
    k = cm.shape[0]
    iou = class_iou(cm)
    gt_pix = cm.sum(1)
    total = gt_pix.sum()
    tp = np.diag(cm[:, :k])
    present = gt_pix > 0
    if mean_over == "valid":
        sel = ~np.isnan(iou)
    elif mean_over == "present":
        sel = present
    else:
        raise ValueError(f"mean_over must be 'valid' or 'present', not {mean_over!r}")
    vals = np.nan_to_num(iou[sel], nan=0.0)
    miou = float(vals.mean()) if vals.size else float("nan")
    pa = float(tp.sum() / total) if total else float("nan")
    with np.errstate(divide="ignore", invalid="ignore"):
        recall = tp[present] / gt_pix[present]
    macc = float(recall.mean()) if recall.size else float("nan")
    fw = float((gt_pix[present] / total * np.nan_to_num(iou[present])).sum()) if total else \
        float("nan")
    return Scores(iou=iou, miou=miou, pixel_accuracy=pa, mean_accuracy=macc, fw_iou=fw,
                  gt_pixels=gt_pix)


class ConfusionMatrix:
    """Accumulates confusion matrices over many images (numpy or torch inputs).

    Args:
        num_classes: K.
        ignore_index: ground-truth value not counted.
    """

    def __init__(self, num_classes: int, ignore_index: int = IGNORE_INDEX):
        self.num_classes = int(num_classes)
        self.ignore_index = int(ignore_index)
        self.matrix = np.zeros((self.num_classes, self.num_classes + 1), np.int64)

    def update(self, gt, pred) -> None:
        """Add one prediction (numpy arrays or torch tensors of equal shape)."""
        if hasattr(gt, "device") and hasattr(pred, "device"):
            self.matrix += confusion_matrix_torch(gt, pred, self.num_classes,
                                                  self.ignore_index).cpu().numpy()
        else:
            self.matrix += confusion_matrix(gt, pred, self.num_classes, self.ignore_index)

    def merge(self, other: "ConfusionMatrix | np.ndarray") -> None:
        """Add another accumulator's (or a raw ``(K, K+1)``) matrix."""
        self.matrix += _as_full(other.matrix if isinstance(other, ConfusionMatrix) else other)

    def scores(self, mean_over: str = "valid") -> Scores:
        return scores(self.matrix, mean_over)
