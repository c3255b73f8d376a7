"""Shape and position of the 8-connected regions of one mask, and the inputs of a learned rule.

:func:`region_features` labels the regions of a mask (one shared color of a frame) and measures
them (:class:`RegionFeatures`: box, area, contour fits, row profile, frame contacts and, with the
frame's label ids, the :data:`NEIGHBOUR_GROUPS` around each region); :func:`model_inputs` turns
those features into the ``(N, len(MODEL_INPUTS))`` table the learned rules read
(:mod:`segprep.convert.shape.rules`, :mod:`segprep.convert.shape.net`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from segprep import class_maps
from segprep.class_maps import ClassMap


@dataclass(frozen=True)
class RegionFeatures:
    """Shape and position of the 8-connected regions of one mask (region ``k`` has label ``k + 1``
    in the label image returned beside it by :func:`region_features`).

    All arrays have shape ``(N,)``. Positions are fractions of the frame height ``H`` (rows,
    0 = top) so that rules transfer between frame sizes.

    Attributes:
        height, width: frame size in pixels.
        area: pixels of the region (int64).
        x, y, w, h: bounding box in pixels (int64).
        rel_area: ``area / (H * W)``.
        bottom: ``(y + h) / H``, the lowest row of the region (where an object stands).
        rel_height: ``h / H``.
        extent: ``area / (w * h)``.
        solidity: contour area / convex-hull area (outer contour through pixel centers; 1 for
            regions too thin to have an area).
        fit: how well the region fills the smallest enclosing circle, rotated rectangle or
            triangle (contour area / shape area, the best of the three; 1 for degenerate regions):
            sign faces (discs, rectangles, triangles) score near 1.
        multirun: fraction of the region's rows that cross it more than once (gaps between legs,
            between poles).
        foot: width of the region's base relative to its body: the largest pixel count of a row
            that crosses the region once, in the bottom ``FOOT_ROWS`` (15 %) of its rows, divided
            by the median pixel count of the rows above (0 when no base row is a single run, 1
            for regions of one row). The foot plate of a mobile sign or of a standing board is a
            solid row about twice as wide as its post; a person's feet are no wider than their
            body, and legs apart cross a row twice.
        slender: ``h**2 / area`` = height / mean row width.
        head: width of the region's top relative to its body: the median pixel count of the top
            :data:`FOOT_ROWS` of its rows over the median of all rows (a person's head is
            narrower than the shoulders, about 0.4–0.6; a beacon's rounded top or a board's
            edge about 1; 1 for regions too small or too short to tell).
        spread: how much the row widths vary over the middle 70 % of the rows (their standard
            deviation over their mean: arms, a bag, legs apart make a person's width vary; a
            beacon's or a pole's stays constant; 0 when not measured).
        strokes: the number of separate runs that the rows cross, its 90th percentile over the
            rows (several poles side by side, legs apart: 2 or more; one pole: 1).
        tall_cols: fraction of the region's columns that hold pixels over more than half its
            height (a pole with an arm or a sign on top: few; a group of poles, a person: many).
        base: the widest span (first to last pixel, gaps included) among the bottom
            :data:`FOOT_ROWS` of its rows over the median row width (like ``foot`` but also for a
            base crossed twice, e.g. a plate seen through the post's gap).
        corners: vertices of the outer contour simplified to within one pixel
            (``cv2.approxPolyDP``) per 100 pixels of its length: label maps are drawn from
            polygons, and rigid objects (signs, beacons, poles) are outlined with few long edges,
            people with many short ones (0 when not measured).
        touches: ``(N, 4)`` bool: touches the top, bottom, left, right frame edge.
        neighbours: ``(N, G)`` float64 or None: of the pixels just outside the region (its
            8-connected outer ring), the fraction in each of the :data:`NEIGHBOUR_GROUPS` (what
            the region touches: a sign hangs on a pole against the sky, a person stands on the
            sidewalk); rows sum to 1 (0 for a region filling the frame). None unless
            :func:`region_features` was given the surrounding values.
    """

    height: int
    width: int
    area: np.ndarray
    x: np.ndarray
    y: np.ndarray
    w: np.ndarray
    h: np.ndarray
    rel_area: np.ndarray
    bottom: np.ndarray
    rel_height: np.ndarray
    extent: np.ndarray
    solidity: np.ndarray
    fit: np.ndarray
    multirun: np.ndarray
    foot: np.ndarray
    slender: np.ndarray
    head: np.ndarray
    spread: np.ndarray
    strokes: np.ndarray
    tall_cols: np.ndarray
    base: np.ndarray
    corners: np.ndarray
    touches: np.ndarray
    neighbours: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.area.shape[0])


#: regions smaller than this (pixels) get no contour analysis (the values of
#: :data:`CONTOUR_DEFAULTS`).
_MIN_CONTOUR_AREA = 6

#: the base of a region, for :attr:`RegionFeatures.foot`: this fraction of its rows, at the bottom.
FOOT_ROWS = 0.15

CONTOUR_DEFAULTS = {"solidity": 1.0, "fit": 1.0, "multirun": 0.0, "foot": 1.0, "head": 1.0,
                    "spread": 0.0, "strokes": 1.0, "tall_cols": 1.0, "base": 1.0,
                    "corners": 0.0}
"""The contour and row features of a region that is not analysed (``contours=False``, or fewer
than 6 pixels)."""


NEIGHBOUR_GROUPS = ("flat", "construction", "pole", "object", "nature", "sky", "human", "vehicle",
                    "void")
"""Groups of the colors around a region (:attr:`RegionFeatures.neighbours`): the class map's
``category`` of the color's first label (Cityscapes and BDD100K use these categories), except
``pole`` (the pole / polegroup color), ``human`` (any color holding ``person``, e.g. BDD100K's
person / parking sign) and ``void`` (black, unknown colors and any other category)."""


@functools.lru_cache(maxsize=16)
def neighbour_groups(class_map: str | ClassMap) -> np.ndarray:
    """``(256,)`` uint8: label id → its color's index in :data:`NEIGHBOUR_GROUPS` (every label of
    a shared color gets the group of that color, so the group of a pixel does not change when the
    color is resolved; ids outside the table → ``void``)."""
    cm = class_maps.load(class_map) if isinstance(class_map, str) else class_map
    lut = np.full(256, NEIGHBOUR_GROUPS.index("void"), np.uint8)
    by_color: dict[tuple[int, int, int], list[int]] = {}
    for r, (i, c) in enumerate(zip(cm.ids, cm.colors)):
        if 0 <= i < 256:
            by_color.setdefault((int(c[0]), int(c[1]), int(c[2])), []).append(r)
    for rows in by_color.values():
        names = {cm.names[r] for r in rows}
        cat = cm.categories[rows[0]]
        group = ("pole" if "pole" in names else "human" if "person" in names
                 else cat if cat in NEIGHBOUR_GROUPS else "void")
        for r in rows:
            lut[cm.ids[r]] = NEIGHBOUR_GROUPS.index(group)
    lut.setflags(write=False)
    return lut


def region_features(mask: np.ndarray, contours: bool = True, values: np.ndarray | None = None,
                    value_groups: np.ndarray | None = None) -> tuple[np.ndarray, RegionFeatures]:
    """Label the 8-connected regions of a mask and measure them.

    Args:
        mask: ``(H, W)`` bool or uint8 (non-zero = in).
        contours: also compute the contour and row features (solidity, fit, multirun, foot,
            head, spread, strokes, tall_cols, base, corners); without them they are
            :data:`CONTOUR_DEFAULTS`.
        values: optional ``(H, W)`` uint8 label ids around the mask, with ``value_groups``
            (``(256,)`` uint8 id → group, :func:`neighbour_groups`): then
            :attr:`RegionFeatures.neighbours` is computed.

    Returns:
        ``(labels, features)``: ``(H, W)`` int32 region labels (0 = outside, ``k + 1`` = region
        ``k``) and the :class:`RegionFeatures` of the ``N`` regions.
    """
    import cv2

    m = np.ascontiguousarray(mask, dtype=np.uint8) if mask.dtype != np.uint8 else mask
    H, W = m.shape
    labels = np.zeros((H, W), np.int32)
    # label only the mask's bounding box plus a 1-pixel margin (the outer ring of _neighbours):
    # OpenCV's statistics pass visits every pixel, and shared colors cover a small part of a frame
    bx, by, bw, bh = cv2.boundingRect(m) if m.size else (0, 0, 0, 0)
    if bw and bh:
        box = np.s_[max(by - 1, 0):min(by + bh + 1, H), max(bx - 1, 0):min(bx + bw + 1, W)]
        n, lab, stats, _ = cv2.connectedComponentsWithStats(
            np.ascontiguousarray(m[box]), connectivity=8, ltype=cv2.CV_32S)
        lab, st = _raster_order(lab, stats[1:].astype(np.int64))
        labels[box] = lab
        st += [box[1].start, box[0].start, 0, 0, 0]
    else:  # no pixel in (OpenCV refuses an empty image)
        box, n, st = np.s_[0:0, 0:0], 1, np.zeros((0, 5), np.int64)
    x, y, w, h, area = st[:, 0], st[:, 1], st[:, 2], st[:, 3], st[:, 4]
    N = n - 1
    row = {k: np.full(N, v) for k, v in CONTOUR_DEFAULTS.items()}
    solidity, fit, multirun, foot = row["solidity"], row["fit"], row["multirun"], row["foot"]
    if contours and N:
        for k in np.flatnonzero(area >= _MIN_CONTOUR_AREA):
            x0, y0, x1, y1 = x[k], y[k], x[k] + w[k], y[k] + h[k]
            crop = labels[y0:y1, x0:x1] == k + 1
            starts = crop.copy()
            starts[:, 1:] &= ~crop[:, :-1]  # a run starts where the pixel to the left is out
            runs = np.count_nonzero(starts, axis=1)
            multirun[k] = np.count_nonzero(runs > 1) / crop.shape[0]
            pixels = np.count_nonzero(crop, axis=1)
            foot[k] = _foot(pixels, runs)
            row["head"][k], row["spread"][k], row["base"][k] = _profile(crop, pixels)
            row["strokes"][k] = np.percentile(runs, 90)
            row["tall_cols"][k] = np.count_nonzero(
                np.count_nonzero(crop, axis=0) > 0.5 * crop.shape[0]) / crop.shape[1]
            solidity[k], fit[k], row["corners"][k] = _contour_shape(crop)
    hf = float(H)
    touches = np.stack([y == 0, y + h == H, x == 0, x + w == W], axis=1)
    neighbours = None
    if values is not None and value_groups is not None:
        neighbours = _neighbours(m[box], labels[box], N, values[box], value_groups)
    feats = RegionFeatures(
        height=H, width=W, area=area, x=x, y=y, w=w, h=h, rel_area=area / float(H * W),
        bottom=(y + h) / hf, rel_height=h / hf, extent=area / (w * h).astype(float),
        solidity=solidity, fit=fit, multirun=multirun, foot=foot,
        slender=(h * h) / area.astype(float), head=row["head"], spread=row["spread"],
        strokes=row["strokes"], tall_cols=row["tall_cols"], base=row["base"],
        corners=row["corners"],
        touches=touches, neighbours=neighbours)
    return labels, feats


def _raster_order(labels: np.ndarray, stats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Renumber OpenCV's regions in raster order of their first pixel (top row, then leftmost
    pixel in it): its parallel labelling numbers them stripe by stripe, so the order would
    depend on the thread count and the image height.

    Args:
        labels: ``(H, W)`` int32 labels (0 = outside, ``k + 1`` = region ``k``).
        stats: ``(N, 5)`` int64 ``x, y, w, h, area`` of the regions.

    Returns:
        ``(labels, stats)`` renumbered (the inputs themselves when already in order).
    """
    n = len(stats)
    if n < 2:
        return labels, stats
    top = labels[stats[:, 1]]  # (N, W): each region's top row
    first_x = np.argmax(top == np.arange(1, n + 1)[:, None], axis=1)
    order = np.argsort(stats[:, 1] * labels.shape[1] + first_x, kind="stable")
    if np.all(order[1:] > order[:-1]):
        return labels, stats
    lut = np.zeros(n + 1, np.int32)
    lut[order + 1] = np.arange(1, n + 1, dtype=np.int32)
    return lut[labels], stats[order]


_RING = np.ones((3, 3), np.uint8)
_OFFSETS = ((-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1))


def _neighbours(m: np.ndarray, labels: np.ndarray, n: int, values: np.ndarray,
                value_groups: np.ndarray) -> np.ndarray:
    """:attr:`RegionFeatures.neighbours`: group fractions of the outer ring of each region (a ring
    pixel touching several regions counts for the highest-numbered one)."""
    import cv2

    g = len(NEIGHBOUR_GROUPS)
    if n == 0:
        return np.zeros((0, g))
    ring = cv2.dilate(m, _RING) > m
    pts = cv2.findNonZero(ring.view(np.uint8))
    if pts is None:
        return np.zeros((n, g))
    pts = pts.reshape(-1, 2)
    xs, ys = pts[:, 0], pts[:, 1]
    H, W = m.shape
    region = np.zeros(xs.shape, np.int64)
    for dy, dx in _OFFSETS:
        yy = np.clip(ys + dy, 0, H - 1)
        xx = np.clip(xs + dx, 0, W - 1)
        np.maximum(region, labels[yy, xx], out=region)
    grp = value_groups[values[ys, xs]].astype(np.int64)
    counts = np.bincount(region * g + grp, minlength=(n + 1) * g).reshape(n + 1, g)[1:]
    tot = counts.sum(axis=1, keepdims=True)
    return counts / np.maximum(tot, 1)


def _foot(row_pixels: np.ndarray, row_runs: np.ndarray) -> float:
    """:attr:`RegionFeatures.foot` from the pixel count and the number of runs of each row of a
    region, top to bottom."""
    n = row_pixels.shape[0]
    base = max(1, int(round(FOOT_ROWS * n)))
    if base >= n:
        return 1.0
    solid = np.where(row_runs[n - base:] == 1, row_pixels[n - base:], 0)
    return float(solid.max() / max(float(np.median(row_pixels[:n - base])), 1.0))


def _profile(crop: np.ndarray, row_pixels: np.ndarray) -> tuple[float, float, float]:
    """:attr:`RegionFeatures.head`, ``spread`` and ``base`` of one region crop (rows top to
    bottom) and the pixel count of each of its rows."""
    n = row_pixels.shape[0]
    band = max(1, int(round(FOOT_ROWS * n)))
    if 2 * band >= n:
        return 1.0, 0.0, 1.0
    body = max(float(np.median(row_pixels)), 1.0)
    head = float(np.median(row_pixels[:band])) / body
    mid = row_pixels[int(0.15 * n):max(int(0.85 * n), int(0.15 * n) + 1)].astype(float)
    spread = float(mid.std() / max(mid.mean(), 1.0))
    bottom = crop[n - band:]
    first = np.argmax(bottom, axis=1)
    last = bottom.shape[1] - 1 - np.argmax(bottom[:, ::-1], axis=1)
    span = np.where(bottom.any(axis=1), last - first + 1, 0)
    return head, spread, float(span.max()) / body


def _contour_shape(crop: np.ndarray) -> tuple[float, float, float]:
    """Solidity, best simple-shape fit and corners of one region crop (see
    :class:`RegionFeatures`)."""
    import cv2

    padded = np.pad(crop.astype(np.uint8), 1)
    cnts, _ = cv2.findContours(padded, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    cnt = max(cnts, key=cv2.contourArea)
    area = cv2.contourArea(cnt)
    if area <= 0:
        return 1.0, 1.0, CONTOUR_DEFAULTS["corners"]
    corners = 100.0 * len(cv2.approxPolyDP(cnt, 1.0, True)) / max(cv2.arcLength(cnt, True), 1.0)
    hull_area = cv2.contourArea(cv2.convexHull(cnt))
    solidity = area / hull_area if hull_area > 0 else 1.0
    pts = cnt.astype(np.float32)
    (_, _), r = cv2.minEnclosingCircle(pts)
    (_, _), (rw, rh), _ = cv2.minAreaRect(pts)
    fits = [area / (np.pi * r * r) if r > 0 else 1.0, area / (rw * rh) if rw * rh > 0 else 1.0]
    if len(cnt) >= 3:
        tri_area, _ = cv2.minEnclosingTriangle(pts)
        if tri_area > 0:
            fits.append(area / tri_area)
    return float(solidity), float(min(max(fits), 1.0)), corners



MODEL_INPUTS = ("log_rel_area", "top", "bottom", "rel_height", "rel_width", "log_aspect", "center_x",
                "extent", "solidity", "fit", "multirun", "foot", "log_slender", "head", "spread",
                "strokes", "tall_cols", "base", "corners", "touch_top",
                "touch_bottom", "touch_left", "touch_right") + tuple(
                    f"near_{g}" for g in NEIGHBOUR_GROUPS)
"""The inputs of a learned shape rule (:func:`model_inputs`), all free of the frame's pixel size:
``log10(rel_area)``, ``y / H``, ``bottom``, ``rel_height``, ``w / H``, ``log10(h / w)``, the box
center ``(x + w / 2) / W``, ``extent``, ``solidity``, ``fit``, ``multirun``, ``foot``,
``log10(slender)``, ``head``, ``spread``, ``strokes``, ``tall_cols``, ``base``, ``corners``, the four
frame-edge contacts (0 / 1) and the neighbour group fractions."""


def model_inputs(f: RegionFeatures) -> np.ndarray:
    """``(N, len(MODEL_INPUTS))`` float64 inputs of a learned rule for regions ``f`` (which must
    carry :attr:`RegionFeatures.neighbours`)."""
    H, W = float(f.height), float(f.width)
    nb = f.neighbours if f.neighbours is not None else np.zeros((len(f), len(NEIGHBOUR_GROUPS)))
    cols = [np.log10(np.maximum(f.rel_area, 1e-9)), f.y / H, f.bottom, f.rel_height, f.w / H,
            np.log10(f.h / f.w.astype(float)), (f.x + f.w / 2.0) / W, f.extent, f.solidity, f.fit,
            f.multirun, f.foot, np.log10(f.slender), f.head, f.spread, f.strokes, f.tall_cols,
            f.base, f.corners, *(f.touches[:, j].astype(float)
                                                       for j in range(4)),
            *(nb[:, j] for j in range(nb.shape[1]))]
    return np.stack([np.asarray(c, float) for c in cols], axis=1) if len(f) else \
        np.zeros((0, len(MODEL_INPUTS)))
