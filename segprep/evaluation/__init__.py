"""Evaluation protocols, one module per benchmark (Cityscapes pixel-level, BDD100K and odgt), the
ground-truth cache and the report they return. Scores come from :mod:`segprep.metrics`."""

from segprep.evaluation.cityscapes import PRED_IDS, evaluate_cityscapes
from segprep.evaluation.plain import MISSING, evaluate_bdd100k, evaluate_odgt
from segprep.evaluation.report import EvalReport

__all__ = ["MISSING", "PRED_IDS", "EvalReport", "evaluate_bdd100k", "evaluate_cityscapes",
           "evaluate_odgt"]
