"""What a prediction looks like on disk: class indices, label ids, colors, or overlays.

Formats:

* ``trainIds``: ``(H, W)`` uint8 argmax class ``0..K-1``;
* ``labelIds``: the class map's ``train_id_to_id`` of it (needs a model with a class map);
* ``color``: ``(H, W, 3)`` uint8, the class map's trainId palette (a generated palette without a
  class map);
* ``overlay``: the image blended with the color mask (``alpha`` the colors' weight);
* ``side-by-side``: ``(H, 2W, 3)`` the image beside the color mask.
"""

from __future__ import annotations

import numpy as np

from segprep.class_maps import ClassMap
from segprep.errors import SegprepError

FORMATS = ("trainIds", "labelIds", "color", "overlay", "side-by-side")
MASK_FORMATS = ("trainIds", "labelIds")
VIDEO_FORMATS = ("overlay", "side-by-side", "color")


def default_palette(n: int = 256) -> np.ndarray:
    """``(n, 3)`` uint8 palette for class maps without colors: the bit-interleaving palette of the
    PASCAL VOC devkit (``VOClabelcolormap``), computed."""
    pal = np.zeros((n, 3), np.uint8)
    for i in range(n):
        c, r, g, b = i, 0, 0, 0
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        pal[i] = (r, g, b)
    return pal


def render(pred: np.ndarray, image: np.ndarray | None, fmt: str, class_map: ClassMap | None,
           alpha: float = 0.5) -> np.ndarray:
    """Turn an ``(H, W)`` uint8 trainId prediction into the array written for ``fmt``.

    Args:
        pred: ``(H, W)`` uint8 trainIds.
        image: ``(H, W, 3)`` uint8 RGB (needed for overlay and side-by-side).
        fmt: one of :data:`FORMATS`.
        class_map: colors and label ids (None: generated palette, no labelIds).
        alpha: weight of the colors in an overlay, in ``[0, 1]``.

    Returns:
        ``(H, W)`` uint8 for trainIds/labelIds, ``(H, W, 3)`` uint8 for color/overlay,
        ``(H, 2W, 3)`` uint8 for side-by-side.

    Raises:
        SegprepError: ``labelIds`` without a class map; unknown format.
    """
    if fmt == "trainIds":
        return pred
    if fmt == "labelIds":
        if class_map is None:
            raise SegprepError("--format", "labelIds needs a checkpoint trained with a class map")
        return class_map.train_id_to_id[pred]
    palette = class_map.train_colors if class_map is not None else default_palette()
    color = palette[pred]
    if fmt == "color":
        return color
    if image is None:
        raise SegprepError("--format", f"{fmt} needs the image")
    if fmt == "overlay":
        blend = image.astype(np.float32) * (1 - alpha) + color.astype(np.float32) * alpha
        return np.clip(blend + 0.5, 0, 255).astype(np.uint8)
    if fmt == "side-by-side":
        return np.concatenate([image, color], axis=1)
    raise SegprepError("--format", f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")
