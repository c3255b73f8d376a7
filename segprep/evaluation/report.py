"""The result of an evaluation (library side; the CLI renders it)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class EvalReport:
    """The outcome of an evaluation.

    Attributes:
        protocol: ``"cityscapes"``, ``"bdd100k"`` or ``"odgt"``.
        frames: frames evaluated.
        seconds: wall time of the evaluation (pairing, decoding, counting).
        errors: one line per bad file; when not empty, there are no scores.
        warnings: lines worth telling (missing predictions counted as misses, unmatched files).
        notes: decisions taken for the user (what ``--pred-ids auto`` decided, and why).
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
    notes: list[str] = field(default_factory=list)
    confusion: np.ndarray | None = None
    result: dict | None = None
    class_names: list[str] = field(default_factory=list)
    cache: dict = field(default_factory=dict)
    eval_ids: list[int] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors and self.result is not None




@dataclass
class FrameCounts:
    """What one frame contributes: a confusion matrix and, for Cityscapes, its instances
    (``(n, 4)`` int64 rows ``label_id, size, tp, category_tp`` in ascending instance id)."""

    confusion: np.ndarray
    instances: np.ndarray | None = None
    missing: bool = False


