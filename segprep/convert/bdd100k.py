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
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from segprep import class_maps
from segprep.convert.colors import decode_colors
from segprep.datasets.bdd100k import ID_SUFFIX, TRAIN_ID_SUFFIX, color_maps, frame_id
from segprep.errors import SegprepError
from segprep.io import read_label, refuse_overwriting_inputs, write_png

PALETTES = ("train", "id")
"""``train``: colors of the trainIds (official color maps); ``id``: the 40-class id palette."""

EMITS = ("train_ids", "ids")
"""Masks that can be written: trainIds (always) and label ids (``--emit ids``)."""

@dataclass(frozen=True)
class BddJob:
    """One color map to convert (picklable, for :func:`segprep.io.run_batch`)."""

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

    @property
    def where(self) -> str:
        """The input file, as error lines name it."""
        return self.src


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
    """One :class:`BddJob` per color map found by :func:`segprep.datasets.bdd100k.color_maps`
    (an ``out`` folder inside ``src`` is not searched).

    Raises:
        SegprepError: nothing found, ``emit_ids`` with the train palette, or two inputs that
            would write the same output, or an output that would replace an input.
    """
    if palette not in PALETTES:
        raise SegprepError("--palette", f"unknown palette {palette!r} (choose from train, id)")
    if emit_ids and palette != "id":
        raise SegprepError("--emit", "ids need --palette id (trainId color maps hold no label "
                                     "ids)")
    out = Path(out)
    base, files = color_maps(src, exclude=out)
    jobs: list = []
    seen: dict[str, str] = {}
    for f in files:
        folder = out / f.parent.relative_to(base)
        fid = frame_id(f)
        target = str(folder / f"{fid}{TRAIN_ID_SUFFIX}")
        if target in seen:
            raise SegprepError(f, f"writes the same output as {seen[target]} ({target})")
        seen[target] = str(f)
        jobs.append(BddJob(str(f), target, str(folder / f"{fid}{ID_SUFFIX}") if emit_ids else None,
                           palette, unknown, overwrite))
    refuse_overwriting_inputs(files, [o for j in jobs for o in j.outputs])
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
