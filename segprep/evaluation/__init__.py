"""Evaluation protocols, one module per benchmark (Cityscapes pixel-level, BDD100K and odgt), the
ground-truth cache and the report they return. Scores come from :mod:`segprep.metrics`.

The names below are imported on first use (PEP 562), so that a command using one protocol
(``evaluate cityscapes-panoptic`` imports only :mod:`segprep.evaluation.panoptic`) does not pay
for importing the others (~25 ms of its start).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from segprep.evaluation.cityscapes import PRED_IDS, evaluate_cityscapes
    from segprep.evaluation.plain import MISSING, evaluate_bdd100k, evaluate_odgt
    from segprep.evaluation.report import EvalReport

_WHERE = {"PRED_IDS": "cityscapes", "evaluate_cityscapes": "cityscapes", "MISSING": "plain",
          "evaluate_bdd100k": "plain", "evaluate_odgt": "plain", "EvalReport": "report"}

__all__ = ["MISSING", "PRED_IDS", "EvalReport", "evaluate_bdd100k", "evaluate_cityscapes",
           "evaluate_odgt"]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
