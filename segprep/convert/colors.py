"""Color label images → id masks, for any palette in ``class_maps/``, with shared colors resolved by
the shape of each connected region.

Decoding (:func:`decode_colors`, :class:`Palette`):

* A palette is a class map seen at one *level*: ``id`` (each label's color → its label id) or
  ``train`` (the color of each trainId → that trainId, plus the ignore color → 255; the ignore
  color is the color of the first label with trainId 255, black for Cityscapes and BDD100K — the
  official BDD100K 2018 ``*_train_color.png`` maps are drawn that way).
* RGB and RGBA images (alpha ignored) are looked up pixel by pixel in a 2^24-entry uint8 table
  (packed ``r | g << 8 | b << 16`` → color index, 16 MiB, built once per process and palette) by a
  numba kernel that also counts the pixels of each color in the same pass: no per-class loop over
  the image.
* Palette-mode PNGs (``read_label`` keeps their indices): when every index used in the image has,
  in the file's palette, the palette color of that value (e.g. the BDD100K 2020+
  ``labels/sem_seg/colormaps/*.png``, whose indices are trainIds), the indices *are* the values and
  are used directly — shared colors need no resolution then. Otherwise the file's palette colors are
  decoded like RGB (once per palette entry, then a 256-entry LUT over the indices).
* A color that is not in the palette raises :class:`~segprep.errors.SegprepError` naming the file,
  the color(s) and their pixel counts; ``unknown="ignore"`` maps those pixels to 255 instead and
  :class:`DecodeStats` counts them.

Shared colors (several labels with one color, e.g. BDD100K person / parking sign (220, 20, 60),
pole / polegroup (153, 153, 153), the black void labels; Cityscapes pole / polegroup and its black
void labels): each 8-connected region of such a color is given one label from its shape, position
and surroundings (features in :func:`region_features`, inputs in :func:`model_inputs`). By default
(:func:`default_rules`) the rule is learned: a small random forest per color (:class:`ForestRule`,
``shape_model.json``), for person / sign and pole / polegroup averaged with a small convolutional
network over a thumbnail of the region's outline and its inputs (:mod:`segprep.convert.region_net`,
``shape_net.npz``), both shipped beside this module, evaluated with numpy and trained by
``scripts/train_shape_rule.py`` on the official labelIds of 15 Cityscapes train cities and chosen
by leave-one-city-out (its figures on four cities it never saw are in the README); regions larger
than any it was trained on, and colors it has no rule for, use the hand-written rules
(:data:`HAND_RULES`: :class:`PersonSignRule`, :class:`PoleGroupRule`, :class:`VoidRule`). A group
no rule covers keeps its first label (the first row wins, as every lookup of
:mod:`segprep.class_maps`). Pixels of unambiguous colors are exact lookups.

End to end (Cityscapes ``*_gtFine_color.png`` against the official ``*_labelIds.png``; labelIds
rendered with the BDD100K id-level palette, Cityscapes ``traffic sign`` painted as ``parking
sign``; the BDD100K 2018 masks rendered the same way) the rules are measured by
``scripts/measure_shape_resolution.py``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from segprep import class_maps
from segprep.class_maps import IGNORE_INDEX, ClassMap
from segprep.errors import SegprepError

LEVELS = ("id", "train")
"""Palette levels: ``id`` (label ids, every label's own color) or ``train`` (trainIds)."""

UNKNOWN_POLICIES = ("error", "ignore")
"""What to do with a color that is not in the palette."""

RESOLVE_MODES = ("all", "train_ids", "none")
"""Which shared-color groups to resolve by shape: all; only those whose labels differ in trainId
(enough when only trainIds are written); none (first row wins)."""

_UNKNOWN = 255  # color index of "not in the palette" in the 2^24 table
_MAX_REPORTED = 3  # unknown colors named in an error message


# ----------------------------------------------------------------------------------- palette
@dataclass(frozen=True, eq=False)
class Palette:
    """A class map's colors at one level, ready for decoding.

    Attributes:
        class_map: the label table.
        level: ``"id"`` or ``"train"``.
        colors: ``(K, 3)`` uint8 distinct colors (K < 255), in table order of first appearance.
        candidates: per color, the values (label ids or trainIds) painted with it, in table order.
        names: per color, the label names of those values.
        value_lut: ``(256,)`` uint8: color index → its first value; index 255 (unknown) → 255.
        value_colors: ``(256, 3)`` uint8: value → the color it is painted with.
        value_known: ``(256,)`` bool: which values a mask of this level may hold.
    """

    class_map: ClassMap
    level: str
    colors: np.ndarray
    candidates: tuple[tuple[int, ...], ...]
    names: tuple[tuple[str, ...], ...]
    value_lut: np.ndarray
    value_colors: np.ndarray
    value_known: np.ndarray

    @property
    def shared(self) -> tuple[int, ...]:
        """Indices of the colors shared by several labels."""
        return tuple(i for i, c in enumerate(self.candidates) if len(c) > 1)

    @functools.cached_property
    def lut24(self) -> np.ndarray:
        """``(2**24,)`` uint8 table: packed ``r | g << 8 | b << 16`` → color index (255 unknown)."""
        lut = np.full(1 << 24, _UNKNOWN, np.uint8)
        lut[_pack_le(self.colors)] = np.arange(len(self.colors), dtype=np.uint8)
        lut.setflags(write=False)
        return lut

    def describe(self) -> str:
        return f"{self.class_map.name} {self.level}-level palette"


def _pack_le(rgb: np.ndarray) -> np.ndarray:
    """``(..., >=3)`` uint8 → ``(...)`` int64 keys ``r | g << 8 | b << 16`` (the little-endian
    uint32 view of an RGBA pixel, alpha masked off)."""
    rgb = np.asarray(rgb)
    return (rgb[..., 0].astype(np.int64) | (rgb[..., 1].astype(np.int64) << 8)
            | (rgb[..., 2].astype(np.int64) << 16))


@functools.lru_cache(maxsize=16)
def palette(class_map: str | ClassMap, level: str = "id") -> Palette:
    """The decoding :class:`Palette` of a class map (cached per process).

    Args:
        class_map: a class-map name (``class_maps/<name>.csv``) or a :class:`ClassMap`.
        level: ``"id"``: every label with a non-negative id, by its color (labels sharing a color
            are candidates of one entry, resolved by shape). ``"train"``: the color of each trainId
            ``0 .. num_classes-1`` (first row with that trainId) and the ignore color → 255.

    Raises:
        SegprepError: unknown level, or more than 254 distinct colors.
    """
    cm = class_maps.load(class_map) if isinstance(class_map, str) else class_map
    if level not in LEVELS:
        raise SegprepError("--palette", f"unknown palette level {level!r} (choose from id, train)")
    groups: dict[tuple[int, int, int], list[tuple[int, str]]] = {}
    value_colors = np.zeros((256, 3), np.uint8)
    value_known = np.zeros(256, bool)
    if level == "id":
        for n, i, c in zip(cm.names, cm.ids, cm.colors):
            if 0 <= i < 256:
                key = (int(c[0]), int(c[1]), int(c[2]))
                groups.setdefault(key, []).append((int(i), n))
                if not value_known[i]:
                    value_colors[i], value_known[i] = c, True
    else:
        for t in range(cm.num_classes):
            rows = np.flatnonzero(cm.train_ids == t)
            if rows.size == 0:
                continue
            c = cm.train_colors[t]
            key = (int(c[0]), int(c[1]), int(c[2]))
            groups.setdefault(key, []).append((t, cm.names[rows[0]]))
            value_colors[t], value_known[t] = c, True
        ignore_color = cm.id_colors[cm.train_id_to_id[IGNORE_INDEX]]
        key = (int(ignore_color[0]), int(ignore_color[1]), int(ignore_color[2]))
        groups.setdefault(key, []).append((IGNORE_INDEX, "ignore"))
        value_colors[IGNORE_INDEX], value_known[IGNORE_INDEX] = ignore_color, True
    if len(groups) >= _UNKNOWN:
        raise SegprepError(cm.name, f"{len(groups)} distinct colors: at most 254 are supported")
    colors = np.array(list(groups), np.uint8).reshape(-1, 3)
    candidates = tuple(tuple(v for v, _ in g) for g in groups.values())
    names = tuple(tuple(n for _, n in g) for g in groups.values())
    value_lut = np.full(256, IGNORE_INDEX, np.uint8)
    value_lut[: len(candidates)] = [c[0] for c in candidates]
    # decode_colors finds a color's pixels by its first value: each value must have one color
    values = [v for c in candidates for v in c]
    if len(set(values)) != len(values):
        dup = next(v for v in values if values.count(v) > 1)
        raise SegprepError(cm.name, f"value {dup} is painted with two colors at {level} level")
    for arr in (value_lut, value_colors, value_known, colors):
        arr.setflags(write=False)
    return Palette(cm, level, colors, candidates, names, value_lut, value_colors, value_known)


# ----------------------------------------------------------------------------------- kernels
def _lookup_kernel(img, lut, values, out, seen):  # pragma: no cover - runs compiled by numba
    """i = lut[r | g << 8 | b << 16]; out[y, x] = values[i]; seen[i] = True; returns the number
    of pixels with i == 255 (unknown). One pass; a flag store instead of a per-color counter
    keeps the loop free of memory dependencies (about 1.5x faster)."""
    h, w = out.shape
    unknown = 0
    for y in range(h):
        for x in range(w):
            i = lut[np.int64(img[y, x, 0]) | (np.int64(img[y, x, 1]) << 8)
                    | (np.int64(img[y, x, 2]) << 16)]
            out[y, x] = values[i]
            seen[i] = True
            unknown += i == 255
    return unknown


@functools.cache
def _kernel(name: str):
    """A numba-compiled kernel of this module (compiled, or loaded from numba's on-disk cache, on
    first use, so that importing the module stays cheap)."""
    from segprep.jit import kernel

    return kernel({"lookup": _lookup_kernel}[name])


_IDENTITY = np.arange(256, dtype=np.uint8)


def lookup_colors(image: np.ndarray, pal: Palette, values: np.ndarray | None = None
                  ) -> tuple[np.ndarray, np.ndarray, int]:
    """Color index (or value) of every pixel of an RGB(A) image, in one pass.

    Args:
        image: ``(H, W, 3|4)`` uint8 (alpha ignored).
        pal: the palette.
        values: optional ``(256,)`` uint8 table color index → output (e.g. ``pal.value_lut``);
            default: the color index itself.

    Returns:
        ``(out, seen, unknown)``: ``(H, W)`` uint8 ``values[index]`` (index 255 = not in the
        palette), ``(256,)`` bool: which color indices occur, and the number of pixels whose
        color is not in the palette.
    """
    image = np.ascontiguousarray(image)
    out = np.empty(image.shape[:2], np.uint8)
    seen = np.zeros(256, np.bool_)
    unknown = _kernel("lookup")(image, pal.lut24, _IDENTITY if values is None else values, out,
                                seen)
    return out, seen, int(unknown)


# ----------------------------------------------------------------------------------- features
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


# ----------------------------------------------------------------------------------- rules
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
"""The learned rules shipped beside this module (written by ``scripts/train_shape_rule.py
fit``; the file names the cities it was trained on)."""


@functools.lru_cache(maxsize=4)
def load_shape_model(path: str | None = None) -> dict[str, ForestRule]:
    """The learned rules of a model file (default: the shipped :data:`SHAPE_MODEL`), by pair name
    (``person/sign``, ``pole/polegroup``, ``void``).

    Raises:
        SegprepError: the file is missing or not a shape model of segprep's inputs.
    """
    import json
    from pathlib import Path

    p = Path(path) if path else Path(__file__).with_name(SHAPE_MODEL)
    try:
        d = json.loads(p.read_text())
        return {name: ForestRule.from_dict(r) for name, r in d["rules"].items()}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SegprepError(p, f"not a readable shape model ({exc})") from None


HAND_RULES: tuple = (PersonSignRule(), PoleGroupRule(), VoidRule())
"""The hand-written shared-color rules (the fallback for a color the shipped model has no rule
for)."""


@functools.lru_cache(maxsize=1)
def default_rules() -> tuple:
    """The shared-color rules :func:`decode_colors` uses by default: the learned rules of the
    shipped files (:func:`segprep.convert.region_net.combined_rules`: person / sign and pole /
    polegroup average their network of :data:`segprep.convert.region_net.SHAPE_NET` with their
    forest of :data:`SHAPE_MODEL`; void is a forest), then :data:`HAND_RULES` for any
    color the models do not cover. A rule applies to a shared color when all its ``labels`` are
    among the labels of that color (the first such rule wins)."""
    from segprep.convert.region_net import combined_rules, load_shape_net

    return tuple(combined_rules(load_shape_net(), load_shape_model()).values()) + HAND_RULES


def rule_for(names: tuple[str, ...], rules: tuple | None = None):
    """The first rule of ``rules`` (default :func:`default_rules`) whose labels all share this
    color, or None."""
    for rule in default_rules() if rules is None else rules:
        if set(rule.labels) <= set(names):
            return rule
    return None


# ----------------------------------------------------------------------------------- decoding
@dataclass
class DecodeStats:
    """What :func:`decode_colors` met in one image.

    Attributes:
        pixels: pixels decoded.
        unknown_pixels: pixels whose color is not in the palette (mapped to 255 with
            ``unknown="ignore"``).
        unknown_colors: ``(r, g, b)`` → pixel count of each such color.
        palette_indices: the image's palette indices were used directly.
        regions: label name → number of shared-color regions given that label.
        unresolved: names of the shared colors present that no rule covers (first row won).
    """

    pixels: int = 0
    unknown_pixels: int = 0
    unknown_colors: dict[tuple[int, ...], int] = field(default_factory=dict)
    palette_indices: bool = False
    regions: dict[str, int] = field(default_factory=dict)
    unresolved: list[str] = field(default_factory=list)


def _as_mode(resolve_shared: bool | str) -> str:
    if resolve_shared is True:
        return "all"
    if resolve_shared is False:
        return "none"
    if resolve_shared not in RESOLVE_MODES:
        raise ValueError(f"resolve_shared must be a bool or one of {RESOLVE_MODES}")
    return resolve_shared


def decode_colors(image: np.ndarray, class_map: str | ClassMap | Palette, *,
                  level: str = "id", palette_colors: np.ndarray | None = None,
                  unknown: Literal["error", "ignore"] = "error",
                  resolve_shared: bool | str = True, rules: tuple | None = None,
                  where: str | None = None) -> tuple[np.ndarray, DecodeStats]:
    """Turn a color label image into an id (or trainId) mask.

    Args:
        image: ``(H, W, 3)`` RGB or ``(H, W, 4)`` RGBA uint8 (alpha ignored), or ``(H, W)`` uint8
            palette indices together with ``palette_colors``.
        class_map: class-map name, :class:`ClassMap`, or a ready :class:`Palette` (then ``level``
            is the palette's).
        level: ``"id"`` → label ids, ``"train"`` → trainIds (see :func:`palette`).
        palette_colors: ``(K, 3)`` uint8 palette of a palette-mode image (as returned by
            :func:`segprep.io.read_label`).
        unknown: ``"error"``: raise on a color not in the palette; ``"ignore"``: map it to 255.
        resolve_shared: ``True``/``"all"``: resolve every shared color by shape; ``"train_ids"``:
            only colors whose labels differ in trainId (the others keep their first label, which
            has the same trainId); ``False``/``"none"``: the first label of each color.
        rules: the shared-color rules (default :func:`default_rules`: the shipped learned rules).
        where: file name for error messages.

    Returns:
        ``(mask, stats)``: ``(H, W)`` uint8 values of the level (255 = unknown color with
        ``unknown="ignore"``, or trainId 255 = ignore) and :class:`DecodeStats`.

    Raises:
        SegprepError: the image is not a color image (wrong shape or dtype), or it has colors
            not in the palette (with ``unknown="error"``).
    """
    import cv2

    pal = class_map if isinstance(class_map, Palette) else palette(class_map, level)
    mode = _as_mode(resolve_shared)
    if unknown not in UNKNOWN_POLICIES:
        raise ValueError(f"unknown must be one of {UNKNOWN_POLICIES}")
    where = where or "image"
    stats = DecodeStats()
    if image.dtype != np.uint8:
        raise SegprepError(where, f"expected an 8-bit color label image, got {image.dtype}")
    index = None  # (H, W) color indices, computed only where needed
    if image.ndim == 2 and palette_colors is not None:
        stats.pixels = image.size
        direct = _direct_indices(image, np.asarray(palette_colors, np.uint8), pal)
        if direct is not None:
            stats.palette_indices = True
            return direct, stats
        index, seen, n_unknown = _index_via_palette(image, np.asarray(palette_colors, np.uint8),
                                                    pal)
        out = cv2.LUT(index, pal.value_lut)
    elif image.ndim == 3 and image.shape[2] in (3, 4):
        stats.pixels = image.shape[0] * image.shape[1]
        out, seen, n_unknown = lookup_colors(image, pal, pal.value_lut)
    else:
        kind = "a single-channel (gray or index) image" if image.ndim == 2 else \
            f"an image of shape {image.shape}"
        raise SegprepError(where, f"expected an RGB, RGBA or palette-mode color label image, got "
                                  f"{kind}")
    if n_unknown:
        if index is None:
            index, _, _ = lookup_colors(image, pal)
        colors = _unknown_colors(image, index, palette_colors)
        if unknown == "error":
            listed = ", ".join(f"({r}, {g}, {b}) × {n} px" for (r, g, b), n in
                               list(colors.items())[:_MAX_REPORTED])
            more = f" and {len(colors) - _MAX_REPORTED} more" if len(colors) > _MAX_REPORTED else ""
            raise SegprepError(where, f"{len(colors)} color(s) not in the {pal.describe()}: "
                                      f"{listed}{more} (use --unknown ignore to map them to 255)")
        stats.unknown_pixels = n_unknown
        stats.unknown_colors = colors
    for ci in pal.shared:
        if not seen[ci]:
            continue
        cands, names = pal.candidates[ci], pal.names[ci]
        if mode == "none" or (mode == "train_ids" and not _train_ids_differ(pal, cands)):
            continue
        rule = rule_for(names, rules)
        if rule is None:
            stats.unresolved.append("/".join(names))
            continue
        # the first values of the colors are distinct, so a color's pixels are those holding its
        # first value — unless unknown pixels were mapped to that same value (255)
        if index is None and pal.value_lut[ci] == IGNORE_INDEX and n_unknown:
            index, _, _ = lookup_colors(image, pal)
        color_mask = index == ci if index is not None else out == pal.value_lut[ci]
        labels, feats, choice = classify_regions(rule, color_mask, out, pal.class_map)
        region_value = np.array([cands[names.index(rule.labels[c])] for c in choice] or [0],
                                np.uint8)
        inside = labels > 0
        out[inside] = region_value[labels[inside] - 1]
        for c in choice:
            stats.regions[rule.labels[c]] = stats.regions.get(rule.labels[c], 0) + 1
    return out, stats


def classify_regions(rule: Any, color_mask: np.ndarray, values: np.ndarray,
                     class_map: str | ClassMap) -> tuple[np.ndarray, RegionFeatures, np.ndarray]:
    """Label the 8-connected regions of one shared color and give each one of ``rule.labels``.

    Args:
        rule: a shared-color rule (:data:`HAND_RULES`, :class:`ForestRule`,
            :class:`segprep.convert.region_net.RegionNet` or
            :class:`segprep.convert.region_net.AveragedRule`); its ``contours``, ``neighbours``
            and ``thumbnails`` attributes say what it reads.
        color_mask: ``(H, W)`` bool, the pixels of the color.
        values: ``(H, W)`` uint8 label ids of the frame (those of the shared color may be any of
            its labels: neighbour groups are per color).
        class_map: the class map of ``values`` (for :func:`neighbour_groups`).

    Returns:
        ``(labels, features, choice)``: the :func:`region_features` labels and features and
        ``(N,)`` int64 index into ``rule.labels`` of each region.
    """
    contours = getattr(rule, "contours", True)
    groups = neighbour_groups(class_map)
    if getattr(rule, "neighbours", False):
        labels, feats = region_features(color_mask, contours=contours, values=values,
                                        value_groups=groups)
    else:
        labels, feats = region_features(color_mask, contours=contours)
    if getattr(rule, "thumbnails", False):
        from segprep.convert.region_net import region_thumbnails

        thumbs = region_thumbnails(labels, feats, values, color_mask, groups,
                                   channels=rule.channels)
        return labels, feats, rule.classify(feats, thumbs, rule.channels)
    return labels, feats, rule.classify(feats)


def _train_ids_differ(pal: Palette, cands: tuple[int, ...]) -> bool:
    if pal.level == "train":
        return len(set(cands)) > 1
    lut = pal.class_map.id_to_train_id
    return len({int(lut[c]) for c in cands}) > 1


def _direct_indices(index: np.ndarray, pal_colors: np.ndarray, pal: Palette) -> np.ndarray | None:
    """The index image itself when every used index is a value painted with its own color."""
    import cv2

    used = np.flatnonzero(cv2.calcHist([index], [0], None, [256], [0, 256]).ravel())
    if used.size == 0 or used[-1] >= len(pal_colors) or not pal.value_known[used].all():
        return None
    if not np.array_equal(pal_colors[used], pal.value_colors[used]):
        return None
    return index


def _index_via_palette(index: np.ndarray, pal_colors: np.ndarray, pal: Palette
                       ) -> tuple[np.ndarray, np.ndarray, int]:
    """Color indices of a palette-mode image through its own palette (entries beyond the file's
    palette are unknown), which color indices occur, and the number of unknown pixels."""
    import cv2

    table = np.full(256, _UNKNOWN, np.uint8)
    k = min(len(pal_colors), 256)
    table[:k] = pal.lut24[_pack_le(pal_colors[:k])]
    out = cv2.LUT(index, table)
    hist = cv2.calcHist([out], [0], None, [256], [0, 256]).ravel()
    return out, hist > 0, int(hist[_UNKNOWN])


def _unknown_colors(image: np.ndarray, index: np.ndarray, pal_colors: np.ndarray | None
                    ) -> dict[tuple[int, ...], int]:
    """Colors of the unknown pixels with their counts, most frequent first (error path only)."""
    bad = index == _UNKNOWN
    if image.ndim == 2 and pal_colors is not None:  # palette indices
        idx, counts = np.unique(image[bad], return_counts=True)
        cols = [tuple(int(v) for v in pal_colors[i]) if i < len(pal_colors) else (-1, -1, -1)
                for i in idx]
        merged: dict[tuple[int, ...], int] = {}
        for c, n in zip(cols, counts):
            merged[c] = merged.get(c, 0) + int(n)
    else:
        keys, counts = np.unique(_pack_le(image[bad]), return_counts=True)
        merged = {(int(k & 255), int((k >> 8) & 255), int(k >> 16)): int(n)
                  for k, n in zip(keys, counts)}
    return dict(sorted(merged.items(), key=lambda kv: -kv[1]))


def encode_colors(values: np.ndarray, class_map: str | ClassMap, level: str = "id",
                  rgba: bool = False) -> np.ndarray:
    """Paint an id (or trainId) mask with its palette: the inverse of :func:`decode_colors`.

    Args:
        values: ``(H, W)`` uint8 label ids (``level="id"``) or trainIds (``"train"``).
        class_map: class-map name or :class:`ClassMap`.
        level: ``"id"`` or ``"train"`` (trainId 255 → the ignore color).
        rgba: add an opaque alpha channel (as the official BDD100K 2018 color maps).

    Returns:
        ``(H, W, 3|4)`` uint8 color image.
    """
    import cv2

    pal = palette(class_map, level)
    chans = [cv2.LUT(values, np.ascontiguousarray(pal.value_colors[:, c])) for c in range(3)]
    if rgba:
        chans.append(np.full(values.shape, 255, np.uint8))
    return np.ascontiguousarray(np.stack(chans, axis=-1))
