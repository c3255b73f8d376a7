"""Polygon rasterisers (``segprep.convert.raster``).

* ``official`` reproduces the released Cityscapes ``*_gtFine_labelIds.png`` and
  ``*_gtFine_instanceIds.png`` bit for bit, on every real frame in ../shared/data;
* ``official`` agrees with :func:`reference_fill`, a plain-Python transcription of the rule
  (independent of the numba kernel), on random polygons, and obeys the rule's invariants;
* ``pillow`` is what the installed Pillow / cityscapesScripts draw.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageDraw

from segprep import class_maps
from segprep.convert.raster import RASTERS, rasterize, rasterize_official, rasterize_pillow
from segprep.io import read_png

F32 = np.float32


# ------------------------------------------------------------------ reference implementation
def reference_fill(polygons, values, height, width, background=0):
    """The rule of :func:`rasterize_official`'s docstring, written as plainly as possible.

    Every canvas row is scanned (no edge table, no clipping shortcuts); float32 arithmetic goes
    through numpy float32 scalars.
    """
    out = np.full((height, width), background, np.int32)
    for poly, value in zip(polygons, values):
        pts = [(int(float(x)), int(float(y))) for x, y in poly]  # int(): truncation toward zero
        if len(pts) < 2:
            continue
        edges = list(zip(pts[:-1], pts[1:]))
        if pts[-1] != pts[0]:
            edges.append((pts[-1], pts[0]))
        edges = [(a, b) for a, b in edges if a[1] != b[1]]
        for r in range(height):
            yc = F32(r) + F32(0.5)
            xs = []
            for (x0, y0), (x1, y1) in edges:
                if F32(min(y0, y1)) <= yc <= F32(max(y0, y1)):
                    dx = F32(x1 - x0) / F32(y1 - y0)
                    xs.append((yc - F32(y0)) * dx + F32(x0))
            xs.sort()
            for xa, xb in zip(xs[0::2], xs[1::2]):
                lo = max(math.ceil(float(xa) - 0.5), 0)
                hi = min(math.floor(float(xb) + 0.5), width - 1)
                if lo <= hi:
                    out[r, lo:hi + 1] = value
    return out


# ------------------------------------------------------------------ real Cityscapes frames
def frame_polygons(path: Path):
    """(polygons, labelIds, instanceIds, H, W) of one ``*_gtFine_polygons.json``.

    The object rules of cityscapesScripts' json2labelImg / json2instanceImg: skip deleted
    objects; an unknown label ending in 'group' is that label's group; labels with id < 0 are not
    drawn; instance value ``id * 1000 + k`` (k counted per label over drawn non-group objects) for
    classes with instances, else the label id.
    """
    cmap = class_maps.load("cityscapes")
    info = {n: (int(i), bool(h)) for n, i, h in zip(cmap.names, cmap.ids, cmap.has_instances)}
    doc = json.loads(path.read_text(encoding="utf-8"))
    polys, label_ids, inst_ids, counts = [], [], [], {}
    for obj in doc["objects"]:
        if obj.get("deleted"):
            continue
        label, group = obj["label"], False
        if label not in info and label.endswith("group"):
            label, group = label[: -len("group")], True
        label_id, has_instances = info[label]
        if label_id < 0:
            continue
        polys.append(obj["polygon"])
        label_ids.append(label_id)
        if has_instances and not group:
            k = counts.get(label, 0)
            counts[label] = k + 1
            inst_ids.append(label_id * 1000 + k)
        else:
            inst_ids.append(label_id)
    return polys, label_ids, inst_ids, int(doc["imgHeight"]), int(doc["imgWidth"])


def all_frames(root: Path) -> list[Path]:
    return sorted((root / "gtFine").glob("*/*/*_gtFine_polygons.json"))


def test_official_reproduces_every_released_frame(cityscapes_root):
    """labelIds AND instanceIds, bit for bit, on every frame of train, val and test."""
    files = all_frames(cityscapes_root)
    splits = {f.parent.parent.name for f in files}
    assert splits == {"train", "val", "test"}, splits
    assert len(files) == 205  # 100 aachen + 59 lindau + 46 bonn
    bad = []
    n_instances = 0
    for f in files:
        polys, label_ids, inst_ids, h, w = frame_polygons(f)
        stem = str(f)[: -len("polygons.json")]
        want_lab = read_png(stem + "labelIds.png")
        want_inst = read_png(stem + "instanceIds.png")
        got_lab = rasterize_official(polys, label_ids, h, w, background=0)
        got_inst = rasterize(polys, inst_ids, h, w, background=0, method="official")
        assert got_lab.dtype == np.int32 and got_lab.shape == (h, w) == want_lab.shape
        assert got_inst.dtype == np.int32 and got_inst.shape == want_inst.shape
        n_lab = int(np.count_nonzero(got_lab != want_lab))
        n_inst = int(np.count_nonzero(got_inst != want_inst))
        if n_lab or n_inst:
            bad.append(f"{f.name}: {n_lab} labelIds px, {n_inst} instanceIds px differ")
        n_instances += sum(v >= 1000 for v in inst_ids)
    assert not bad, f"{len(bad)}/{len(files)} frames differ:\n" + "\n".join(bad[:20])
    assert n_instances > 1000  # the instance encoding was really exercised


def test_pillow_differs_from_official_on_real_frames(cityscapes_root):
    """Today's Pillow does not reproduce the released files (differences on polygon edges)."""
    f = cityscapes_root / "gtFine/train/aachen/aachen_000000_000019_gtFine_polygons.json"
    polys, label_ids, _, h, w = frame_polygons(f)
    official = rasterize_official(polys, label_ids, h, w)
    pillow = rasterize_pillow(polys, label_ids, h, w)
    frac = float(np.mean(official == pillow))
    assert 0.98 < frac < 1.0


def test_pillow_backend_is_cityscapesscripts_with_installed_pillow(cityscapes_root):
    """``rasterize_pillow`` == cityscapesScripts' createLabelImage / createInstanceImage."""
    from cityscapesscripts.helpers.annotation import Annotation
    from cityscapesscripts.preparation.json2instanceImg import createInstanceImage
    from cityscapesscripts.preparation.json2labelImg import createLabelImage

    files = all_frames(cityscapes_root)
    for f in files[::40]:  # a few frames of every split
        ann = Annotation()
        ann.fromJsonFile(str(f))
        polys, label_ids, inst_ids, h, w = frame_polygons(f)
        want_lab = np.asarray(createLabelImage(ann, "ids"), dtype=np.int32)
        want_inst = np.asarray(createInstanceImage(ann, "ids"), dtype=np.int32)
        np.testing.assert_array_equal(rasterize_pillow(polys, label_ids, h, w), want_lab)
        np.testing.assert_array_equal(rasterize(polys, inst_ids, h, w, method="pillow"), want_inst)


# ------------------------------------------------------------------ random polygons
def _coord(lo: int, hi: int, floats: bool):
    ints = st.integers(lo, hi)
    if not floats:
        return ints
    return ints | st.floats(lo, hi, allow_nan=False, allow_infinity=False)


@st.composite
def polygons(draw, lo=-8, hi=40, max_vertices=10, floats=True):
    """A vertex list with out-of-canvas and negative coordinates, repeated points, shared ys
    (horizontal edges), self-intersections (random order) and float coordinates."""
    n = draw(st.integers(0, max_vertices))
    pts: list[tuple] = []
    for _ in range(n):
        kind = draw(st.sampled_from(["new", "new", "new", "repeat", "same_y", "same_x"]))
        if pts and kind == "repeat":
            pts.append(draw(st.sampled_from(pts)))
            continue
        x = draw(_coord(lo, hi, floats))
        y = draw(_coord(lo, hi, floats))
        if pts and kind == "same_y":
            y = pts[-1][1]
        elif pts and kind == "same_x":
            x = pts[-1][0]
        pts.append((x, y))
    return pts


canvas = st.tuples(st.integers(1, 24), st.integers(1, 24))
SETTINGS = settings(max_examples=300, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(polys=st.lists(polygons(), min_size=0, max_size=4), size=canvas,
       background=st.integers(-5, 5), data=st.data())
def test_official_equals_reference(polys, size, background, data):
    values = data.draw(st.lists(st.integers(-(2**31), 2**31 - 1), min_size=len(polys),
                                max_size=len(polys)))
    h, w = size
    got = rasterize_official(polys, values, h, w, background)
    assert got.dtype == np.int32 and got.shape == (h, w)
    np.testing.assert_array_equal(got, reference_fill(polys, values, h, w, background))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(polys=st.lists(polygons(lo=-60, hi=2100, max_vertices=8), min_size=1, max_size=2))
def test_official_equals_reference_full_size(polys):
    """Cityscapes-sized canvas and coordinates, where float32 rounding decides edge pixels
    (float64 arithmetic or re-ordered edge vertices fail this within a few dozen examples)."""
    h, w = 1024, 2048
    values = [11, 26001][: len(polys)]
    np.testing.assert_array_equal(rasterize_official(polys, values, h, w),
                                  reference_fill(polys, values, h, w))


@SETTINGS
@given(poly=polygons(lo=-100_000, hi=100_000, max_vertices=6), size=canvas)
def test_official_equals_reference_far_outside_canvas(poly, size):
    h, w = size
    np.testing.assert_array_equal(rasterize_official([poly], [7], h, w),
                                  reference_fill([poly], [7], h, w))


@SETTINGS
@given(poly=polygons(lo=-8, hi=40), size=canvas)
def test_rows_outside_vertex_span_and_bottom_row_never_filled(poly, size):
    h, w = size
    got = rasterize_official([poly], [1], h, w)
    ys = [int(float(p[1])) for p in poly]
    if len(set(ys)) < 2:  # fewer than 2 vertices, or all on one row: nothing is painted
        assert not got.any()
        return
    painted = np.flatnonzero(got.any(axis=1))
    if painted.size:
        assert painted.min() >= min(ys)
        assert painted.max() <= max(ys) - 1  # the polygon's bottom row is never filled


@SETTINGS
@given(poly=polygons(lo=0, hi=30, floats=False), shift=st.integers(-30, 30))
def test_vertical_translation_invariance(poly, shift):
    """Shifting by whole rows (polygon inside the canvas before and after) shifts the fill."""
    assume(all(0 <= y + shift <= 30 for _, y in poly))
    h, w = 31, 31
    a = rasterize_official([poly], [3], h, w)
    b = rasterize_official([[(x, y + shift) for x, y in poly]], [3], h, w)
    np.testing.assert_array_equal(np.roll(a, shift, axis=0), b)


@SETTINGS
@given(poly=polygons(lo=65, hi=126, floats=False), shift=st.integers(-61, 61),
       vshift=st.integers(-3, 3))
def test_horizontal_translation_invariance(poly, shift, vshift):
    """Shifting by whole columns shifts the fill, while all x stay in [65, 126].

    (Only within one float32 binade, here [64, 128), is ``t + x0`` rounded the same way for
    every integer ``x0``; across binades the rule itself is not exactly translation invariant.)
    """
    assume(all(65 <= x + shift <= 126 and 65 <= y + vshift <= 126 for x, y in poly))
    h, w = 130, 200
    a = rasterize_official([poly], [3], h, w)
    b = rasterize_official([[(x + shift, y + vshift) for x, y in poly]], [3], h, w)
    np.testing.assert_array_equal(np.roll(np.roll(a, shift, axis=1), vshift, axis=0), b)


@SETTINGS
@given(poly=polygons(), k=st.integers(0, 20), size=canvas)
def test_closing_and_rotation_do_not_matter(poly, k, size):
    """Repeating the first vertex at the end, or starting the cycle elsewhere, keeps every edge
    (with its own start vertex), so the fill is the same."""
    h, w = size
    trunc = [(int(float(x)), int(float(y))) for x, y in poly]
    assume(len(poly) >= 2 and trunc[0] != trunc[-1])
    base = rasterize_official([poly], [1], h, w)
    closed = rasterize_official([poly + [poly[0]]], [1], h, w)
    k %= len(poly)
    rotated = rasterize_official([poly[k:] + poly[:k]], [1], h, w)
    np.testing.assert_array_equal(base, closed)
    np.testing.assert_array_equal(base, rotated)


@SETTINGS
@given(polys=st.lists(polygons(), min_size=1, max_size=5), size=canvas)
def test_painting_order_later_overwrites(polys, size):
    h, w = size
    values = list(range(10, 10 + len(polys)))
    got = rasterize_official(polys, values, h, w, background=-1)
    want = np.full((h, w), -1, np.int32)
    for poly, value in zip(polys, values):
        mask = rasterize_official([poly], [1], h, w, background=0) == 1
        want[mask] = value
    np.testing.assert_array_equal(got, want)


@SETTINGS
@given(poly=polygons(lo=-8, hi=40, floats=False), frac=st.floats(0, 0.99), size=canvas)
def test_float_coordinates_truncate_toward_zero(poly, frac, size):
    """x + frac (away from zero) truncates back to x: -2.7 -> -2, like C's (int) cast."""
    h, w = size

    def away(v):
        return v + frac if v >= 0 else v - frac

    fpoly = np.array([(away(x), away(y)) for x, y in poly], np.float64).reshape(-1, 2)
    np.testing.assert_array_equal(rasterize_official([fpoly], [5], h, w),
                                  rasterize_official([np.array(poly).reshape(-1, 2)], [5], h, w))


# ------------------------------------------------------------------ fixed cases
def test_small_triangle_known_pixels():
    """Hand-checked against PIL <= 2.4.0 (Pillow 2.4.0 built from source draws the same)."""
    got = rasterize_official([[(1, 1), (8, 2), (5, 8)]], [7], 10, 10)
    want = np.array([
        [0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        [0, 7, 7, 7, 7, 7, 0, 0, 0, 0],
        [0, 0, 7, 7, 7, 7, 7, 7, 7, 0],
        [0, 0, 7, 7, 7, 7, 7, 7, 0, 0],
        [0, 0, 0, 7, 7, 7, 7, 7, 0, 0],
        [0, 0, 0, 0, 7, 7, 7, 0, 0, 0],
        [0, 0, 0, 0, 7, 7, 7, 0, 0, 0],
        [0, 0, 0, 0, 0, 7, 0, 0, 0, 0],
        [0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        [0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
    ], np.int32)
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("edge, row, exact_x", [
    # (start vertex, end vertex), row, exact crossing: float32 gives .50006 / .49998 / ...
    (((1397, 268), (143, 138)), 170, 456.5),
    (((1273, 2), (382, 203)), 169, 530.5),
    (((18, 753), (1718, 669)), 742, 230.5),
    (((136, 870), (1423, 573)), 667, 1013.5),
])
def test_float32_rounding_decides_edge_pixels(edge, row, exact_x):
    """Crossings that are exactly x.5 in real arithmetic but not in float32 (the cases where
    float64 arithmetic gives a wrong pixel on real frames). Checked against Pillow 2.4.0."""
    (x0, y0), (x1, y1) = edge
    dx = np.float32(x1 - x0) / np.float32(y1 - y0)
    x32 = float((np.float32(row) + np.float32(0.5) - np.float32(y0)) * dx + np.float32(x0))
    assert x32 != exact_x and abs(x32 - exact_x) < 1e-3
    # the edge as the left side of the polygon (a far vertex to the right closes it) ...
    far = (2047, y1)
    left = rasterize_official([[(x0, y0), (x1, y1), far]], [1], 1024, 2048)[row]
    first = int(np.flatnonzero(left)[0])
    # ... and as the right side (a vertex at x = 0 closes it)
    right = rasterize_official([[(x0, y0), (x1, y1), (0, y1)]], [1], 1024, 2048)[row]
    last = int(np.flatnonzero(right)[-1])
    assert (first, last) == (math.ceil(x32 - 0.5), math.floor(x32 + 0.5))
    assert (first, last) != (math.ceil(exact_x - 0.5), math.floor(exact_x + 0.5))


def test_rectangle_is_half_open_in_y_and_closed_in_x():
    got = rasterize_official([np.array([[2, 1], [5, 1], [5, 4], [2, 4]])], [1], 6, 8)
    want = np.zeros((6, 8), np.int32)
    want[1:4, 2:6] = 1  # rows 1..3 (bottom row 4 not filled), columns 2..5 (ties included)
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("poly", [[], [(3, 3)], [(1.5, 2.5)], [(2, 2), (2, 2)],
                                  [(0, 3), (9, 3)], [(0, 3), (5, 3), (9, 3), (0, 3)]])
def test_degenerate_polygons_paint_nothing(poly):
    """< 2 vertices (PIL raised TypeError), or no non-horizontal edge: nothing, no error."""
    got = rasterize_official([poly, [(0, 0), (6, 0), (6, 6)]], [9, 4], 8, 8, background=2)
    want = rasterize_official([[(0, 0), (6, 0), (6, 6)]], [4], 8, 8, background=2)
    np.testing.assert_array_equal(got, want)
    assert (got == 2).any() and (got == 4).any() and not (got == 9).any()


def test_two_point_segment_paints_a_thin_line_as_pil_did():
    got = rasterize_official([[(3, 1), (3, 6)]], [1], 8, 8)
    want = np.zeros((8, 8), np.int32)
    want[1:6, 3] = 1  # both crossings at x = 3: columns ceil(2.5) .. floor(3.5)
    np.testing.assert_array_equal(got, want)


def test_ties_at_half_are_filled_on_both_sides():
    # rows cross at x = 0.5 + r * 0 ... : a right triangle whose slanted edge passes x.5 exactly
    got = rasterize_official([[(0, 0), (2, 4), (0, 4)]], [1], 5, 5)
    # edge (0,0)->(2,4): dx = 0.5; row r crosses at (r + 0.5) * 0.5: 0.25, 0.75, 1.25, 1.75
    want = np.zeros((5, 5), np.int32)
    for r, xb in enumerate([0.25, 0.75, 1.25, 1.75]):
        want[r, 0:math.floor(xb + 0.5) + 1] = 1
    np.testing.assert_array_equal(got, want)
    # a crossing exactly at .5 fills the column on its right (floor(2.5 + 0.5) = 3) ...
    got = rasterize_official([[(0, 0), (5, 5), (0, 5)]], [1], 6, 6)
    assert got[2, 3] == 1 and got[2, 4] == 0  # edge x = 2.5 at row 2
    # ... and a left crossing exactly at .5 fills the column on its left (ceil(2.5 - 0.5) = 2)
    got = rasterize_official([[(5, 0), (5, 5), (0, 0)]], [1], 6, 6)
    assert got[2, 2] == 1 and got[2, 1] == 0


def test_canvas_clipping_and_input_types():
    poly_list = [[-5, -5], [20, -5], [20, 20], [-5, 20]]
    full = rasterize_official([poly_list], [3], 4, 6)
    assert (full == 3).all()
    as_array = rasterize_official([np.array(poly_list, np.int16)], (3,), 4, 6)
    as_float = rasterize_official((np.array(poly_list, np.float32),), np.array([3]), 4, 6)
    np.testing.assert_array_equal(full, as_array)
    np.testing.assert_array_equal(full, as_float)
    assert rasterize_official([], [], 3, 4, background=6).tolist() == [[6] * 4] * 3
    assert rasterize_official([poly_list], [1], 0, 5).shape == (0, 5)


@pytest.mark.parametrize("args, match", [
    (([[(0, 0), (1, 1), (0, 2)]], [1, 2], 4, 4), "values"),
    (([[0, 0, 1, 1]], [1], 4, 4), r"\(K, 2\)"),
    (([[(0, 0), (1, np.nan), (0, 2)]], [1], 4, 4), "finite"),
    (([[(0, 0), (3e10, 1), (0, 2)]], [1], 4, 4), "int32"),
    (([[(0, 0), (1, 1), (0, 2)]], [2**31], 4, 4), "int32"),
    (([[(0, 0), (1, 1), (0, 2)]], [1], -1, 4), "non-negative"),
])
def test_bad_input_raises_value_error(args, match):
    with pytest.raises(ValueError, match=match):
        rasterize_official(*args)


def test_rasterize_dispatch():
    poly = [[(1, 1), (8, 2), (5, 8)]]
    assert set(RASTERS) == {"official", "pillow"}
    np.testing.assert_array_equal(rasterize(poly, [7], 10, 10),
                                  rasterize_official(poly, [7], 10, 10))
    np.testing.assert_array_equal(rasterize(poly, [7], 10, 10, method="pillow"),
                                  rasterize_pillow(poly, [7], 10, 10))
    with pytest.raises(ValueError, match="unknown rasteriser"):
        rasterize(poly, [7], 10, 10, method="cv2")


@settings(max_examples=100, deadline=None)
@given(polys=st.lists(polygons(lo=-8, hi=40, floats=False).filter(lambda p: len(p) >= 2),
                      min_size=1, max_size=3), size=canvas)
def test_pillow_backend_is_installed_pillow(polys, size):
    """``rasterize_pillow`` is exactly ImageDraw.polygon(fill=v) on an "I" image, in order."""
    h, w = size
    values = [1000 + i for i in range(len(polys))]
    img = Image.new("I", (w, h), 5)
    draw = ImageDraw.Draw(img)
    for poly, value in zip(polys, values):
        draw.polygon([tuple(p) for p in poly], fill=value)
    np.testing.assert_array_equal(rasterize_pillow(polys, values, h, w, background=5),
                                  np.asarray(img, dtype=np.int32))
