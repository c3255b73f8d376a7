"""A synthetic, Cityscapes-format driving dataset: polygon JSONs and camera-like images.

:func:`generate_cityscapes` writes the official Cityscapes layout::

    <root>/leftImg8bit/<split>/<city>/<city>_<seq:06d>_<frame:06d>_leftImg8bit.png
    <root>/gtFine/<split>/<city>/<city>_<seq:06d>_<frame:06d>_gtFine_polygons.json

so that every segprep command (``cityscapes gen-gt``, ``odgt create --dataset cityscapes``,
``train``, ``evaluate cityscapes``, ``submit cityscapes``) runs on it exactly as on the real
release, on a fresh machine with nothing downloaded. It is what ``segprep demo`` and the tests use.

Scenes are street views built in 3-D and projected with a pinhole camera (horizon, vanishing point,
camera 1.5 m above the road): sky, a skyline, facades along both sides, terrain verges, sidewalks,
a road, walls and fences, trees, poles with traffic signs and lights, cars (some with a
``license plate``), trucks and buses, persons, bicycles with riders, ``static`` street furniture,
a far ``cargroup``, the ``ego vehicle`` hood and ``rectification border`` corners. Objects are
listed in drawing order (background first, then standing objects far to near), as in the real
JSONs, and now and then a ``deleted`` object is added to exercise the conversion rules. Labels are
the 35 Cityscapes labels of ``class_maps/cityscapes.csv``; vertices are integers clipped to the
image, as in the official files.

The image is rendered from the same polygons, rasterised with the same rule as
``segprep cityscapes gen-gt`` (``raster="official"`` by default), so label edges and image edges
coincide pixel for pixel. Each object gets a natural colour (not the label palette) with per-object
shading, gradients and texture (facade windows in facade coordinates, lane markings and paving in
ground coordinates, tyres, glass and tail lights on vehicles, clothes on persons, blotchy foliage),
plus car shadows, exposure, white balance, vignetting, blur and sensor noise: a small U-Net learns
it, but not from colour alone. The test split's JSONs hold only the void objects (ego vehicle,
rectification border), as in the official test release; its images are fully rendered.

Everything is deterministic given ``seed`` (one :class:`numpy.random.SeedSequence` per frame).
City names are invented (``synthtown`` …) so that synthetic frames are never mistaken for real ones.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from segprep.errors import SegprepError

#: split → the invented city names used for it (frames are spread over them round-robin)
CITIES: dict[str, tuple[str, ...]] = {
    "train": ("synthtown", "demoville"),
    "val": ("mockburg",),
    "test": ("testopolis",),
}
SPLIT_CODES = {"train": 0, "val": 1, "test": 2}
#: the frame number of every synthetic frame (the 20th frame of a snippet, as Cityscapes' gtFine)
FRAME_NUMBER = 19
#: labels kept in the test split's JSONs (the official test annotations hold only these)
TEST_LABELS = ("ego vehicle", "rectification border", "out of roi")
#: a marker file written at the root of every synthetic dataset
MARKER = "SYNTHETIC.txt"

CAMERA_HEIGHT = 1.5  # metres above the road
FAR = 400.0  # metres: far end of the ground planes

# appearance kinds (how an object's pixels are textured)
(K_PLAIN, K_SKY, K_FACADE, K_ROAD, K_SIDEWALK, K_TERRAIN, K_FOLIAGE, K_VEHICLE, K_PERSON,
 K_SIGN, K_LIGHT, K_FENCE, K_EGO, K_PLATE, K_BIKE) = range(15)
GROUND_KINDS = (K_ROAD, K_SIDEWALK, K_TERRAIN)


# --------------------------------------------------------------------------------------- scene
@dataclass
class Camera:
    """Pinhole camera: focal length ``f`` and vanishing point ``(xv, y0)`` (px), height ``hc`` (m).

    A 3-D point ``(X, Y, Z)`` (metres: right, up, forward; the road at ``Y = 0``) projects to
    ``x = xv + f X / Z``, ``y = y0 + f (hc - Y) / Z``.
    """

    width: int
    height: int
    f: float
    xv: float
    y0: float
    hc: float = CAMERA_HEIGHT

    def project(self, pts: np.ndarray) -> np.ndarray:
        """``(K, 3)`` metres → ``(K, 2)`` float pixels."""
        pts = np.asarray(pts, np.float64)
        z = np.maximum(pts[:, 2], 1e-3)
        return np.stack([self.xv + self.f * pts[:, 0] / z,
                         self.y0 + self.f * (self.hc - pts[:, 1]) / z], axis=1)


@dataclass
class SceneObject:
    """One annotated object: its label, integer polygon and how it looks in the image.

    Attributes:
        label: a Cityscapes label name (``cargroup`` etc. allowed).
        polygon: ``(K, 2)`` int64 vertices ``(x, y)``, clipped to the image.
        color: base RGB (0..255 floats).
        kind: appearance kind (``K_*``).
        deleted: written with ``"deleted": 1`` (not drawn in labels nor in the image).
        params: kind-specific appearance parameters.
        bbox: unclipped ``(x0, y0, x1, y1)`` of the projected object (texture coordinates).
    """

    label: str
    polygon: np.ndarray
    color: tuple[float, float, float]
    kind: int = K_PLAIN
    deleted: bool = False
    params: dict = field(default_factory=dict)
    bbox: tuple[float, float, float, float] = (0.0, 0.0, 1.0, 1.0)


@dataclass
class Scene:
    """A synthetic frame before writing: camera, objects in drawing order, shadow polygons."""

    camera: Camera
    objects: list[SceneObject]
    shadows: list[np.ndarray]
    lane_lines: list[tuple[float, bool]]  # (X metres, dashed)
    road_edges: tuple[float, float]
    exposure: float
    tint: tuple[float, float, float]
    sunny: bool


def _clip_polygon(poly: np.ndarray, width: int, height: int) -> np.ndarray:
    """Sutherland-Hodgman clip of a ``(K, 2)`` float polygon to ``[0, W-1] x [0, H-1]``."""
    out = [tuple(p) for p in poly]
    for axis, bound, keep_ge in ((0, 0.0, True), (0, width - 1.0, False),
                                 (1, 0.0, True), (1, height - 1.0, False)):
        if not out:
            break
        inp, out = out, []
        prev = inp[-1]
        for cur in inp:
            cur_in = cur[axis] >= bound if keep_ge else cur[axis] <= bound
            prev_in = prev[axis] >= bound if keep_ge else prev[axis] <= bound
            if cur_in != prev_in:
                t = (bound - prev[axis]) / (cur[axis] - prev[axis])
                out.append((prev[0] + t * (cur[0] - prev[0]), prev[1] + t * (cur[1] - prev[1])))
            if cur_in:
                out.append(cur)
            prev = cur
    return np.asarray(out, np.float64).reshape(-1, 2)


def _integer_polygon(poly: np.ndarray, width: int, height: int) -> np.ndarray | None:
    """Clip, round to integers (as the official JSONs), drop repeated vertices; None if empty."""
    clipped = _clip_polygon(poly, width, height)
    if len(clipped) < 3:
        return None
    pts = np.rint(clipped).astype(np.int64)
    keep = np.any(pts != np.roll(pts, 1, axis=0), axis=1)
    pts = pts[keep]
    if len(pts) < 3:
        return None
    x, y = pts[:, 0].astype(np.float64), pts[:, 1].astype(np.float64)
    if abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) < 2.0:  # area < 1 px
        return None
    return pts


class _Builder:
    """Accumulates scene objects, projecting and clipping 3-D outlines."""

    def __init__(self, cam: Camera, rng: np.random.Generator) -> None:
        self.cam, self.rng = cam, rng
        self.objects: list[SceneObject] = []
        self.standing: list[tuple[float, int, list[SceneObject]]] = []  # (depth, order, objs)
        self.shadows: list[np.ndarray] = []

    def make(self, label: str, pts3d: np.ndarray | None, color, kind: int = K_PLAIN,
             pixels: np.ndarray | None = None, **params) -> SceneObject | None:
        """Project (or take ``pixels``), clip, and build an object; None if it is off-image."""
        px = self.cam.project(pts3d) if pixels is None else np.asarray(pixels, np.float64)
        poly = _integer_polygon(px, self.cam.width, self.cam.height)
        if poly is None:
            return None
        bbox = (float(px[:, 0].min()), float(px[:, 1].min()), float(px[:, 0].max()),
                float(px[:, 1].max()))
        return SceneObject(label, poly, tuple(float(c) for c in color), kind, params=params,
                           bbox=bbox)

    def add(self, *objs: SceneObject | None) -> None:
        self.objects.extend(o for o in objs if o is not None)

    def stand(self, depth: float, *objs: SceneObject | None) -> None:
        """Queue standing objects at ``depth`` metres (painted far to near after the background)."""
        objs_ok = [o for o in objs if o is not None]
        if objs_ok:
            self.standing.append((depth, len(self.standing), objs_ok))

    def finish(self) -> list[SceneObject]:
        for _depth, _n, objs in sorted(self.standing, key=lambda t: (-t[0], t[1])):
            self.objects.extend(objs)
        self.standing = []
        return self.objects


def _jitter(rng: np.random.Generator, rgb, amount: float = 12.0) -> tuple[float, float, float]:
    c = np.asarray(rgb, np.float64) + rng.normal(0, amount, 3)
    return tuple(np.clip(c, 0, 255).tolist())


def _pick(rng: np.random.Generator, options):
    return options[int(rng.integers(len(options)))]


def _frontal(x0: float, x1: float, y0: float, y1: float, z: float) -> np.ndarray:
    """A rectangle in the plane ``Z = z``: corners ``(x, y)`` in metres."""
    return np.array([[x0, y0, z], [x0, y1, z], [x1, y1, z], [x1, y0, z]], np.float64)


def _template(points, x: float, z: float, sx: float, sy: float, y: float = 0.0,
              mirror: bool = False) -> np.ndarray:
    """A 2-D outline template (metres) placed frontally at lateral ``x``, depth ``z``."""
    p = np.asarray(points, np.float64)
    px = -p[:, 0] if mirror else p[:, 0]
    return np.stack([x + sx * px, y + sy * p[:, 1], np.full(len(p), z)], axis=1)


# outlines in metres (x right, y up), rear view of a car, a person, a bicycle side view
_CAR = [(-0.85, 0.0), (-0.55, 0.0), (-0.55, 0.15), (0.55, 0.15), (0.55, 0.0), (0.85, 0.0),
        (0.9, 0.25), (0.92, 0.88), (0.76, 1.0), (0.64, 1.45), (-0.64, 1.45), (-0.76, 1.0),
        (-0.92, 0.88), (-0.9, 0.25)]
_PERSON = [(-0.2, 0.0), (-0.07, 0.0), (0.0, 0.78), (0.07, 0.0), (0.2, 0.0), (0.17, 0.9),
           (0.27, 0.85), (0.3, 0.92), (0.24, 1.42), (0.07, 1.48), (0.1, 1.56), (0.1, 1.68),
           (0.05, 1.75), (-0.05, 1.75), (-0.1, 1.68), (-0.1, 1.56), (-0.07, 1.48), (-0.24, 1.42),
           (-0.3, 0.92), (-0.27, 0.85), (-0.17, 0.9)]
_BICYCLE = [(-0.85, 0.35), (-0.75, 0.1), (-0.5, 0.0), (-0.25, 0.1), (-0.15, 0.3), (0.15, 0.3),
            (0.25, 0.1), (0.5, 0.0), (0.75, 0.1), (0.85, 0.35), (0.75, 0.6), (0.55, 0.7),
            (0.45, 1.0), (0.55, 1.05), (0.38, 1.06), (0.3, 0.72), (-0.2, 0.76), (-0.25, 0.95),
            (-0.47, 0.95), (-0.37, 0.76), (-0.55, 0.68), (-0.75, 0.6)]
_RIDER = [(-0.15, 0.35), (0.05, 0.35), (0.1, 0.75), (0.3, 0.95), (0.38, 1.25), (0.2, 1.42),
          (0.08, 1.47), (0.1, 1.55), (0.1, 1.67), (0.0, 1.73), (-0.1, 1.67), (-0.1, 1.5),
          (-0.2, 1.4), (-0.25, 0.95), (-0.18, 0.75)]

_FACADE_COLORS = [(172, 160, 140), (140, 122, 104), (182, 178, 172), (118, 110, 106),
                  (160, 102, 82), (204, 194, 172), (150, 150, 158), (190, 170, 130)]
_CAR_COLORS = [(225, 225, 228), (170, 172, 176), (35, 35, 38), (30, 45, 90), (150, 25, 25),
               (95, 98, 104), (60, 80, 60), (200, 180, 140)]
_CLOTHES = [(30, 30, 35), (60, 60, 90), (150, 30, 40), (200, 200, 200), (40, 70, 120),
            (110, 90, 60), (80, 110, 70), (190, 150, 60)]
_SKIN = [(230, 190, 160), (200, 150, 110), (140, 95, 65), (90, 60, 40)]


def build_scene(rng: np.random.Generator, width: int, height: int) -> Scene:
    """Draw one random street scene.

    Args:
        rng: the frame's random generator (all randomness comes from it).
        width, height: image size in pixels.

    Returns:
        a :class:`Scene` whose objects are in Cityscapes drawing order.
    """
    cam = Camera(width, height, f=width * rng.uniform(0.85, 1.05),
                 xv=width * rng.uniform(0.42, 0.58), y0=height * rng.uniform(0.38, 0.47))
    b = _Builder(cam, rng)
    W, H = width, height
    sunny = bool(rng.random() < 0.6)
    sun_left = bool(rng.random() < 0.5)

    # ground layout (metres): road from rl to rr, sidewalks, facades
    lanes = int(rng.integers(2, 4))
    lane_w = rng.uniform(3.0, 3.6)
    rl = -lane_w * (lanes - 0.5) - rng.uniform(0.0, 0.6)
    rr = lane_w * 0.5 + rng.uniform(0.2, 1.2)
    sw_l, sw_r = rng.uniform(2.0, 4.5), rng.uniform(2.0, 4.5)
    far_z = rng.uniform(90, 220)
    verge_l = rng.random() < 0.35
    verge_r = rng.random() < 0.35
    fac_l = rl - sw_l - (rng.uniform(1.5, 4.0) if verge_l else 0.0)
    fac_r = rr + sw_r + (rng.uniform(1.5, 4.0) if verge_r else 0.0)
    lane_lines = [(rl + 0.25, False), (rr - 0.25, False)] + [
        (lane_w * (0.5 - k), True) for k in range(1, lanes)]

    # 1. sky and skyline (far buildings at the horizon)
    sky_col = (110, 160, 215) if sunny else (196, 200, 206)
    b.add(b.make("sky", None, _jitter(rng, sky_col, 10), K_SKY,
                 pixels=[[0, 0], [W - 1, 0], [W - 1, cam.y0 + 4], [0, cam.y0 + 4]],
                 sunny=sunny))
    xs = np.linspace(-0.02 * W, 1.02 * W, int(rng.integers(6, 12)) + 1)
    sky_top = [cam.y0 - H * rng.uniform(0.02, 0.12, size=len(xs) - 1)]
    pts = [[xs[0], cam.y0 + 3]]
    for k in range(len(xs) - 1):
        pts += [[xs[k], sky_top[0][k]], [xs[k + 1], sky_top[0][k]]]
    pts += [[xs[-1], cam.y0 + 3]]
    b.add(b.make("building", None, _jitter(rng, (150, 150, 155), 15), K_PLAIN, pixels=pts))
    if rng.random() < 0.5:  # distant tree line
        xs2 = np.linspace(rng.uniform(-0.1, 0.5) * W, rng.uniform(0.6, 1.1) * W, 14)
        tops = cam.y0 - H * rng.uniform(0.01, 0.06, size=len(xs2))
        pts = ([[xs2[0], cam.y0 + 3]] + [[x, y] for x, y in zip(xs2, tops, strict=True)]
               + [[xs2[-1], cam.y0 + 3]])
        b.add(b.make("vegetation", None, _jitter(rng, (70, 95, 55), 10), K_FOLIAGE, pixels=pts))

    # 2. ground: verges, sidewalks, road (near Z = 0.5 m, far Z = far_z)
    zn, zf = 0.5, far_z

    def ground(x0: float, x1: float, z0: float = zn, z1: float = zf) -> np.ndarray:
        return np.array([[x0, 0, z0], [x0, 0, z1], [x1, 0, z1], [x1, 0, z0]], np.float64)

    for x_out, x_in, verge in ((fac_l - 30, rl - sw_l, verge_l), (fac_r + 30, rr + sw_r, verge_r)):
        lab, kind, col = (("terrain", K_TERRAIN, (118, 140, 78)) if verge
                          else ("sidewalk", K_SIDEWALK, (160, 150, 148)))
        b.add(b.make(lab, ground(min(x_out, x_in), max(x_out, x_in)), _jitter(rng, col, 10), kind))
    sw_col = _jitter(rng, _pick(rng, [(165, 155, 150), (175, 150, 145), (140, 140, 138)]), 8)
    b.add(b.make("sidewalk", ground(rl - sw_l, rl), sw_col, K_SIDEWALK, curb=rl))
    b.add(b.make("sidewalk", ground(rr, rr + sw_r), sw_col, K_SIDEWALK, curb=rr))
    if rng.random() < 0.3:  # a parking strip along the right side
        z0 = rng.uniform(8, 30)
        b.add(b.make("parking", ground(rr - 2.2, rr, z0, z0 + rng.uniform(10, 30)),
                     _jitter(rng, (125, 118, 118), 8), K_PLAIN))
    b.add(b.make("road", ground(rl, rr), _jitter(rng, (98, 98, 104), 8), K_ROAD))

    # 3. facades: a continuous back row, then individual buildings along each side
    for side, xf in ((-1, fac_l), (1, fac_r)):
        lit = 1.0 + (0.18 if (side < 0) == sun_left else -0.12) * sunny
        park = rng.random() < 0.2
        xb = xf + side * 8.0
        back = np.array([[xb, 0, zn], [xb, 14, zn], [xb, 14, zf], [xb, 0, zf]], np.float64)
        b.add(b.make("vegetation" if park else "building", back,
                     _jitter(rng, (70, 100, 50) if park else (140, 136, 130), 10),
                     K_FOLIAGE if park else K_PLAIN))
        if park:
            continue
        z = zn + rng.uniform(-3, 4)
        while z < zf:
            length = rng.uniform(8, 30)
            if rng.random() < 0.15:  # an alley
                z += rng.uniform(3, 8)
                continue
            h = rng.uniform(7, 25)
            col = tuple(c * lit for c in _jitter(rng, _pick(rng, _FACADE_COLORS), 12))
            quad = np.array([[xf, 0, z], [xf, h, z], [xf, h, z + length], [xf, 0, z + length]])
            b.add(b.make("building", quad, col, K_FACADE, plane="x", plane_at=xf,
                         period=rng.uniform(2.6, 4.2), duty=rng.uniform(0.35, 0.6),
                         floor=rng.uniform(2.8, 3.6), shop=rng.random() < 0.6,
                         glass=_jitter(rng, _pick(rng, [(45, 55, 70), (150, 170, 190),
                                                        (70, 70, 72)]), 8)))
            z += length
    # the street's far end: a frontal row of buildings
    col = _jitter(rng, _pick(rng, _FACADE_COLORS), 10)
    b.add(b.make("building", _frontal(fac_l - 40, fac_r + 40, 0, rng.uniform(12, 30), zf), col,
                 K_FACADE, plane="z", plane_at=zf, period=3.0, duty=0.5, floor=3.2, shop=False,
                 glass=(60, 66, 76)))

    # 4. walls and fences along the sidewalks' outer edges
    for xw in (rl - sw_l + 0.1, rr + sw_r - 0.1):
        if rng.random() < 0.35:
            z0 = rng.uniform(2, 25)
            z1 = z0 + rng.uniform(6, 40)
            h = rng.uniform(0.8, 2.0)
            fence = rng.random() < 0.55
            quad = np.array([[xw, 0, z0], [xw, h, z0], [xw, h, z1], [xw, 0, z1]])
            b.add(b.make("fence" if fence else "wall", quad,
                         _jitter(rng, (150, 130, 110) if fence else (165, 165, 160), 12),
                         K_FENCE if fence else K_PLAIN, plane="x", plane_at=xw,
                         period=rng.uniform(0.15, 0.3)))
    if rng.random() < 0.25:  # a guard rail or rail track now and then (ignored classes)
        z0 = rng.uniform(5, 20)
        b.add(b.make("guard rail", np.array([[rl + 0.05, 0.3, z0], [rl + 0.05, 0.8, z0],
                                             [rl + 0.05, 0.8, z0 + 30], [rl + 0.05, 0.3, z0 + 30]]),
                     _jitter(rng, (175, 175, 180), 8), K_PLAIN))

    # 5. standing objects, sorted far to near later
    # trees
    for _ in range(int(rng.integers(0, 7))):
        side = _pick(rng, (-1, 1))
        x = (rl - sw_l + 0.8) if side < 0 else (rr + sw_r - 0.8)
        z = rng.uniform(6, 80)
        trunk_h, r = rng.uniform(2.0, 4.0), rng.uniform(1.5, 3.5)
        ang = np.linspace(0, 2 * np.pi, 20, endpoint=False)
        rad = r * (1 + 0.18 * rng.standard_normal(20))
        crown = np.stack([x + rad * np.cos(ang), trunk_h + r + 0.9 * rad * np.sin(ang),
                          np.full(20, z)], axis=1)
        trunk = _frontal(x - 0.15, x + 0.15, 0, trunk_h + 0.5 * r, z)
        green = _jitter(rng, (62, 98, 42), 14)
        b.stand(z, b.make("vegetation", trunk, _jitter(rng, (85, 65, 45), 8), K_PLAIN),
                b.make("vegetation", crown, green, K_FOLIAGE))
    # poles with signs and traffic lights
    for _ in range(int(rng.integers(2, 8))):
        side = _pick(rng, (-1, 1))
        x = (rl - 0.4) if side < 0 else (rr + 0.4)
        x += side * rng.uniform(0, 1.0)
        z = rng.uniform(4, 90)
        h = rng.uniform(3.5, 7.0)
        w = rng.uniform(0.08, 0.16)
        objs = [b.make("pole", _frontal(x - w, x + w, 0, h, z),
                       _jitter(rng, _pick(rng, [(120, 122, 126), (70, 72, 74), (150, 150, 140)]),
                               8), K_PLAIN)]
        what = rng.random()
        if what < 0.45:  # a traffic sign on top
            s = rng.uniform(0.5, 0.8)
            cy = h - s * 0.6
            shape = _pick(rng, ("rect", "tri", "circle", "diamond"))
            if shape == "rect":
                pts = _frontal(x - s / 2, x + s / 2, cy - s / 2, cy + s / 2, z)
            elif shape == "tri":
                pts = np.array([[x - s / 2, cy - s / 2.5, z], [x, cy + s / 2, z],
                                [x + s / 2, cy - s / 2.5, z]])
            elif shape == "circle":
                a = np.linspace(0, 2 * np.pi, 12, endpoint=False)
                pts = np.stack([x + s / 2 * np.cos(a), cy + s / 2 * np.sin(a), np.full(12, z)], 1)
            else:
                pts = np.array([[x - s / 2, cy, z], [x, cy + s / 2, z], [x + s / 2, cy, z],
                                [x, cy - s / 2, z]])
            face = _pick(rng, [(30, 80, 170), (235, 235, 235), (225, 190, 40), (200, 40, 40)])
            objs.append(b.make("traffic sign", pts, _jitter(rng, face, 8), K_SIGN,
                               rim=_pick(rng, [(200, 30, 30), (240, 240, 240), (30, 30, 30)])))
        elif what < 0.75:  # a traffic light
            lx = x - side * 0.25
            objs.append(b.make("traffic light", _frontal(lx - 0.18, lx + 0.18, h - 1.0, h, z),
                               _jitter(rng, (38, 38, 40), 5), K_LIGHT,
                               lamp=int(rng.integers(3))))
        b.stand(z, *objs)
    # static street furniture (bins, boxes) and now and then a dynamic object
    for _ in range(int(rng.integers(0, 4))):
        side = _pick(rng, (-1, 1))
        x = (rl - rng.uniform(0.5, sw_l)) if side < 0 else (rr + rng.uniform(0.5, sw_r))
        z = rng.uniform(4, 50)
        w, h = rng.uniform(0.4, 1.2), rng.uniform(0.6, 1.4)
        lab = "dynamic" if rng.random() < 0.2 else "static"
        b.stand(z, b.make(lab, _frontal(x - w / 2, x + w / 2, 0, h, z),
                          _jitter(rng, _pick(rng, [(60, 90, 60), (90, 90, 95), (150, 120, 60)]),
                                  10), K_PLAIN))
    # vehicles on the lanes and parked at the kerb
    n_cars = int(rng.integers(2, 9))
    for _ in range(n_cars):
        lane = int(rng.integers(lanes + 1))  # lanes + one parking position
        x = (rr - 1.1) if lane == lanes else -lane * lane_w + rng.normal(0, 0.25)
        z = rng.uniform(12 if lane == 0 else 5.5, 70)
        r = rng.random()
        body = _jitter(rng, _pick(rng, _CAR_COLORS), 10)
        if r < 0.1:
            lab, sx, sy = "truck", rng.uniform(1.2, 1.35), rng.uniform(2.0, 2.5)
        elif r < 0.17:
            lab, sx, sy = "bus", 1.35, rng.uniform(2.0, 2.3)
        else:
            lab, sx, sy = "car", rng.uniform(0.95, 1.1), rng.uniform(0.95, 1.15)
        pts = _template(_CAR, x, z, sx, sy)
        objs = [b.make(lab, pts, body, K_VEHICLE, glass_frac=0.3 if lab == "car" else 0.18)]
        if lab == "car" and rng.random() < 0.6:
            objs.append(b.make("license plate", _frontal(x - 0.26, x + 0.26, 0.36 * sy, 0.48 * sy,
                                                         z - 0.01), (232, 232, 226), K_PLATE))
        b.shadows.append(cam.project(np.array([[x - sx, 0, z - 0.3], [x - sx, 0, z + 3.5],
                                               [x + sx, 0, z + 3.5], [x + sx, 0, z - 0.3]])))
        b.stand(z, *objs)
    if rng.random() < 0.5:  # a far group of cars annotated as one cargroup
        z = rng.uniform(60, min(far_z - 5, 110))
        x = rng.uniform(rl + 1, rr - 1)
        pts = np.concatenate([_template(_CAR, x - 1.0, z, 1.0, 1.0)[:3],
                              _template(_CAR, x + 1.1, z, 1.0, 1.05)[3:11],
                              _template(_CAR, x - 1.0, z, 1.0, 1.0)[10:]])
        b.stand(z, b.make("cargroup", pts, _jitter(rng, _pick(rng, _CAR_COLORS), 10), K_VEHICLE,
                          glass_frac=0.3))
    # persons on the sidewalks, cyclists at the road edge
    for _ in range(int(rng.integers(1, 7))):
        side = _pick(rng, (-1, 1))
        x = (rl - rng.uniform(0.4, sw_l - 0.3)) if side < 0 else (rr + rng.uniform(0.4, sw_r - 0.3))
        z = rng.uniform(4, 45)
        s = rng.uniform(0.9, 1.1)
        b.stand(z, b.make("person", _template(_PERSON, x, z, rng.uniform(0.85, 1.15), s), (0, 0, 0),
                          K_PERSON, shirt=_jitter(rng, _pick(rng, _CLOTHES), 10),
                          legs=_jitter(rng, _pick(rng, _CLOTHES), 10),
                          skin=_jitter(rng, _pick(rng, _SKIN), 6)))
    for _ in range(int(rng.integers(0, 3))):
        riding = rng.random() < 0.6
        side = _pick(rng, (-1, 1))
        x = (rr - 0.8) if riding else ((rl - sw_l + 0.6) if side < 0 else (rr + sw_r - 0.6))
        z = rng.uniform(5, 40)
        mirror = bool(rng.random() < 0.5)
        bike = b.make("bicycle", _template(_BICYCLE, x, z, 1.0, 1.0, mirror=mirror),
                      _jitter(rng, (40, 40, 45), 8), K_BIKE)
        if riding:
            rider = b.make("rider", _template(_RIDER, x, z, 1.0, rng.uniform(0.95, 1.08),
                                              mirror=mirror), (0, 0, 0), K_PERSON,
                           shirt=_jitter(rng, _pick(rng, _CLOTHES), 10),
                           legs=_jitter(rng, _pick(rng, _CLOTHES), 10),
                           skin=_jitter(rng, _pick(rng, _SKIN), 6))
            b.stand(z, bike, rider)
        else:
            b.stand(z, bike)
    if rng.random() < 0.2:  # a rare motorcycle
        z = rng.uniform(8, 40)
        x = rng.uniform(rl + 1, rr - 1)
        b.stand(z, b.make("motorcycle", _template(_BICYCLE, x, z, 0.7, 1.15),
                          _jitter(rng, (50, 50, 60), 8), K_BIKE))
    objects = b.finish()

    # 6. void objects at the bottom: ego vehicle hood, rectification border corners
    hood = H * rng.uniform(0.07, 0.13)
    xs = np.linspace(0, W - 1, 17)
    ys = (H - 1) - hood * (1 - ((xs - W / 2) / (W * 0.62)) ** 2)
    ego = b.make("ego vehicle", None, _jitter(rng, (32, 32, 36), 4), K_EGO,
                 pixels=np.concatenate([[[0, H - 1]], np.stack([xs, ys], 1), [[W - 1, H - 1]]]))
    c = int(rng.integers(3, 8))
    corners = [b.make("rectification border", None, (0, 0, 0), K_PLAIN,
                      pixels=[[0, H - 1 - c * 2], [c * 3, H - 1], [0, H - 1]]),
               b.make("rectification border", None, (0, 0, 0), K_PLAIN,
                      pixels=[[W - 1, H - 1 - c * 2], [W - 1, H - 1], [W - 1 - c * 3, H - 1]])]
    objects += [o for o in [ego, *corners] if o is not None]

    # 7. now and then a deleted object (annotators' leftovers; never drawn)
    if rng.random() < 0.3:
        z = rng.uniform(8, 30)
        d = b.make("car", _template(_CAR, rng.uniform(rl, rr), z, 1.0, 1.0), (255, 0, 255),
                   K_VEHICLE)
        if d is not None:
            d.deleted = True
            objects.insert(int(rng.integers(len(objects) - 2, len(objects))), d)

    return Scene(cam, objects, b.shadows, lane_lines, (rl, rr),
                 exposure=rng.uniform(0.8, 1.15) * (1.08 if sunny else 0.92),
                 tint=tuple(rng.normal(1.0, 0.04, 3).tolist()), sunny=sunny)


# --------------------------------------------------------------------------------------- render
def _noise_field(rng: np.random.Generator, height: int, width: int, cell: int) -> np.ndarray:
    """Smooth noise, ``(H, W)`` float32 roughly in [-1, 1], varying over ``cell`` pixels."""
    import cv2

    gh, gw = max(2, height // cell + 2), max(2, width // cell + 2)
    g = rng.standard_normal((gh, gw)).astype(np.float32)
    return cv2.resize(g, (width, height), interpolation=cv2.INTER_CUBIC)


@np.errstate(divide="ignore", invalid="ignore")  # facade/fence coordinates are inf off-plane
def render_image(scene: Scene, rng: np.random.Generator, raster: str = "official"
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Render the camera image of a scene.

    Objects are rasterised in order with :func:`segprep.convert.raster.rasterize` (the rule
    ``gen-gt`` uses), so each pixel shows the object its label comes from; ``deleted`` objects are
    not drawn, ``license plate`` objects are (their pixels are labelled as the car beneath them).
    Textures are computed per appearance kind on that kind's pixels only.

    Args:
        scene: from :func:`build_scene`.
        rng: random generator for textures and noise.
        raster: rasteriser name (``official`` or ``pillow``).

    Returns:
        ``(image, index)``: ``(H, W, 3)`` uint8 RGB and ``(H, W)`` int32 map of the object drawn at
        each pixel (index into ``scene.objects``, -1 where nothing is drawn).
    """
    import cv2

    from segprep.convert.raster import rasterize

    cam = scene.camera
    H, W = cam.height, cam.width
    objs = scene.objects
    n = len(objs)
    drawn = [k for k, o in enumerate(objs) if not o.deleted]
    idx = rasterize([objs[k].polygon for k in drawn], [k + 1 for k in drawn], H, W,
                    background=0, method=raster) - 1
    obj = np.where(idx < 0, n, idx).ravel()  # row n of every table: the background

    def table(values, dtype=np.float32, fill=0) -> np.ndarray:
        """Per-object values as an ``(n + 1, ...)`` table (row n: background)."""
        arr = np.asarray(list(values), dtype)
        pad = np.full((1,) + arr.shape[1:], fill, dtype)
        return np.concatenate([arr.reshape((n,) + arr.shape[1:]), pad])

    kinds = table([o.kind for o in objs], np.int32, K_PLAIN)
    pix_kind = kinds[obj]
    order = np.argsort(pix_kind, kind="stable")
    bounds = np.concatenate([[0], np.cumsum(np.bincount(pix_kind, minlength=16))])

    def pixels(k: int) -> np.ndarray:
        """Flat indices of the pixels of appearance kind ``k``."""
        return order[bounds[k]:bounds[k + 1]]

    img = table([o.color for o in objs])[obj]  # (P, 3) float32
    yy, xx = np.divmod(np.arange(H * W, dtype=np.int64), W)
    yy, xx = yy.astype(np.float32), xx.astype(np.float32)
    bbox = table([o.bbox for o in objs], fill=1.0)  # (n + 1, 4)
    grad = rng.normal(0, 0.08, size=(n + 1, 2)).astype(np.float32)
    lf = _noise_field(rng, H, W, 24).ravel()
    mf = _noise_field(rng, H, W, 6).ravel()
    hf = rng.standard_normal(H * W).astype(np.float32)

    def local(sel: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Object ids and position ``(u, v)`` in [0, 1] inside each object's unclipped bbox."""
        o = obj[sel]
        b = bbox[o]
        u = (xx[sel] - b[:, 0]) / np.maximum(b[:, 2] - b[:, 0], 1.0)
        v = (yy[sel] - b[:, 1]) / np.maximum(b[:, 3] - b[:, 1], 1.0)
        return o, u, v

    def ground(sel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Ground-plane coordinates ``(X, Z)`` in metres of pixels below the horizon."""
        gz = cam.f * cam.hc / np.maximum(yy[sel] - cam.y0, 0.5)
        return (xx[sel] - cam.xv) * gz / cam.f, gz

    # per-object shading: a random linear gradient
    allpix = np.arange(H * W)
    o, u, v = local(allpix)
    img *= (1.0 + grad[o, 0] * (u - 0.5) + grad[o, 1] * (v - 0.5))[:, None]

    sel = pixels(K_SKY)
    if sel.size:
        t = np.clip(yy[sel] / max(cam.y0, 1.0), 0, 1)[:, None]
        c = img[sel] * (0.82 + 0.3 * t)
        clouds = np.clip(lf[sel] * 1.4 - 0.6 if scene.sunny else lf[sel] * 0.5 + 0.3, 0, 1)
        img[sel] = c * (1 - 0.6 * clouds[:, None]) + 235 * 0.6 * clouds[:, None]
    sel = pixels(K_ROAD)
    if sel.size:
        gx, gz = ground(sel)
        img[sel] *= (1 + 0.07 * lf[sel] + 0.05 * mf[sel])[:, None]
        paint = np.zeros(sel.size, bool)
        for x_line, dashed in scene.lane_lines:
            near = np.abs(gx - x_line) < 0.08
            if dashed:
                near &= np.mod(gz, 9.0) < 3.0
            paint |= near
        paint &= gz < 150
        img[sel[paint]] = 0.35 * img[sel[paint]] + 0.65 * np.float32(225)
    sel = pixels(K_SIDEWALK)
    if sel.size:
        gx, gz = ground(sel)
        tiles = (np.mod(gx, 0.6) < 0.05) | (np.mod(gz, 0.6) < 0.05)
        img[sel[tiles]] *= 0.86
        curb = table([o.params.get("curb", np.nan) for o in objs], fill=np.nan)[obj[sel]]
        img[sel[np.abs(gx - curb) < 0.2]] *= 1.18
        img[sel] *= (1 + 0.05 * mf[sel])[:, None]
    sel = pixels(K_TERRAIN)
    if sel.size:
        img[sel] *= (1 + 0.18 * lf[sel] + 0.12 * mf[sel])[:, None]
    sel = pixels(K_FOLIAGE)
    if sel.size:
        blot = np.clip(1 + 0.35 * mf[sel] + 0.2 * lf[sel], 0.3, 1.8)
        blot[mf[sel] > 0.9] *= 0.55
        img[sel] *= blot[:, None]
    sel = pixels(K_FACADE)
    if sel.size:
        o = obj[sel]
        lateral = table([o2.params.get("plane") == "x" for o2 in objs], bool, False)[o]
        at = table([o2.params.get("plane_at", 1.0) for o2 in objs], fill=1.0)[o]
        period = table([o2.params.get("period", 3.0) for o2 in objs], fill=3.0)[o]
        duty = table([o2.params.get("duty", 0.5) for o2 in objs], fill=0.5)[o]
        floor = table([o2.params.get("floor", 3.2) for o2 in objs], fill=3.2)[o]
        shop = table([bool(o2.params.get("shop", False)) for o2 in objs], bool, False)[o]
        glass = table([o2.params.get("glass", (60, 66, 76)) for o2 in objs])[o]
        # facade coordinates: s along the facade, hy height above the road (metres)
        zx = cam.f * at / (xx[sel] - cam.xv)  # depth on a lateral plane X = at
        z = np.where(lateral, zx, at)
        s_ = np.where(lateral, zx, (xx[sel] - cam.xv) * at / cam.f)
        hy = cam.hc - (yy[sel] - cam.y0) * z / cam.f
        ok = np.isfinite(s_) & np.isfinite(hy) & (z > 0)
        s_, hy = np.where(ok, s_, 0), np.where(ok, hy, 0)
        fl = np.mod(hy, floor)
        win = ok & (np.mod(s_, period) < period * duty) & (fl > 0.9) & (fl < floor * 0.85) & (
            hy > floor)
        store = ok & shop & (hy > 0.3) & (hy < floor * 0.8) & (np.mod(s_, 7.0) < 4.5)
        w = win | store
        img[sel[w]] = 0.85 * glass[w] + 0.15 * img[sel[w]]
        img[sel] *= (1 + 0.06 * mf[sel])[:, None]
    sel = pixels(K_FENCE)
    if sel.size:
        o = obj[sel]
        period = table([o2.params.get("period", 0.2) for o2 in objs], fill=0.2)[o]
        at = table([o2.params.get("plane_at", 1.0) for o2 in objs], fill=1.0)[o]
        zx = np.nan_to_num(cam.f * at / (xx[sel] - cam.xv))
        img[sel[np.mod(zx, period) < period * 0.45]] *= 0.6
    sel = pixels(K_VEHICLE)
    if sel.size:
        o, u, v = local(sel)
        gfrac = table([o2.params.get("glass_frac", 0.3) for o2 in objs], fill=0.3)[o]
        glass = (v < gfrac) & (u > 0.12) & (u < 0.88)
        gi = sel[glass]
        img[gi] = (0.25 * img[gi] + np.float32([38, 44, 52]) * 0.75) * (
            1 + 0.25 * (1 - v[glass] / np.maximum(gfrac[glass], 1e-3)))[:, None]
        img[sel[(v > 0.6) & (v <= 0.9)]] *= 0.8
        img[sel[v > 0.9]] = 22
        img[sel[(v > 0.45) & (v < 0.56) & ((u < 0.14) | (u > 0.86))]] = (185, 28, 24)
    sel = pixels(K_PERSON)
    if sel.size:
        o, u, v = local(sel)
        for key, lo, hi in (("skin", 0.0, 0.15), ("shirt", 0.15, 0.5), ("legs", 0.5, 1.01)):
            col = table([o2.params.get(key, (0, 0, 0)) for o2 in objs])[o]
            part = (v >= lo) & (v < hi)
            img[sel[part]] = col[part]
        img[sel[v > 0.96]] = 25
    sel = pixels(K_SIGN)
    if sel.size:
        o, u, v = local(sel)
        rim = table([o2.params.get("rim", (240, 240, 240)) for o2 in objs])[o]
        edge = (u < 0.14) | (u > 0.86) | (v < 0.14) | (v > 0.86)
        img[sel[edge]] = rim[edge]
    sel = pixels(K_LIGHT)
    if sel.size:
        o, u, v = local(sel)
        lamp = table([o2.params.get("lamp", 0) for o2 in objs], np.int64)[o]
        on = (np.abs(u - 0.5) < 0.3) & (np.floor(v * 3) == lamp) & (
            np.abs(np.mod(v * 3, 1) - 0.5) < 0.3)
        colors = np.array([(255, 60, 40), (255, 190, 40), (60, 230, 120)], np.float32)
        img[sel[on]] = colors[np.clip(lamp[on], 0, 2)]
    sel = pixels(K_EGO)
    if sel.size:
        _, _, v = local(sel)
        img[sel] *= (1 + 0.6 * np.clip(1 - v * 2, 0, 1))[:, None]
    sel = pixels(K_BIKE)
    if sel.size:
        img[sel[mf[sel] > 0.3]] *= 0.7

    # car shadows on the ground
    if scene.shadows:
        sh = np.zeros((H, W), np.uint8)
        for poly in scene.shadows:
            cv2.fillPoly(sh, [np.clip(np.rint(poly), -4 * W, 4 * W).astype(np.int32)], 1)
        shade = sh.ravel() > 0
        for k in GROUND_KINDS:
            sel = pixels(k)
            img[sel[shade[sel]]] *= 0.55

    # camera: texture noise, exposure, tint, vignetting, blur, sensor noise
    amp = table([0.0 if o2.kind in (K_SKY, K_EGO) else 6.0 for o2 in objs])[obj]
    img += (amp * hf)[:, None]
    img *= scene.exposure * np.asarray(scene.tint, np.float32)
    r2 = ((xx - W / 2) / (W / 2)) ** 2 + ((yy - H / 2) / (H / 2)) ** 2
    img *= (1 - 0.09 * r2)[:, None]
    img = cv2.GaussianBlur(img.reshape(H, W, 3), (0, 0), sigmaX=0.7)
    img += rng.normal(0, 2.5, img.shape).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8), idx


# --------------------------------------------------------------------------------------- files
def scene_json(scene: Scene, split: str) -> dict:
    """The Cityscapes ``*_gtFine_polygons.json`` document of a scene.

    Keys as in the official files: ``imgHeight``, ``imgWidth``, ``objects`` (each ``label``,
    ``polygon`` as ``[[x, y], …]`` integers, and ``deleted: 1`` on deleted objects). For the
    ``test`` split only :data:`TEST_LABELS` are kept, as in the official test annotations.
    """
    objs = []
    for o in scene.objects:
        if split == "test" and o.label not in TEST_LABELS:
            continue
        d = {"label": o.label, "polygon": o.polygon.tolist()}
        if o.deleted:
            d["deleted"] = 1
        objs.append(d)
    return {"imgHeight": scene.camera.height, "imgWidth": scene.camera.width, "objects": objs}


@dataclass(frozen=True)
class FrameSpec:
    """One frame to generate (picklable job)."""

    root: str
    split: str
    city: str
    seq: int
    seed: int
    index: int
    width: int
    height: int
    raster: str

    @property
    def name(self) -> str:
        """``<city>_<seq:06d>_<frame:06d>``."""
        return f"{self.city}_{self.seq:06d}_{FRAME_NUMBER:06d}"

    @property
    def image_path(self) -> str:
        return os.path.join(self.root, "leftImg8bit", self.split, self.city,
                            f"{self.name}_leftImg8bit.png")

    @property
    def json_path(self) -> str:
        return os.path.join(self.root, "gtFine", self.split, self.city,
                            f"{self.name}_gtFine_polygons.json")

    def rng(self, stream: int) -> np.random.Generator:
        return np.random.default_rng(
            np.random.SeedSequence([self.seed, SPLIT_CODES[self.split], self.index, stream]))


def make_frame(spec: FrameSpec) -> tuple[Scene, np.ndarray, np.ndarray]:
    """Build and render one frame in memory: ``(scene, image, index)`` (:func:`render_image`)."""
    scene = build_scene(spec.rng(0), spec.width, spec.height)
    image, index = render_image(scene, spec.rng(1), spec.raster)
    return scene, image, index


def write_frame(spec: FrameSpec) -> dict[str, int]:
    """Generate one frame and write its image and JSON atomically; returns label → object count."""
    from segprep.io import atomic_write_bytes, write_png

    scene, image, _ = make_frame(spec)
    write_png(spec.image_path, image)
    doc = scene_json(scene, spec.split)
    atomic_write_bytes(spec.json_path, json.dumps(doc, separators=(",", ":")).encode())
    return dict(Counter(o["label"] for o in doc["objects"] if not o.get("deleted")))


@dataclass
class SynthSummary:
    """What :func:`generate_cityscapes` wrote.

    Attributes:
        root: the dataset root.
        frames: split → frame names (``<city>_<seq>_<frame>``) in order.
        width, height: image size (px).
        objects: label → number of (non-deleted) objects written in the JSONs.
        seconds: wall time.
    """

    root: str
    frames: dict[str, list[str]]
    width: int
    height: int
    objects: dict[str, int]
    seconds: float

    @property
    def num_frames(self) -> int:
        return sum(len(v) for v in self.frames.values())

    def line(self) -> str:
        counts = ", ".join(f"{s} {len(v)}" for s, v in self.frames.items())
        return (f"synthetic Cityscapes: {self.num_frames} frames ({counts}) at "
                f"{self.width}x{self.height}, {sum(self.objects.values())} objects of "
                f"{len(self.objects)} labels in {self.seconds:.1f} s -> {self.root}")


def frame_specs(out_root: str | os.PathLike, n_train: int = 24, n_val: int = 8, n_test: int = 8,
                width: int = 512, height: int = 256, seed: int = 0, raster: str = "official"
                ) -> list[FrameSpec]:
    """The frames :func:`generate_cityscapes` writes (cities round-robin per split)."""
    specs = []
    for split, n in (("train", n_train), ("val", n_val), ("test", n_test)):
        cities = CITIES[split]
        for i in range(n):
            specs.append(FrameSpec(str(out_root), split, cities[i % len(cities)],
                                   i // len(cities), seed, i, width, height, raster))
    return specs


def generate_cityscapes(out_root: str | os.PathLike, n_train: int = 24, n_val: int = 8,
                        n_test: int = 8, width: int = 512, height: int = 256, seed: int = 0,
                        raster: str = "official", jobs: int | None = 1) -> SynthSummary:
    """Write a synthetic Cityscapes-format dataset (images + gtFine polygon JSONs).

    Existing files of the same names are replaced (the output is a pure function of the
    arguments). A ``SYNTHETIC.txt`` at the root records the parameters.

    Args:
        out_root: dataset root to create (``leftImg8bit/`` and ``gtFine/`` go under it).
        n_train, n_val, n_test: frames per split (``>= 0``).
        width, height: image size in pixels (``>= 64 x 32``; Cityscapes is 2048x1024).
        seed: random seed; the same arguments give byte-identical files.
        raster: polygon rasteriser the image is rendered with (``official``, as ``gen-gt``'s
            default, or ``pillow``).
        jobs: worker processes (1: this process; None: all cores).

    Returns:
        a :class:`SynthSummary`.

    Raises:
        SegprepError: bad sizes or counts, or a frame that could not be written.
    """
    from segprep.io import atomic_write_text, run_batch

    t0 = time.perf_counter()
    if width < 64 or height < 32:
        raise SegprepError(out_root, f"image size {width}x{height} too small (min 64x32)")
    if min(n_train, n_val, n_test) < 0:
        raise SegprepError(out_root, "frame counts must be >= 0")
    specs = frame_specs(out_root, n_train, n_val, n_test, width, height, seed, raster)
    Path(out_root).mkdir(parents=True, exist_ok=True)
    counts: Counter = Counter()
    for outcome in run_batch(write_frame, specs, jobs=jobs, desc="synth", quiet=True,
                             unit="frame", prefer="processes"):
        if not outcome.ok:
            raise SegprepError(outcome.item.json_path, outcome.error or "generation failed")
        counts.update(outcome.value)
    frames: dict[str, list[str]] = {s: [] for s in ("train", "val", "test")}
    for sp in specs:
        frames[sp.split].append(sp.name)
    atomic_write_text(os.path.join(out_root, MARKER),
                      "Synthetic Cityscapes-format data generated by segprep.synth "
                      "(not real Cityscapes frames).\n"
                      f"seed={seed} width={width} height={height} train={n_train} val={n_val} "
                      f"test={n_test} raster={raster}\n")
    return SynthSummary(str(out_root), frames, width, height, dict(sorted(counts.items())),
                        time.perf_counter() - t0)
