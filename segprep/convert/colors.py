"""Color label images → id masks, for any palette in ``class_maps/``; shared colors are handed to the
shape rules of :mod:`segprep.convert.shape`.

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
and surroundings by :func:`segprep.convert.shape.resolve.classify_regions`, with the rule of
:func:`segprep.convert.shape.resolve.rule_for` (how the rules are made and shipped: the package
docstring of :mod:`segprep.convert.shape`). A group no rule covers keeps its first label (the
first row wins, as every lookup of :mod:`segprep.class_maps`). Pixels of unambiguous colors are
exact lookups.

End to end (Cityscapes ``*_gtFine_color.png`` against the official ``*_labelIds.png``; labelIds
rendered with the BDD100K id-level palette, Cityscapes ``traffic sign`` painted as ``parking
sign``; the BDD100K 2018 masks rendered the same way) the rules are measured by
``scripts/measure_shape_resolution.py``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from segprep import class_maps
from segprep.class_maps import IGNORE_INDEX, ClassMap
from segprep.convert.shape.resolve import classify_regions, rule_for
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
        rules: the shared-color rules (default
            :func:`segprep.convert.shape.resolve.default_rules`: the shipped learned rules).
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
