"""BDD100K semantic-segmentation color maps → trainId masks (and id-level masks).

Inputs (found recursively under SRC, or SRC itself when it is a file):

* the official 2018 release ``seg/color_labels/{train,val}/<frame>_train_color.png`` — RGB(A),
  colored by trainId (ignore = black): ``--palette train``;
* the 2020+ release ``labels/sem_seg/colormaps/{train,val}/<frame>.png`` — palette-mode PNGs whose
  indices are trainIds, used directly: ``--palette train``;
* color maps painted with the id-level 40-class palette of ``bdd100k/label/label.py``
  (``<frame>_color.png`` or ``<frame>.png``): ``--palette id``. Colors shared by several labels
  (person / parking sign, pole / polegroup, the black void labels) are resolved by the shape of
  each region (:mod:`segprep.convert.colors`).

A file is taken when its name ends with ``_train_color.png`` or ``_color.png``, when its name is a
BDD100K frame id (``<8 hex>-<8 hex>.png``), or when it lies in a folder named ``colormaps``.
Outputs are named as the official 2018 masks, ``<frame>_train_id.png`` (trainIds 0–18, 255 =
ignore), in OUT, mirroring the sub-folders of SRC (``train/``, ``val/``); ``--emit ids`` also writes
``<frame>_id.png`` with the label ids (id palette only).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from segprep import class_maps
from segprep.convert.colors import decode_colors
from segprep.errors import SegprepError
from segprep.io import find_files, read_label, write_png

PALETTES = ("train", "id")
"""``train``: colors of the trainIds (official color maps); ``id``: the 40-class id palette."""

EMITS = ("train_ids", "ids")
"""Masks that can be written: trainIds (always) and label ids (``--emit ids``)."""

TRAIN_ID_SUFFIX = "_train_id.png"
ID_SUFFIX = "_id.png"
INPUT_SUFFIXES = ("_train_color.png", "_color.png")
FRAME_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{8}\.png$")
"""A bare BDD100K frame-id file name (the 2020+ colormaps)."""


def frame_id(path: str | os.PathLike) -> str:
    """The frame id of an input file: its name without ``_train_color.png``, ``_color.png`` or
    ``.png`` (``0004a4c0-d4dff0ad_train_color.png`` → ``0004a4c0-d4dff0ad``)."""
    name = Path(path).name
    for suffix in INPUT_SUFFIXES + (".png",):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return Path(name).stem


def is_input(path: Path) -> bool:
    """Whether a PNG found under SRC is a BDD100K color map (see the module docstring)."""
    name = path.name
    if not name.endswith(".png") or name.endswith(TRAIN_ID_SUFFIX) or name.endswith(ID_SUFFIX):
        return False
    return (name.endswith(INPUT_SUFFIXES) or bool(FRAME_RE.match(name))
            or "colormaps" in path.parent.parts)


def discover(src: str | os.PathLike) -> tuple[Path, list[Path]]:
    """The color maps to convert and the folder their relative paths start from.

    Args:
        src: a folder (searched recursively) or one PNG file.

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
    files = [f for f in find_files(src, ".png") if is_input(f.resolve())]
    if not files:
        raise SegprepError(src, "no BDD100K color maps found (*_train_color.png, *_color.png, "
                                "<frame>.png or colormaps/*.png)")
    return src, files


@dataclass(frozen=True)
class BddJob:
    """One color map to convert (picklable, for :func:`segprep.io.parallel_map`)."""

    src: str
    out: str
    out_ids: str | None = None
    palette: str = "train"
    unknown: str = "error"
    overwrite: bool = False
    class_map: str = "bdd100k"

    @property
    def outputs(self) -> list[str]:
        return [self.out] + ([self.out_ids] if self.out_ids else [])


@dataclass
class BddResult:
    """What :func:`convert_file` did."""

    skipped: bool = False
    unknown_pixels: int = 0
    palette_indices: bool = False
    regions: dict[str, int] = field(default_factory=dict)


def make_jobs(src: str | os.PathLike, out: str | os.PathLike, *, palette: str = "train",
              emit_ids: bool = False, unknown: str = "error", overwrite: bool = False
              ) -> list[BddJob]:
    """One :class:`BddJob` per color map found by :func:`discover`.

    Raises:
        SegprepError: nothing found, ``emit_ids`` with the train palette, or two inputs that
            would write the same output.
    """
    if palette not in PALETTES:
        raise SegprepError("--palette", f"unknown palette {palette!r} (choose from train, id)")
    if emit_ids and palette != "id":
        raise SegprepError("--emit", "ids need --palette id (trainId color maps hold no label "
                                     "ids)")
    base, files = discover(src)
    out = Path(out)
    jobs, seen = [], {}
    for f in files:
        folder = out / f.parent.relative_to(base)
        fid = frame_id(f)
        target = str(folder / f"{fid}{TRAIN_ID_SUFFIX}")
        if target in seen:
            raise SegprepError(f, f"writes the same output as {seen[target]} ({target})")
        seen[target] = str(f)
        jobs.append(BddJob(str(f), target, str(folder / f"{fid}{ID_SUFFIX}") if emit_ids else None,
                           palette, unknown, overwrite))
    return jobs


def convert_file(job: BddJob) -> BddResult:
    """Convert one color map: decode it and write the trainId (and id) mask atomically.

    Outputs that all exist are skipped unless ``job.overwrite``.

    Raises:
        SegprepError: unreadable or truncated PNG, not a color image, or a color not in the
            palette (with ``unknown="error"``).
    """
    import cv2

    if not job.overwrite and all(os.path.exists(o) for o in job.outputs):
        return BddResult(skipped=True)
    image, pal_colors = read_label(job.src)
    level = "train" if job.palette == "train" else "id"
    values, stats = decode_colors(image, job.class_map, level=level, palette_colors=pal_colors,
                                  unknown=job.unknown,  # type: ignore[arg-type]
                                  resolve_shared="all" if job.out_ids else "train_ids",
                                  where=job.src)
    if level == "train":
        train_ids = values
    else:
        train_ids = cv2.LUT(values, class_maps.load(job.class_map).id_to_train_id)
    write_png(job.out, train_ids)
    if job.out_ids:
        write_png(job.out_ids, values)
    return BddResult(unknown_pixels=stats.unknown_pixels, palette_indices=stats.palette_indices,
                     regions=stats.regions)


def convert_array(image: np.ndarray, palette: str = "train", palette_colors: np.ndarray | None = None,
                  unknown: str = "error", where: str | None = None) -> np.ndarray:
    """Decode one BDD100K color map already in memory to ``(H, W)`` uint8 trainIds.

    Args:
        image: ``(H, W, 3|4)`` uint8 RGB(A), or ``(H, W)`` uint8 palette indices with
            ``palette_colors``.
        palette: ``train`` or ``id`` (see :data:`PALETTES`).

    Raises:
        SegprepError: as :func:`segprep.convert.colors.decode_colors`.
    """
    import cv2

    level = "train" if palette == "train" else "id"
    values, _ = decode_colors(image, "bdd100k", level=level, palette_colors=palette_colors,
                              unknown=unknown,  # type: ignore[arg-type]
                              resolve_shared="train_ids", where=where)
    if level == "train":
        return values
    return cv2.LUT(values, class_maps.load("bdd100k").id_to_train_id)
