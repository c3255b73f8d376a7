"""Polygon rasterisation for Cityscapes-style annotations.

Backends paint a list of polygons, in order (later polygons overwrite earlier ones), into one
``(H, W)`` int32 map of per-polygon values:

* ``pillow``: ``PIL.ImageDraw.Draw.polygon(points, fill=value)`` with the installed Pillow, exactly
  as cityscapesScripts' ``json2labelImg`` / ``json2instanceImg`` draw (so the result is bit-identical
  to files made by cityscapesScripts with the same Pillow).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw

RASTERS = ("official", "pillow")
"""Rasteriser names accepted by :func:`rasterize`."""


def rasterize_pillow(polygons: Sequence[np.ndarray | Sequence], values: Sequence[int],
                     height: int, width: int, background: int = 0) -> np.ndarray:
    """Paint polygons in order with Pillow's polygon filler (no outline), as cityscapesScripts does.

    Args:
        polygons: per polygon, its ``(K, 2)`` vertices ``(x, y)`` in pixels, as stored in the JSON.
        values: per polygon, the int value to paint (``0 <= v < 2**31``).
        height, width: canvas size in pixels.
        background: value of unpainted pixels.

    Returns:
        ``(height, width)`` int32 map.
    """
    img = Image.new("I", (int(width), int(height)), int(background))
    draw = ImageDraw.Draw(img)
    for poly, value in zip(polygons, values):
        pts = [(p[0], p[1]) for p in (poly.tolist() if isinstance(poly, np.ndarray) else poly)]
        draw.polygon(pts, fill=int(value))
    return np.asarray(img, dtype=np.int32)


def rasterize(polygons: Sequence[np.ndarray | Sequence], values: Sequence[int], height: int,
              width: int, background: int = 0, method: str = "official") -> np.ndarray:
    """Paint polygons in order with the named rasteriser (see :data:`RASTERS`).

    Returns:
        ``(height, width)`` int32 map.

    Raises:
        ValueError: unknown ``method``.
    """
    if method == "pillow":
        return rasterize_pillow(polygons, values, height, width, background)
    if method == "official":
        return rasterize_official(polygons, values, height, width, background)
    raise ValueError(f"unknown rasteriser {method!r}; choose one of {', '.join(RASTERS)}")


def rasterize_official(polygons: Sequence[np.ndarray | Sequence], values: Sequence[int],
                       height: int, width: int, background: int = 0) -> np.ndarray:
    """Paint polygons in order with the rule that reproduces the official Cityscapes PNGs."""
    raise NotImplementedError("the official rasteriser is being written (issue 8)")
