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

from segprep.class_maps import IGNORE_INDEX


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

    def merge(self, other: ConfusionMatrix | np.ndarray) -> None:
        """Add another accumulator's (or a raw ``(K, K+1)``) matrix."""
        self.matrix += _as_full(other.matrix if isinstance(other, ConfusionMatrix) else other)

    def scores(self, mean_over: str = "valid") -> Scores:
        return scores(self.matrix, mean_over)


# =========================================================================== per-class extras
def class_recall(cm: np.ndarray) -> np.ndarray:
    """Per-class recall (accuracy of the class) TP / (TP + FN), ``(K,)`` float64; NaN where the
    class has no ground-truth pixels."""
    cm = _as_full(cm)
    k = cm.shape[0]
    tp = np.diag(cm[:, :k]).astype(np.float64)
    gt = cm.sum(1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(gt > 0, tp / np.where(gt > 0, gt, 1), np.nan)


def class_precision(cm: np.ndarray) -> np.ndarray:
    """Per-class precision TP / (TP + FP), ``(K,)`` float64; NaN where the class is never
    predicted on a counted pixel."""
    cm = _as_full(cm)
    k = cm.shape[0]
    tp = np.diag(cm[:, :k]).astype(np.float64)
    pred = cm[:, :k].sum(0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(pred > 0, tp / np.where(pred > 0, pred, 1), np.nan)


# =========================================================================== BDD100K toolkit
def bdd100k_scores(cm: np.ndarray, class_names: list[str] | tuple[str, ...]) -> dict:
    """Scores exactly as the bdd100k toolkit's ``bdd100k.eval.seg.evaluate_segmentation``.

    Source: bdd100k/bdd100k ``bdd100k/eval/seg.py`` (``per_class_iou``, ``per_class_acc``,
    ``whole_acc``, ``freq_iou``). Its conventions, kept here:

    * a prediction outside ``[0, K)`` (255, 19 …) is a miss: the ``(K, K + 1)`` matrix's last
      column; a missing prediction file counts every pixel of the frame there;
    * per-class IoU = TP / (TP + FP + FN), **0** (not NaN) where undefined;
    * per-class "Acc" is TP / (TP + FP), i.e. precision (the toolkit divides by the column sum),
      0 where undefined;
    * mIoU and mAcc average over the classes present in the ground truth;
    * fIoU weights IoU by ground-truth pixel share; pAcc = correct / counted pixels.

    Args:
        cm: ``(K, K + 1)`` (or ``(K, K)``) confusion matrix.
        class_names: the K class names (keys of the per-class dicts).

    Returns:
        ``{"IoU": {name: %}, "Acc": {name: %}, "mIoU", "mAcc", "fIoU", "pAcc"}``, all in percent
        as the toolkit reports them. Means are NaN when no class is present.
    """
    cm = _as_full(cm)
    k = cm.shape[0]
    iou = np.nan_to_num(class_iou(cm), nan=0.0)
    acc = np.nan_to_num(class_precision(cm), nan=0.0)
    gt = cm.sum(1)
    total = gt.sum()
    present = gt > 0
    tp = np.diag(cm[:, :k])
    miou = float(np.mean(iou[present]) * 100) if present.any() else float("nan")
    macc = float(np.mean(acc[present]) * 100) if present.any() else float("nan")
    fiou = float((iou * (gt / total)).sum() * 100) if total else float("nan")
    pacc = float(tp.sum() / total * 100) if total else float("nan")
    names = list(class_names)
    if len(names) != k:
        raise ValueError(f"{len(names)} class names for a {k}-class matrix")
    return {
        "IoU": {n: float(v * 100) for n, v in zip(names, iou)},
        "Acc": {n: float(v * 100) for n, v in zip(names, acc)},
        "mIoU": miou, "mAcc": macc, "fIoU": fiou, "pAcc": pacc,
    }


# =========================================================================== Cityscapes protocol
CITYSCAPES_AVG_CLASS_SIZE: dict[str, float] = {
    "bicycle": 4672.3249222261,
    "caravan": 36771.8241758242,
    "motorcycle": 6298.7200839748,
    "rider": 3930.4788056518,
    "bus": 35732.1511111111,
    "train": 67583.7075812274,
    "car": 12794.0202738185,
    "person": 3462.4756337644,
    "truck": 27855.1264367816,
    "trailer": 16926.9763313609,
}
"""Average instance size (pixels) of each instance class over the Cityscapes train set: the
weights of iIoU. Source: mcordts/cityscapesScripts 2.3.0
``evaluation/evalPixelLevelSemanticLabeling.py``, ``args.avgClassSize`` (a protocol constant of the
evaluator, not of the label table)."""


class CityscapesProtocol:
    """The tables of cityscapesScripts' pixel-level evaluation, derived from a label table.

    Source: mcordts/cityscapesScripts 2.3.0 ``evaluation/evalPixelLevelSemanticLabeling.py``
    (``generateMatrix``, ``generateInstanceStats``, ``getIouScoreForLabel``,
    ``getInstanceIouScoreForLabel``, ``getIouScoreForCategory``,
    ``getInstanceIouScoreForCategory``, ``createResultDict``).

    Attributes:
        eval_ids: label ids ``>= 0`` in table order (``args.evalLabels``); the confusion matrix is
            ``(max_id + 1, max_id + 1)`` over label ids.
        size: ``max(eval_ids) + 1``.
        names: ``{label id: name}`` (first row of an id).
        ignored: ``(size,)`` bool, the id's ``ignore_in_eval``.
        categories: category names in order of first appearance (``category2labels``).
        inst_classes: names of the classes with instances that are evaluated (iIoU classes).
        inst_categories: ``{category: [label ids]}`` of categories whose labels (id >= 0) all have
            instances (iIoU categories).
        avg_size: ``{class name: average instance size}``.
    """

    def __init__(self, class_map, avg_class_size: dict[str, float] | None = None):
        cmap = class_map
        self.class_map = cmap
        ids = [int(i) for i in cmap.ids]
        self.eval_ids = [i for i in ids if i >= 0]
        self.size = max(self.eval_ids) + 1
        self.names: dict[int, str] = {}
        self.label_category: dict[int, str] = {}
        self.ignored = np.ones(self.size, bool)
        self.has_instances = np.zeros(self.size, bool)
        for name, i, cat, inst, ign in zip(cmap.names, ids, cmap.categories, cmap.has_instances,
                                           cmap.ignore_in_eval):
            if i >= 0 and i not in self.names:
                self.names[i] = name
                self.label_category[i] = cat
                self.ignored[i] = bool(ign)
                self.has_instances[i] = bool(inst)
        self.categories: list[str] = list(dict.fromkeys(cmap.categories))
        self.inst_classes = [cmap.names[r] for r in range(len(cmap))
                             if cmap.has_instances[r] and not cmap.ignore_in_eval[r]]
        self.inst_categories: dict[str, list[int]] = {}
        for cat in self.categories:
            rows = [r for r in range(len(cmap)) if cmap.categories[r] == cat]
            label_ids = []
            all_inst = True
            for r in rows:
                if cmap.ids[r] < 0:
                    continue
                if not cmap.has_instances[r]:
                    all_inst = False
                    break
                label_ids.append(int(cmap.ids[r]))
            if all_inst:
                self.inst_categories[cat] = label_ids
        self.avg_size = dict(CITYSCAPES_AVG_CLASS_SIZE if avg_class_size is None
                             else avg_class_size)
        missing = [n for n in self.inst_classes if n not in self.avg_size]
        if missing:
            raise ValueError(f"no average instance size for {', '.join(missing)}")
        self.not_ignored = [i for i in self.eval_ids if not self.ignored[i]]

    # ----------------------------------------------------------------------------- scores
    def class_iou(self, cm: np.ndarray) -> dict[str, float]:
        """IoU of every label id (NaN for ``ignore_in_eval`` ids and where undefined);
        FP counts only pixels whose ground truth is not ignored (``getIouScoreForLabel``)."""
        out = {}
        for i in self.eval_ids:
            out[self.names[i]] = self._iou(cm, i, float(cm[i, i]), float(cm[i, :].sum() - cm[i, i]))
        return out

    def _fp(self, cm: np.ndarray, label_ids: list[int], category: str | None, label: int | None
            ) -> int:
        if category is None:
            rows = [r for r in self.not_ignored if r != label]
        else:
            rows = [r for r in self.not_ignored if self.label_category[r] != category]
        return int(cm[np.ix_(rows, label_ids)].sum()) if rows and label_ids else 0

    def _iou(self, cm, i, tp, fn):
        if self.ignored[i]:
            return float("nan")
        fp = self._fp(cm, [i], None, i)
        denom = tp + fp + fn
        return float("nan") if denom == 0 else float(tp) / denom

    def class_iiou(self, cm: np.ndarray, inst: InstanceStats) -> dict[str, float]:
        """Instance-weighted IoU of every label id (``getInstanceIouScoreForLabel``): TP and FN
        weighted per instance by ``avg_size / instance size``, FP as for IoU; NaN for ids
        without iIoU."""
        out = {}
        for i in self.eval_ids:
            name = self.names[i]
            if self.ignored[i] or name not in inst.classes:
                out[name] = float("nan")
                continue
            s = inst.classes[name]
            fp = self._fp(cm, [i], None, i)
            denom = s["tpWeighted"] + fp + s["fnWeighted"]
            out[name] = float("nan") if denom == 0 else float(s["tpWeighted"]) / denom
        return out

    def category_iou(self, cm: np.ndarray) -> dict[str, float]:
        """IoU of every category (``getIouScoreForCategory``)."""
        out = {}
        for cat in self.categories:
            ids = [i for i in self.eval_ids
                   if self.label_category[i] == cat and not self.ignored[i]]
            if not ids:
                out[cat] = float("nan")
                continue
            tp = int(cm[np.ix_(ids, ids)].sum())
            fn = int(cm[ids, :].sum()) - tp
            fp = self._fp(cm, ids, cat, None)
            denom = tp + fp + fn
            out[cat] = float("nan") if denom == 0 else float(tp) / denom
        return out

    def category_iiou(self, cm: np.ndarray, inst: InstanceStats) -> dict[str, float]:
        """Instance-weighted IoU of every category (``getInstanceIouScoreForCategory``)."""
        out = {}
        for cat in self.categories:
            if cat not in inst.categories:
                out[cat] = float("nan")
                continue
            s = inst.categories[cat]
            fp = self._fp(cm, self.inst_categories[cat], cat, None)
            denom = s["tpWeighted"] + fp + s["fnWeighted"]
            out[cat] = float("nan") if denom == 0 else float(s["tpWeighted"]) / denom
        return out

    def result(self, cm: np.ndarray, inst: InstanceStats) -> dict:
        """Everything cityscapesScripts' ``createResultDict`` writes to its JSON, same keys and
        numbers: ``confMatrix``, ``priors``, ``labels``, ``classScores``, ``classInstScores``,
        ``categoryScores``, ``categoryInstScores`` and the four ``averageScore*`` (means over the
        non-NaN entries, NaN if none). Scores are fractions in [0, 1]."""
        cm = np.asarray(cm, np.int64)
        total = cm.sum()
        cs = self.class_iou(cm)
        ci = self.class_iiou(cm, inst)
        gs = self.category_iou(cm)
        gi = self.category_iiou(cm, inst)
        return {
            "confMatrix": cm.tolist(),
            "priors": {self.names[i]: (float(cm[i, :].sum()) / total if total else float("nan"))
                       for i in self.eval_ids},
            "labels": {self.names[i]: i for i in self.eval_ids},
            "classScores": cs,
            "classInstScores": ci,
            "categoryScores": gs,
            "categoryInstScores": gi,
            "averageScoreClasses": nan_mean(cs.values()),
            "averageScoreInstClasses": nan_mean(ci.values()),
            "averageScoreCategories": nan_mean(gs.values()),
            "averageScoreInstCategories": nan_mean(gi.values()),
        }


def nan_mean(values) -> float:
    """Mean of the non-NaN values, NaN if there are none (cityscapesScripts ``getScoreAverage``,
    summing in order)."""
    total = 0.0
    n = 0
    for v in values:
        if not np.isnan(v):
            total += v
            n += 1
    return total / n if n else float("nan")


class InstanceStats:
    """Instance-level TP/FN counts of the Cityscapes iIoU (cityscapesScripts ``instanceStats``).

    Feed instances in the order cityscapesScripts visits them (frame by frame, ascending instance
    id) with :meth:`add`; float sums then match its numbers to the last bits.
    """

    def __init__(self, protocol: CityscapesProtocol):
        self.protocol = protocol
        self.classes = {n: {"tp": 0, "tpWeighted": 0.0, "fn": 0, "fnWeighted": 0.0}
                        for n in protocol.inst_classes}
        self.categories = {c: {"tp": 0, "tpWeighted": 0.0, "fn": 0, "fnWeighted": 0.0}
                           for c in protocol.inst_categories}

    def add(self, label_id: int, size: int, tp: int, cat_tp: int) -> None:
        """Count one ground-truth instance of label ``label_id`` with ``size`` pixels, ``tp`` of
        them predicted as ``label_id`` and ``cat_tp`` as a label of its category. Instances of
        ``ignore_in_eval`` labels are skipped, as in cityscapesScripts.

        Raises:
            ValueError: ``label_id`` is not a label with evaluated instances.
        """
        p = self.protocol
        if not 0 <= label_id < p.size or label_id not in p.names:
            raise ValueError(f"instance of unknown label id {label_id}")
        if p.ignored[label_id]:
            return
        name = p.names[label_id]
        if name not in self.classes:
            raise ValueError(f"instance of label {name!r} (id {label_id}), which has no instances")
        weight = p.avg_size[name] / float(size)
        s = self.classes[name]
        s["tp"] += tp
        s["fn"] += size - tp
        s["tpWeighted"] += float(tp) * weight
        s["fnWeighted"] += float(size - tp) * weight
        cat = p.label_category[label_id]
        if cat in self.categories:
            c = self.categories[cat]
            c["tp"] += cat_tp
            c["fn"] += size - cat_tp
            c["tpWeighted"] += float(cat_tp) * weight
            c["fnWeighted"] += float(size - cat_tp) * weight


def panoptic_quality(stats: dict, categories: dict) -> dict:
    """PQ, SQ and RQ per class and for All / Things / Stuff from summed matching counts, as
    cityscapesScripts ``evalPanopticSemanticLabeling.average_pq`` (Kirillov et al. 2019):
    ``PQ = iou_sum / (TP + FP/2 + FN/2)``, ``SQ = iou_sum / TP`` (0 when TP = 0),
    ``RQ = TP / (TP + FP/2 + FN/2)``; a class with TP + FP + FN = 0 scores 0 and is left out of
    the means, which average the other classes in ``categories`` order.

    Args:
        stats: category id → ``(tp, fp, fn, iou_sum)`` (ints and the float sum of the IoUs of the
            matched pairs); missing categories count as all zero, extra ones are ignored.
        categories: category id → isthing (bool), in the ground truth's order.

    Returns:
        ``{"All"|"Things"|"Stuff": {"pq", "sq", "rq", "n"}, "per_class": {id: {"pq", "sq",
        "rq"}}}``, fractions in [0, 1]; ``n`` is the number of classes averaged. With ``n = 0``
        the means are NaN (cityscapesScripts divides by zero there).
    """
    results: dict = {}
    for name, want in (("All", None), ("Things", True), ("Stuff", False)):
        pq = sq = rq = 0.0
        n = 0
        per_class: dict = {}
        for cat, isthing in categories.items():
            if want is not None and bool(isthing) != want:
                continue
            tp, fp, fn, iou = stats.get(cat, (0, 0, 0, 0.0))
            if tp + fp + fn == 0:
                per_class[cat] = {"pq": 0.0, "sq": 0.0, "rq": 0.0}
                continue
            n += 1
            pq_c = iou / (tp + 0.5 * fp + 0.5 * fn)
            sq_c = iou / tp if tp != 0 else 0
            rq_c = tp / (tp + 0.5 * fp + 0.5 * fn)
            per_class[cat] = {"pq": pq_c, "sq": sq_c, "rq": rq_c}
            pq += pq_c
            sq += sq_c
            rq += rq_c
        nan = float("nan")
        results[name] = {"pq": pq / n if n else nan, "sq": sq / n if n else nan,
                         "rq": rq / n if n else nan, "n": n}
        if name == "All":
            results["per_class"] = per_class
    return results
