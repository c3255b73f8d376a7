"""Deciding what a set of Cityscapes predictions holds, trainIds or labelIds (``--pred-ids auto``).

Submitting trainIds as labelIds is a classic wasted benchmark submission: trainIds 0-18 are also
valid labelIds (unlabeled, ego vehicle, …, pole, polegroup), so a value check alone passes them.
The rule, from each prediction's histogram of values (source of the conventions:
cityscapesScripts ``helpers/labels.py``):

1. Values outside ``0-18, 255`` (the trainIds) → the file holds labelIds; values outside the
   label ids → it holds trainIds; values outside both → invalid either way (left to the
   value check, which names them).
2. Values within ``0-18`` only are valid both ways. Read as labelIds, a trainId prediction puts
   most pixels on classes a labelId model never predicts (road 0 → *unlabeled*, sidewalk 1 →
   *ego vehicle*, building 2 → *rectification border*, … every class marked ``ignoreInEval``).
   So: the share of pixels that would be such void labelIds ``>= TRAIN_IDS_VOID_SHARE`` → trainIds;
   ``<= LABEL_IDS_VOID_SHARE`` → labelIds; in between → undecided.
3. The set is decided when every decided file agrees (an undecided file is valid both ways, or
   neither way: then the value check names its bad values); files that disagree, or no decided
   file at all, are refused (set ``--pred-ids``).
   A trainIds verdict resting on rule 2 alone also needs the set to use at least
   :data:`MIN_TRAIN_CLASSES` train classes, as a model's predictions of driving scenes do (the
   official labelIds of the test split, which hold only ego vehicle, rectification border and out
   of roi, would otherwise pass for trainIds).

Measured: trainId predictions of a small checkpoint trained on the four real aachen frames (as in
``tests/test_pred_ids.py``) put 85-89 % of their pixels on void labelIds, their labelId twins 0 %;
the 59 official lindau val frames mapped to trainIds (ignore written as road) 49-99 %, so a single
frame can be undecided while the set is not.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from segprep.class_maps import IGNORE_INDEX, ClassMap
from segprep.errors import SegprepError

TRAIN_IDS_VOID_SHARE = 0.5
"""A prediction whose values, read as labelIds, put at least this share of its pixels on
ignore-in-eval classes holds trainIds."""
LABEL_IDS_VOID_SHARE = 0.05
"""…and at most this share: it holds labelIds."""
MIN_TRAIN_CLASSES = 5
"""Train classes (0-18) a set of trainId predictions uses at the least (road, sidewalk, building,
vegetation, sky, car … are in nearly every frame)."""


@dataclass(frozen=True)
class Decision:
    """What ``--pred-ids auto`` decided: ``kind`` (``trainIds`` or ``labelIds``) and one line
    saying why, to print."""

    kind: str
    reason: str


def valid_values(cmap: ClassMap, kind: str) -> np.ndarray:
    """``(256,)`` bool: the values a prediction holding ``kind`` may use — ``trainIds``: the
    table's trainIds and :data:`~segprep.class_maps.IGNORE_INDEX`; ``labelIds``: its label ids
    (the one definition for evaluate, submit and ``auto``)."""
    ok = np.zeros(256, bool)
    if kind == "trainIds":
        ok[np.unique(cmap.train_ids[cmap.train_ids >= 0])] = True
        ok[IGNORE_INDEX] = True
    else:
        ok[cmap.valid_ids] = True
    return ok


def _tables(cmap: ClassMap) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    train_ok, label_ok = valid_values(cmap, "trainIds"), valid_values(cmap, "labelIds")
    void = np.zeros(256, bool)
    ids = np.asarray(cmap.ids)
    void[ids[(ids >= 0) & (ids < 256) & cmap.ignore_in_eval]] = True
    return train_ok, label_ok, void


def classify(hist: np.ndarray, cmap: ClassMap) -> str | None:
    """``"trainIds"``, ``"labelIds"`` or ``None`` (undecided) for one prediction's ``(256,)``
    histogram of values (rules 1 and 2 of the module docstring)."""
    train_ok, label_ok, void = _tables(cmap)
    present = hist > 0
    fits_train = not np.any(present & ~train_ok)
    fits_label = not np.any(present & ~label_ok)
    if fits_train != fits_label:
        return "trainIds" if fits_train else "labelIds"
    if not fits_train:
        return None
    total = hist.sum()
    share = hist[void].sum() / total if total else 0.0
    if share >= TRAIN_IDS_VOID_SHARE:
        return "trainIds"
    if share <= LABEL_IDS_VOID_SHARE:
        return "labelIds"
    return None


def decide(histograms: Sequence[np.ndarray], names: Sequence[str], cmap: ClassMap) -> Decision:
    """Decide what a whole prediction set holds (rule 3 of the module docstring).

    Args:
        histograms: one ``(256,)`` int64 value histogram per prediction file.
        names: the files, for the messages.
        cmap: the label table (``cityscapes``).

    Raises:
        SegprepError: naming ``--pred-ids``, when the files disagree or nothing decides.
    """
    kinds = [classify(h, cmap) for h in histograms]
    n_train, n_label = kinds.count("trainIds"), kinds.count("labelIds")
    if n_train and n_label:
        ex_t = names[kinds.index("trainIds")]
        ex_l = names[kinds.index("labelIds")]
        raise SegprepError("--pred-ids", f"predictions disagree: {n_train} look like trainIds "
                                         f"(e.g. {ex_t}), {n_label} like labelIds (e.g. {ex_l}); "
                                         "make them one kind or set --pred-ids")
    if not n_train and not n_label:
        raise SegprepError("--pred-ids", f"cannot tell whether the {len(kinds)} predictions hold "
                                         "trainIds or labelIds; set --pred-ids")
    kind = "trainIds" if n_train else "labelIds"
    train_ok, label_ok, void = _tables(cmap)
    total = np.sum(histograms, axis=0)
    if kind == "trainIds" and not np.any((total > 0) & ~label_ok):  # rule 2 alone
        used = int(np.count_nonzero(total[:IGNORE_INDEX] * train_ok[:IGNORE_INDEX]))
        if used < MIN_TRAIN_CLASSES:
            raise SegprepError("--pred-ids", f"cannot tell whether the {len(kinds)} predictions "
                                             f"hold trainIds or labelIds (values "
                                             f"{', '.join(map(str, np.flatnonzero(total)))}); "
                                             "set --pred-ids")
    share = total[void].sum() / max(int(total.sum()), 1)
    why = (f"values within 0-18/255 and {share:.0%} of pixels would be void labelIds"
           if kind == "trainIds" else
           f"{share:.1%} of pixels on void labelIds" + (
               "" if not np.any((total > 0) & ~train_ok) else ", values outside the trainIds"))
    return Decision(kind, f"--pred-ids auto: {kind} ({len(kinds)} files; {why})")
