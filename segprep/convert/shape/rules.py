"""The shared-color rules that read :class:`~segprep.convert.shape.features.RegionFeatures`: the
hand-written ones (:data:`HAND_RULES`: :class:`PersonSignRule`, :class:`PoleGroupRule`,
:class:`VoidRule`) and the learned forests (:class:`ForestRule`, shipped as
``segprep/convert/shape_model.json`` and read by :func:`load_shape_model`).

Every rule has ``labels`` (the label names of one color, in rule order) and ``classify(f)`` →
``(N,)`` int64 index into ``labels`` of each region; its ``contours`` / ``neighbours`` attributes
say which features it reads (:func:`segprep.convert.shape.resolve.classify_regions`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from segprep.convert.shape.features import MODEL_INPUTS, RegionFeatures, model_inputs
from segprep.errors import SegprepError


@dataclass(frozen=True)
class PersonSignRule:
    """Person vs sign for one color (BDD100K id level: ``person`` and ``parking sign``, both
    (220, 20, 60)).

    Rule (a decision tree of depth 2 with one exception; every threshold chosen on the Cityscapes
    train/aachen frames only, lindau held out; see ``scripts/measure_shape_resolution.py``):

    1. A *regular* region (``fit >= min_fit``: it fills its enclosing disc, rectangle or
       triangle — the faces of signs) is a sign, unless ``max_multirun`` or more of its rows
       cross it twice or more (a walking person's legs, a group of people) → person.
    2. An *irregular* region (a silhouette) is a person, unless

       * it ends above ``sign_bottom`` (fraction of the frame height from the top): nothing that
         stands on the road ends that high in a driving camera's frame (the horizon sits at about
         0.40–0.50 H), while a sign seen edge-on or partly occluded does; or
       * it stands on a *foot* wider than its body (``foot >= min_foot``, see
         :attr:`RegionFeatures.foot`): the base plate of a mobile roadwork sign (a beacon) or of
         a standing board. People's feet are no wider than their body; legs apart are two narrow
         runs, not one wide row.

    Why it works: sign faces are convex primitives (solidity and fit near 1) mounted above the
    ground, and the signs that stand on the ground (beacons, boards) stand on a plate; people are
    non-convex silhouettes standing on their feet. Measured (balanced accuracy = mean of the
    person and sign pixel recalls): aachen 96.8 % (tuning), lindau 98.6 % (held out); the
    ``foot`` exception raised them from 94.4 / 93.3 %. What it still gets wrong: compact people
    (standing still, legs together, or cut off by a car or the frame) → sign; people with a wide
    base (sitting, crouching, beside a bicycle) → sign; adjacent signs that touch (a diamond over
    a plate, a gantry of several boards) and boards with holes are irregular → person when they
    end below ``sign_bottom``, which is a camera-geometry assumption: on the official BDD100K 2018
    frames (another camera, no tuning) large near signs end lower, and balanced accuracy is
    90.7 / 88.7 % (train / val; 91.7 / 88.7 % without the ``foot`` exception, which there also
    takes a few people with a wide solid base, cut off by the frame or an occluder, for signs).
    """

    labels: tuple[str, str] = ("person", "parking sign")
    min_fit: float = 0.74
    max_multirun: float = 0.35
    sign_bottom: float = 0.40
    min_foot: float = 1.6

    def classify(self, f: RegionFeatures) -> np.ndarray:
        """``(N,)`` int: 0 = ``labels[0]`` (person), 1 = ``labels[1]`` (sign)."""
        regular = f.fit >= self.min_fit
        standing_sign = (f.bottom < self.sign_bottom) | (f.foot >= self.min_foot)
        sign = np.where(regular, f.multirun < self.max_multirun, standing_sign)
        return sign.astype(np.int64)


@dataclass(frozen=True)
class PoleGroupRule:
    """Pole vs polegroup for one color (Cityscapes and BDD100K: (153, 153, 153)).

    A polegroup is annotated where several poles are too far away or too close together to be
    outlined one by one. Rule: a region is a polegroup when all of

    * its base lies in the horizon band ``band_bottom <= bottom < band_top`` (far away),
    * it is not tall: ``rel_height < max_rel_height``,
    * it is not a speck: ``rel_area >= min_rel_area``,
    * and it is not one slender pole: ``slender < max_slender`` (height below ``max_slender``
      times its mean width: several poles side by side) or ``solidity < max_solidity`` (several
      thin poles joined at the top: a sparse cluster).

    Everything else is a pole. Poles are thin and tall at any distance, so the rule costs few
    pole pixels; its thresholds rest on the only 11 polegroup regions of the sample frames (see
    ``scripts/measure_shape_resolution.py``).
    """

    labels: tuple[str, str] = ("pole", "polegroup")
    band_bottom: float = 0.40
    band_top: float = 0.52
    max_rel_height: float = 0.40
    min_rel_area: float = 150 / (2048 * 1024)
    max_slender: float = 8.0
    max_solidity: float = 0.30

    def classify(self, f: RegionFeatures) -> np.ndarray:
        """``(N,)`` int: 0 = pole, 1 = polegroup."""
        group = ((f.bottom >= self.band_bottom) & (f.bottom < self.band_top)
                 & (f.rel_height < self.max_rel_height) & (f.rel_area >= self.min_rel_area)
                 & ((f.slender < self.max_slender) | (f.solidity < self.max_solidity)))
        return group.astype(np.int64)


@dataclass(frozen=True)
class VoidRule:
    """The black void labels (BDD100K: unlabeled / ego vehicle / static; Cityscapes also has
    rectification border and out of roi, never produced here).

    Rule: a region touching the bottom frame edge and covering less than ``max_ego_area`` of the
    frame is the ego vehicle (its hood); any other region touching a frame edge is unlabeled
    (borders, unannotated frames); a region inside the frame is a static object.
    """

    labels: tuple[str, str, str] = ("unlabeled", "ego vehicle", "static")
    max_ego_area: float = 0.5

    contours: bool = False  # the rule needs no contour features

    def classify(self, f: RegionFeatures) -> np.ndarray:
        """``(N,)`` int: 0 = unlabeled, 1 = ego vehicle, 2 = static."""
        border = f.touches.any(axis=1)
        ego = f.touches[:, 1] & (f.rel_area < self.max_ego_area)
        return np.where(ego, 1, np.where(border, 0, 2)).astype(np.int64)


@dataclass(frozen=True, eq=False)
class ForestRule:
    """A learned shape rule: a forest of decision trees over :func:`model_inputs`, evaluated
    with numpy (no scikit-learn at run time). Every region gets the label of highest mean leaf
    probability over the trees (scikit-learn's ``RandomForestClassifier.predict``; a split sends
    a region left when its input, rounded to float32 as scikit-learn does, is ``<=`` the
    threshold).

    Attributes:
        labels: the label names of the color, in class order.
        feature, threshold, left, right: ``(T, M)`` per tree and node (padded to the largest
            tree): the input index and threshold of each split and its children; a leaf is its
            own child.
        value: ``(T, M, K)`` class probabilities of each leaf.
        depth: the depth of the deepest tree.
        contours: the rule reads the contour features (see :func:`region_features`).
        neighbours: the rule reads :attr:`RegionFeatures.neighbours`.
        max_rel_area: the largest region of its training data (fraction of the frame); a larger
            region (e.g. the all-black frames of the Cityscapes test split, one void region
            covering everything) is outside what the forest has seen and gets the label of
            ``fallback`` instead.
        fallback: the hand-written rule of the same labels (:data:`HAND_RULES`), or None.
    """

    labels: tuple[str, ...]
    feature: np.ndarray = field(repr=False)
    threshold: np.ndarray = field(repr=False)
    left: np.ndarray = field(repr=False)
    right: np.ndarray = field(repr=False)
    value: np.ndarray = field(repr=False)
    depth: int = 0
    contours: bool = True
    neighbours: bool = True
    max_rel_area: float = np.inf
    fallback: Any = None

    @classmethod
    def from_dict(cls, d: dict) -> ForestRule:
        """From one entry of the shipped model file (``trees``: per tree the lists ``feature``,
        ``threshold``, ``left``, ``right`` (-1 at leaves) and ``value`` (the class probabilities
        of a leaf, ``[]`` at a split))."""
        if list(d.get("inputs", MODEL_INPUTS)) != list(MODEL_INPUTS):
            raise SegprepError("shape model", "its inputs differ from segprep's MODEL_INPUTS")
        trees = d["trees"]
        if not trees:
            raise SegprepError("shape model", "a rule without trees")
        t, m, k = len(trees), max(len(tr["left"]) for tr in trees), len(d["labels"])
        feature = np.zeros((t, m), np.int64)
        threshold = np.zeros((t, m))
        left = np.tile(np.arange(m), (t, 1))
        right = left.copy()
        value = np.zeros((t, m, k))
        for i, tr in enumerate(trees):
            n = len(tr["left"])
            lf, rg = np.asarray(tr["left"], np.int64), np.asarray(tr["right"], np.int64)
            split = lf >= 0
            feature[i, :n] = np.where(split, tr["feature"], 0)
            threshold[i, :n] = np.where(split, tr["threshold"], 0.0)
            left[i, :n] = np.where(split, lf, np.arange(n))
            right[i, :n] = np.where(split, rg, np.arange(n))
            for j, v in enumerate(tr["value"]):  # leaves only; splits have []
                if v:
                    value[i, j] = v
        labels = tuple(d["labels"])
        return cls(labels, feature, threshold, left, right, value, int(d["depth"]),
                   bool(d.get("contours", True)), True, float(d.get("max_rel_area", np.inf)),
                   hand_rule(labels))

    def proba(self, f: RegionFeatures) -> np.ndarray:
        """``(N, K)`` mean leaf probabilities of the regions ``f``."""
        x = model_inputs(f).astype(np.float32).astype(np.float64)
        t, n = self.feature.shape[0], x.shape[0]
        if n == 0:
            return np.zeros((0, len(self.labels)))
        tree = np.arange(t)[:, None]
        row = np.arange(n)[None, :]
        node = np.zeros((t, n), np.int64)
        for _ in range(self.depth):
            go_left = x[row, self.feature[tree, node]] <= self.threshold[tree, node]
            node = np.where(go_left, self.left[tree, node], self.right[tree, node])
        return self.value[tree, node].mean(axis=0)

    def classify(self, f: RegionFeatures) -> np.ndarray:
        """``(N,)`` int: index into :attr:`labels` of each region."""
        return large_regions_to_fallback(self.proba(f).argmax(axis=1).astype(np.int64), f,
                                         self.max_rel_area, self.fallback)


def large_regions_to_fallback(choice: np.ndarray, f: RegionFeatures, max_rel_area: float,
                              fallback: Any) -> np.ndarray:
    """A learned rule's ``(N,)`` int64 ``choice`` with every region larger than ``max_rel_area``
    (fraction of the frame: larger than any region the rule was trained on) given the label of
    ``fallback`` (a hand-written rule of the same labels) instead; unchanged without one."""
    big = f.rel_area > max_rel_area
    if fallback is not None and big.any():
        choice[big] = fallback.classify(f)[big]
    return choice


def hand_rule(labels: tuple[str, ...]) -> Any:
    """The rule of :data:`HAND_RULES` with exactly these ``labels`` (the fallback of a learned
    rule of them), or None."""
    return next((r for r in HAND_RULES if tuple(r.labels) == tuple(labels)), None)


SHAPE_MODEL = "shape_model.json"
"""The learned rules shipped in ``segprep/convert/``, beside :mod:`segprep.convert.colors` (written
by ``scripts/train_shape_rule.py fit``; the file names the cities it was trained on)."""


@functools.lru_cache(maxsize=4)
def load_shape_model(path: str | None = None) -> dict[str, ForestRule]:
    """The learned rules of a model file (default: the shipped :data:`SHAPE_MODEL`), by pair name
    (``person/sign``, ``pole/polegroup``, ``void``).

    Raises:
        SegprepError: the file is missing or not a shape model of segprep's inputs.
    """
    import json
    from pathlib import Path

    p = Path(path) if path else Path(__file__).parent.with_name(SHAPE_MODEL)
    try:
        d = json.loads(p.read_text())
        return {name: ForestRule.from_dict(r) for name, r in d["rules"].items()}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SegprepError(p, f"not a readable shape model ({exc})") from None


HAND_RULES: tuple = (PersonSignRule(), PoleGroupRule(), VoidRule())
"""The hand-written shared-color rules (the fallback for a color the shipped model has no rule
for)."""
