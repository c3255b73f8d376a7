"""Cityscapes conventions: folders (``<root>/{gtFine,gtCoarse,leftImg8bit}/<split>/<city>/``),
file suffixes, split names, the frame key ``<city>_<seq>_<frame>`` and the one rule that matches
a file (a prediction, an image) to a frame. Source: mcordts/cityscapesScripts 2.3.0
(``helpers/csHelpers.getCsFileInfo``, ``evaluation/evalPixelLevelSemanticLabeling.getPrediction``).
"""

from __future__ import annotations

import bisect
import os
from collections.abc import Sequence
from pathlib import Path

from segprep.datasets.generic import Match, Pairing, pair_by_stem
from segprep.errors import SegprepError
from segprep.io import find_files

PathLike = str | os.PathLike

SPLITS = ("train", "val", "test", "train_extra")
GT_TYPES = ("gtFine", "gtCoarse")
POLYGON_SUFFIX = "_polygons.json"
IMAGE_SUFFIX = "_leftImg8bit.png"
LABEL_IDS_SUFFIX = "_gtFine_labelIds.png"
INSTANCE_IDS_SUFFIX = "_gtFine_instanceIds.png"
TRAIN_IDS_SUFFIX = "_gtFine_labelTrainIds.png"
SIZE = (2048, 1024)
"""``(width, height)`` of every Cityscapes frame."""
INSTANCE_MIN = 1000
"""Instance ids ``>= INSTANCE_MIN`` are instances (``label_id * 1000 + k``); below, a pixel of a
class without an instance id holds its label id (cityscapesScripts ``instanceNp > 1000``)."""

MATCH_RULE = "named <city>_<seq>_<frame> followed by a non-digit (e.g. _leftImg8bit.png)"


def frame_key(path: PathLike) -> str:
    """``<city>_<seq>_<frame>`` of a Cityscapes file name (cityscapesScripts ``getCsFileInfo``).

    Raises:
        SegprepError: the name does not have the Cityscapes form.
    """
    parts = Path(path).name.split("_")
    if len(parts) < 4:
        raise SegprepError(path, "not a Cityscapes file name (<city>_<seq>_<frame>_<type>.png)")
    return "_".join(parts[:3])


def match_predictions(keys: Sequence[str], files: Sequence[Path]) -> Match:
    """The one rule matching files to Cityscapes frames (evaluate, submit, predict naming).

    A file belongs to frame ``K`` when its name starts with ``K`` and the next character is not a
    digit (``K_leftImg8bit.png``, ``K.png``, ``K_pred.png``): cityscapesScripts' ``K*.png``
    pattern, without the ambiguity of a longer frame number. Binary search over sorted names.
    """
    names = sorted(files, key=lambda p: p.name)
    just = [p.name for p in names]
    match = Match([])
    used: set[Path] = set()
    for key in keys:
        i = bisect.bisect_left(just, key)
        hits = []
        while i < len(just) and just[i].startswith(key):
            if len(just[i]) == len(key) or not just[i][len(key)].isdigit():
                hits.append(names[i])
            i += 1
        used.update(hits)
        if not hits:
            match.missing.append(key)
            match.files.append(None)
        elif len(hits) > 1:
            match.multiple[key] = hits
            match.files.append(None)
        else:
            match.files.append(hits[0])
    match.extra = [p for p in names if p not in used]
    return match


def polygon_files(root: PathLike, gt: str = "gtFine", splits: Sequence[str] | None = None
                  ) -> list[Path]:
    """All ``*_polygons.json`` under ``ROOT/<gt>/<split>/<city>/``, sorted.

    Args:
        root: the Cityscapes root (holding ``gtFine/`` …).
        gt: ``gtFine`` or ``gtCoarse``.
        splits: splits to include (default: every one present).

    Raises:
        SegprepError: ``ROOT/<gt>`` or a requested split folder is missing.
    """
    root = Path(root)
    gt_dir = root / gt
    if not gt_dir.is_dir():
        raise SegprepError(root, f"no {gt}/ folder: not a Cityscapes root")
    if splits:
        missing = [s for s in splits if not (gt_dir / s).is_dir()]
        if missing:
            raise SegprepError(gt_dir, f"no split folder(s) {', '.join(missing)}")
        dirs = [gt_dir / s for s in splits]
    else:
        dirs = [gt_dir / s for s in SPLITS if (gt_dir / s).is_dir()]
    files: list[Path] = []
    for d in dirs:
        files.extend(find_files(d, POLYGON_SUFFIX))
    return files


def gt_label_files(root: PathLike, split: str = "val") -> list[Path]:
    """The ``*_gtFine_labelIds.png`` files of ``<root>/gtFine/<split>/<city>/``, sorted.

    Raises:
        SegprepError: the folder is missing or holds no labelIds files.
    """
    folder = Path(root) / "gtFine" / split
    if not folder.is_dir():
        raise SegprepError(folder, "no such directory (expected <root>/gtFine/<split>/<city>/)")
    files = find_files(folder, LABEL_IDS_SUFFIX)
    if not files:
        raise SegprepError(folder, "no *_gtFine_labelIds.png files (run `segprep cityscapes "
                                   "gen-gt --targets labelIds,instanceIds` first?)")
    return files


def instance_file(label_ids_file: PathLike) -> str:
    """The ``*_gtFine_instanceIds.png`` beside a ``*_gtFine_labelIds.png``."""
    return str(label_ids_file).replace(LABEL_IDS_SUFFIX, INSTANCE_IDS_SUFFIX)


def split_frames(root: PathLike, split: str) -> list[str]:
    """Frame keys of every image of ``split``: from ``ROOT/leftImg8bit/<split>``, or from
    ``ROOT/gtFine/<split>`` where the images are absent.

    Raises:
        SegprepError: neither folder holds frames of the split.
    """
    root = Path(root)
    img = root / "leftImg8bit" / split
    if img.is_dir():
        files = find_files(img, IMAGE_SUFFIX)
        if files:
            return sorted({frame_key(f) for f in files})
    gt = root / "gtFine" / split
    if gt.is_dir():
        files = [f for f in find_files(gt, "") if "_gtFine_" in f.name]
        if files:
            return sorted({frame_key(f) for f in files})
    raise SegprepError(root, f"no images of split {split!r} (looked in leftImg8bit/{split} and "
                             f"gtFine/{split})")


def pairing(root: Path, split: str, image_suffix: str | None = None,
            mask_suffix: str | None = None) -> Pairing:
    """Images ``ROOT/leftImg8bit/S/<city>/*_leftImg8bit.png`` with masks
    ``ROOT/gtFine/S/<city>/*_gtFine_labelTrainIds.png`` (written by ``segprep cityscapes gen-gt``;
    ``mask_suffix="_gtFine_labelIds.png"`` pairs the released label ids instead)."""
    masks = root / "gtFine" / split
    if not masks.is_dir():
        raise SegprepError(masks, f"no such directory (expected by the layout under {root})")
    return pair_by_stem(root / "leftImg8bit" / split, masks, image_suffix or IMAGE_SUFFIX,
                        mask_suffix or TRAIN_IDS_SUFFIX, missing_images_ok=True)
