"""BDD100K conventions: the 2018 (``seg/``) and 2020+ (``images/10k``, ``labels/sem_seg``)
layouts, color-map and mask suffixes, the frame id and how files map to it. Source:
bdd100k/bdd100k (``bdd100k/label/label.py``, ``bdd100k/eval/seg.py``) and the releases' layouts.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from segprep.datasets.generic import Pairing, pair_by_stem
from segprep.errors import SegprepError
from segprep.io import find_files

PathLike = str | os.PathLike

TRAIN_ID_SUFFIX = "_train_id.png"
ID_SUFFIX = "_id.png"
INPUT_SUFFIXES = ("_train_color.png", "_color.png")
FRAME_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{8}\.png$")
"""A bare BDD100K frame-id file name (the 2020+ colormaps)."""
GT_SUFFIXES = ("_train_id", "_train_ids", "_mask")
"""Suffixes of ground-truth stems (2018 release ``<name>_train_id.png``) that predictions named
``<name>.png`` omit."""
SIZE = (1280, 720)
"""``(width, height)`` of every BDD100K frame."""


def frame_id(path: PathLike) -> str:
    """The frame id of an input file: its name without ``_train_color.png``, ``_color.png`` or
    ``.png`` (``0004a4c0-d4dff0ad_train_color.png`` → ``0004a4c0-d4dff0ad``)."""
    name = Path(path).name
    for suffix in INPUT_SUFFIXES + (".png",):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return Path(name).stem


def gt_keys(path: PathLike) -> list[str]:
    """Stems a prediction of this ground-truth file may have: its stem, and the stem without one
    of :data:`GT_SUFFIXES` (``x_train_id.png`` → ``["x_train_id", "x"]``)."""
    stem = Path(path).name.rsplit(".", 1)[0]
    keys = [stem]
    for s in GT_SUFFIXES:
        if stem.endswith(s) and len(stem) > len(s):
            keys.append(stem[: -len(s)])
    return keys


def is_color_map(path: Path) -> bool:
    """Whether a PNG is a BDD100K color map (``*_train_color.png``, ``*_color.png``, a bare
    ``<frame id>.png`` or any PNG under a ``colormaps`` folder), not a mask segprep wrote."""
    name = path.name
    if not name.endswith(".png") or name.endswith(TRAIN_ID_SUFFIX) or name.endswith(ID_SUFFIX):
        return False
    return (name.endswith(INPUT_SUFFIXES) or bool(FRAME_RE.match(name))
            or "colormaps" in path.parent.parts)


def color_maps(src: PathLike, exclude: PathLike | None = None) -> tuple[Path, list[Path]]:
    """The color maps to convert and the folder their relative paths start from.

    Args:
        src: a folder (searched recursively) or one PNG file.
        exclude: a folder not to search (the output folder, when inside ``src``).

    Returns:
        ``(base, files)``: files are sorted; outputs mirror ``file.parent.relative_to(base)``.

    Raises:
        SegprepError: ``src`` missing or unreadable, or a folder without color maps.
    """
    src = Path(src)
    if src.is_file():
        return src.parent, [src]
    if not src.exists():
        raise SegprepError(src, "no such file or directory")
    files = [f for f in find_files(src, ".png", exclude=[exclude]) if is_color_map(f.resolve())]
    if not files:
        raise SegprepError(src, "no BDD100K color maps found (*_train_color.png, *_color.png, "
                                "<frame>.png or colormaps/*.png)")
    return src, files


def pairing(root: Path, split: str, image_suffix: str | None = None,
            mask_suffix: str | None = None) -> Pairing:
    """Images with trainId masks, first layout found: the 2020+ release
    ``ROOT/images/10k/S/*.jpg`` <-> ``ROOT/labels/sem_seg/masks/S/*.png``; the 2018 release
    ``ROOT/seg/images/S/*.jpg`` <-> ``ROOT/seg/labels/S/*_train_id.png`` (``ROOT`` may also be
    the ``seg`` folder itself)."""
    layouts = [
        (root / "images" / "10k" / split, root / "labels" / "sem_seg" / "masks" / split, ".png"),
        (root / "seg" / "images" / split, root / "seg" / "labels" / split, TRAIN_ID_SUFFIX),
        (root / "images" / split, root / "labels" / split, TRAIN_ID_SUFFIX),
    ]
    for images, masks, msuffix in layouts:
        if images.is_dir() or masks.is_dir():
            if not masks.is_dir():
                raise SegprepError(masks, f"no such directory (expected by the layout under "
                                          f"{root})")
            return pair_by_stem(images, masks, image_suffix or ".jpg", mask_suffix or msuffix,
                                missing_images_ok=True)
    raise SegprepError(root, f"no BDD100K layout for split {split!r}: expected images/10k/"
                             f"{split} + labels/sem_seg/masks/{split} (2020+) or seg/images/"
                             f"{split} + seg/labels/{split} (2018)")
