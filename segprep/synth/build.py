"""Random street scenes (:func:`build_scene`): a street built in 3-D (road, sidewalks, facades,
standing objects, vehicles, people), projected with a pinhole camera and clipped to integer
polygons in Cityscapes drawing order. All randomness comes from the frame's generator, drawn in a
fixed order (a scene is a pure function of its seed)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from segprep.synth.scene import (
    K_BIKE,
    K_EGO,
    K_FACADE,
    K_FENCE,
    K_FOLIAGE,
    K_LIGHT,
    K_PERSON,
    K_PLAIN,
    K_PLATE,
    K_ROAD,
    K_SIDEWALK,
    K_SIGN,
    K_SKY,
    K_TERRAIN,
    K_VEHICLE,
    Camera,
    Scene,
    SceneObject,
)


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


@dataclass
class _Street:
    """The layout of one scene's street (metres; drawn by :func:`_street`): the road from ``rl`` to
    ``rr`` with ``lanes`` lanes of width ``lane_w``, sidewalks of widths ``sw_l`` / ``sw_r``,
    terrain verges (``verge_l`` / ``verge_r``), facades at ``fac_l`` / ``fac_r``, ground planes
    from ``zn`` to ``zf`` (= ``far_z``) and the painted ``lane_lines`` ``(X, dashed)``; ``W``,
    ``H`` the image size in pixels, ``sunny`` / ``sun_left`` the light."""

    W: int
    H: int
    sunny: bool
    sun_left: bool
    lanes: int
    lane_w: float
    rl: float
    rr: float
    sw_l: float
    sw_r: float
    far_z: float
    verge_l: bool
    verge_r: bool
    fac_l: float
    fac_r: float
    lane_lines: list[tuple[float, bool]]
    zn: float = 0.5
    zf: float = 0.0


def _street(rng: np.random.Generator, width: int, height: int) -> tuple[Camera, _Street]:
    """Draw the camera and the street layout (the first draws of a frame's generator)."""
    cam = Camera(width, height, f=width * rng.uniform(0.85, 1.05),
                 xv=width * rng.uniform(0.42, 0.58), y0=height * rng.uniform(0.38, 0.47))
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

    return cam, _Street(W, H, sunny, sun_left, lanes, lane_w, rl, rr, sw_l, sw_r, far_z, verge_l,
                        verge_r, fac_l, fac_r, lane_lines, zf=far_z)


def _add_sky(b: _Builder, rng: np.random.Generator, street: _Street) -> None:
    """1. Sky and skyline (far buildings at the horizon), now and then a distant tree line."""
    cam = b.cam
    W, H, sunny = street.W, street.H, street.sunny
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


def _add_ground(b: _Builder, rng: np.random.Generator, street: _Street) -> None:
    """2. Ground: verges, sidewalks, now and then a parking strip, the road (near ``Z = zn``,
    far ``Z = zf``)."""
    rl, rr, sw_l, sw_r = street.rl, street.rr, street.sw_l, street.sw_r
    verge_l, verge_r, fac_l, fac_r = street.verge_l, street.verge_r, street.fac_l, street.fac_r
    zn, zf = street.zn, street.zf

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


def _add_facades(b: _Builder, rng: np.random.Generator, street: _Street) -> None:
    """3. Facades: a continuous back row, then individual buildings along each side, and the
    street's far end (a frontal row of buildings)."""
    sunny, sun_left, fac_l, fac_r = street.sunny, street.sun_left, street.fac_l, street.fac_r
    zn, zf = street.zn, street.zf
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


def _add_walls(b: _Builder, rng: np.random.Generator, street: _Street) -> None:
    """4. Walls and fences along the sidewalks' outer edges; now and then a guard rail."""
    rl, rr, sw_l, sw_r = street.rl, street.rr, street.sw_l, street.sw_r
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


def _add_trees(b: _Builder, rng: np.random.Generator, street: _Street) -> None:
    """5a. Trees beside the road (standing objects: painted far to near)."""
    rl, rr, sw_l, sw_r = street.rl, street.rr, street.sw_l, street.sw_r
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


def _add_poles(b: _Builder, rng: np.random.Generator, street: _Street) -> None:
    """5b. Poles with traffic signs and traffic lights."""
    rl, rr = street.rl, street.rr
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


def _add_furniture(b: _Builder, rng: np.random.Generator, street: _Street) -> None:
    """5c. Static street furniture (bins, boxes) and now and then a dynamic object."""
    rl, rr, sw_l, sw_r = street.rl, street.rr, street.sw_l, street.sw_r
    for _ in range(int(rng.integers(0, 4))):
        side = _pick(rng, (-1, 1))
        x = (rl - rng.uniform(0.5, sw_l)) if side < 0 else (rr + rng.uniform(0.5, sw_r))
        z = rng.uniform(4, 50)
        w, h = rng.uniform(0.4, 1.2), rng.uniform(0.6, 1.4)
        lab = "dynamic" if rng.random() < 0.2 else "static"
        b.stand(z, b.make(lab, _frontal(x - w / 2, x + w / 2, 0, h, z),
                          _jitter(rng, _pick(rng, [(60, 90, 60), (90, 90, 95), (150, 120, 60)]),
                                  10), K_PLAIN))


def _add_vehicles(b: _Builder, rng: np.random.Generator, street: _Street) -> None:
    """5d. Vehicles on the lanes and parked at the kerb (with their shadows), and now and then
    a far cargroup."""
    cam = b.cam
    lanes, lane_w, rl, rr = street.lanes, street.lane_w, street.rl, street.rr
    far_z = street.far_z
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


def _add_people(b: _Builder, rng: np.random.Generator, street: _Street) -> None:
    """5e. Persons on the sidewalks, cyclists at the road edge, a rare motorcycle."""
    rl, rr, sw_l, sw_r = street.rl, street.rr, street.sw_l, street.sw_r
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


def _finish_objects(b: _Builder, rng: np.random.Generator, street: _Street) -> list[SceneObject]:
    """The objects in drawing order: the standing objects far to near, then 6. the void
    objects at the bottom (ego vehicle hood, rectification border corners) and 7. now and then
    a deleted object (annotators' leftovers; never drawn) among the last ones."""
    W, H, rl, rr = street.W, street.H, street.rl, street.rr
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
    return objects


def build_scene(rng: np.random.Generator, width: int, height: int) -> Scene:
    """Draw one random street scene.

    Args:
        rng: the frame's random generator (all randomness comes from it).
        width, height: image size in pixels.

    Returns:
        a :class:`Scene` whose objects are in Cityscapes drawing order.
    """
    cam, street = _street(rng, width, height)
    b = _Builder(cam, rng)
    for add in (_add_sky, _add_ground, _add_facades, _add_walls, _add_trees, _add_poles,
                _add_furniture, _add_vehicles, _add_people):
        add(b, rng, street)
    objects = _finish_objects(b, rng, street)
    return Scene(cam, objects, b.shadows, street.lane_lines, (street.rl, street.rr),
                 exposure=rng.uniform(0.8, 1.15) * (1.08 if street.sunny else 0.92),
                 tint=tuple(rng.normal(1.0, 0.04, 3).tolist()), sunny=street.sunny)
