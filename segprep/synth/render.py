"""The camera image of a synthetic scene (:func:`render_image`): the scene's polygons rasterised
with the rule ``gen-gt`` uses, each appearance kind textured on its own pixels, then shadows and
camera effects (exposure, tint, vignetting, blur, sensor noise)."""

from __future__ import annotations

import numpy as np

from segprep.synth import scene as appearance
from segprep.synth.scene import GROUND_KINDS, Scene


def _noise_field(rng: np.random.Generator, height: int, width: int, cell: int) -> np.ndarray:
    """Smooth noise, ``(H, W)`` float32 roughly in [-1, 1], varying over ``cell`` pixels."""
    import cv2

    gh, gw = max(2, height // cell + 2), max(2, width // cell + 2)
    g = rng.standard_normal((gh, gw)).astype(np.float32)
    return cv2.resize(g, (width, height), interpolation=cv2.INTER_CUBIC)



class _Canvas:
    """A frame being rendered, as flat pixel arrays (``P = H * W`` pixels in row-major order).

    Attributes:
        scene, cam, objs: the scene, its camera and its objects (``n`` of them).
        obj: ``(P,)`` int object index drawn at each pixel (``n``: the background).
        img: ``(P, 3)`` float32 RGB being shaded (each object's color, shaded by a random linear
            gradient per object).
        xx, yy: ``(P,)`` float32 pixel columns and rows.
        lf, mf, hf: ``(P,)`` float32 noise: smooth over 24 px, over 6 px, and white.
    """

    def __init__(self, scene: Scene, obj: np.ndarray, rng: np.random.Generator) -> None:
        cam = self.cam = scene.camera
        H, W = cam.height, cam.width
        objs = self.objs = scene.objects
        self.scene, self.n, self.obj = scene, len(objs), obj
        kinds = self.table([o.kind for o in objs], np.int32, appearance.K_PLAIN)
        pix_kind = kinds[obj]
        self.order = np.argsort(pix_kind, kind="stable")
        self.bounds = np.concatenate([[0], np.cumsum(np.bincount(pix_kind, minlength=16))])
        img = self.img = self.table([o.color for o in objs])[obj]  # (P, 3) float32
        yy, xx = np.divmod(np.arange(H * W, dtype=np.int64), W)
        self.yy, self.xx = yy.astype(np.float32), xx.astype(np.float32)
        self.bbox = self.table([o.bbox for o in objs], fill=1.0)  # (n + 1, 4)
        grad = rng.normal(0, 0.08, size=(self.n + 1, 2)).astype(np.float32)
        self.lf = _noise_field(rng, H, W, 24).ravel()
        self.mf = _noise_field(rng, H, W, 6).ravel()
        self.hf = rng.standard_normal(H * W).astype(np.float32)
        # per-object shading: a random linear gradient
        allpix = np.arange(H * W)
        o, u, v = self.local(allpix)
        img *= (1.0 + grad[o, 0] * (u - 0.5) + grad[o, 1] * (v - 0.5))[:, None]

    def table(self, values, dtype=np.float32, fill=0) -> np.ndarray:
        """Per-object values as an ``(n + 1, ...)`` table (row n: background)."""
        n = self.n
        arr = np.asarray(list(values), dtype)
        pad = np.full((1,) + arr.shape[1:], fill, dtype)
        return np.concatenate([arr.reshape((n,) + arr.shape[1:]), pad])

    def pixels(self, k: int) -> np.ndarray:
        """Flat indices of the pixels of appearance kind ``k``."""
        return self.order[self.bounds[k]:self.bounds[k + 1]]

    def local(self, sel: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Object ids and position ``(u, v)`` in [0, 1] inside each object's unclipped bbox."""
        obj, bbox, xx, yy = self.obj, self.bbox, self.xx, self.yy
        o = obj[sel]
        b = bbox[o]
        u = (xx[sel] - b[:, 0]) / np.maximum(b[:, 2] - b[:, 0], 1.0)
        v = (yy[sel] - b[:, 1]) / np.maximum(b[:, 3] - b[:, 1], 1.0)
        return o, u, v

    def ground(self, sel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Ground-plane coordinates ``(X, Z)`` in metres of pixels below the horizon."""
        cam, xx, yy = self.cam, self.xx, self.yy
        gz = cam.f * cam.hc / np.maximum(yy[sel] - cam.y0, 0.5)
        return (xx[sel] - cam.xv) * gz / cam.f, gz


def _shade_sky_and_ground(canvas: _Canvas) -> None:
    """Sky (clouds), road (lane markings), sidewalk (tiles, curb), terrain, foliage."""
    cam, objs, obj, img = canvas.cam, canvas.objs, canvas.obj, canvas.img
    yy, lf, mf, table = canvas.yy, canvas.lf, canvas.mf, canvas.table
    pixels, ground = canvas.pixels, canvas.ground
    sel = pixels(appearance.K_SKY)
    if sel.size:
        t = np.clip(yy[sel] / max(cam.y0, 1.0), 0, 1)[:, None]
        c = img[sel] * (0.82 + 0.3 * t)
        clouds = np.clip(lf[sel] * 1.4 - 0.6 if canvas.scene.sunny else lf[sel] * 0.5 + 0.3, 0, 1)
        img[sel] = c * (1 - 0.6 * clouds[:, None]) + 235 * 0.6 * clouds[:, None]
    sel = pixels(appearance.K_ROAD)
    if sel.size:
        gx, gz = ground(sel)
        img[sel] *= (1 + 0.07 * lf[sel] + 0.05 * mf[sel])[:, None]
        paint = np.zeros(sel.size, bool)
        for x_line, dashed in canvas.scene.lane_lines:
            near = np.abs(gx - x_line) < 0.08
            if dashed:
                near &= np.mod(gz, 9.0) < 3.0
            paint |= near
        paint &= gz < 150
        img[sel[paint]] = 0.35 * img[sel[paint]] + 0.65 * np.float32(225)
    sel = pixels(appearance.K_SIDEWALK)
    if sel.size:
        gx, gz = ground(sel)
        tiles = (np.mod(gx, 0.6) < 0.05) | (np.mod(gz, 0.6) < 0.05)
        img[sel[tiles]] *= 0.86
        curb = table([o.params.get("curb", np.nan) for o in objs], fill=np.nan)[obj[sel]]
        img[sel[np.abs(gx - curb) < 0.2]] *= 1.18
        img[sel] *= (1 + 0.05 * mf[sel])[:, None]
    sel = pixels(appearance.K_TERRAIN)
    if sel.size:
        img[sel] *= (1 + 0.18 * lf[sel] + 0.12 * mf[sel])[:, None]
    sel = pixels(appearance.K_FOLIAGE)
    if sel.size:
        blot = np.clip(1 + 0.35 * mf[sel] + 0.2 * lf[sel], 0.3, 1.8)
        blot[mf[sel] > 0.9] *= 0.55
        img[sel] *= blot[:, None]


def _shade_walls(canvas: _Canvas) -> None:
    """Facade windows and shop fronts (in facade coordinates), fence slats."""
    cam, objs, obj, img = canvas.cam, canvas.objs, canvas.obj, canvas.img
    xx, yy, mf, table = canvas.xx, canvas.yy, canvas.mf, canvas.table
    pixels = canvas.pixels
    sel = pixels(appearance.K_FACADE)
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
    sel = pixels(appearance.K_FENCE)
    if sel.size:
        o = obj[sel]
        period = table([o2.params.get("period", 0.2) for o2 in objs], fill=0.2)[o]
        at = table([o2.params.get("plane_at", 1.0) for o2 in objs], fill=1.0)[o]
        zx = np.nan_to_num(cam.f * at / (xx[sel] - cam.xv))
        img[sel[np.mod(zx, period) < period * 0.45]] *= 0.6


def _shade_objects(canvas: _Canvas) -> None:
    """Vehicles (glass, tyres, tail lights), persons (skin, shirt, legs), sign rims, lit
    traffic lamps, the ego vehicle's hood, bicycles."""
    objs, img, mf, table = canvas.objs, canvas.img, canvas.mf, canvas.table
    pixels, local = canvas.pixels, canvas.local
    sel = pixels(appearance.K_VEHICLE)
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
    sel = pixels(appearance.K_PERSON)
    if sel.size:
        o, u, v = local(sel)
        for key, lo, hi in (("skin", 0.0, 0.15), ("shirt", 0.15, 0.5), ("legs", 0.5, 1.01)):
            col = table([o2.params.get(key, (0, 0, 0)) for o2 in objs])[o]
            part = (v >= lo) & (v < hi)
            img[sel[part]] = col[part]
        img[sel[v > 0.96]] = 25
    sel = pixels(appearance.K_SIGN)
    if sel.size:
        o, u, v = local(sel)
        rim = table([o2.params.get("rim", (240, 240, 240)) for o2 in objs])[o]
        edge = (u < 0.14) | (u > 0.86) | (v < 0.14) | (v > 0.86)
        img[sel[edge]] = rim[edge]
    sel = pixels(appearance.K_LIGHT)
    if sel.size:
        o, u, v = local(sel)
        lamp = table([o2.params.get("lamp", 0) for o2 in objs], np.int64)[o]
        on = (np.abs(u - 0.5) < 0.3) & (np.floor(v * 3) == lamp) & (
            np.abs(np.mod(v * 3, 1) - 0.5) < 0.3)
        colors = np.array([(255, 60, 40), (255, 190, 40), (60, 230, 120)], np.float32)
        img[sel[on]] = colors[np.clip(lamp[on], 0, 2)]
    sel = pixels(appearance.K_EGO)
    if sel.size:
        _, _, v = local(sel)
        img[sel] *= (1 + 0.6 * np.clip(1 - v * 2, 0, 1))[:, None]
    sel = pixels(appearance.K_BIKE)
    if sel.size:
        img[sel[mf[sel] > 0.3]] *= 0.7


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
    c = _Canvas(scene, obj, rng)
    for step in (_shade_sky_and_ground, _shade_walls, _shade_objects):
        step(c)
    img, xx, yy, pixels = c.img, c.xx, c.yy, c.pixels

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
    amp = c.table([0.0 if o2.kind in (appearance.K_SKY, appearance.K_EGO) else 6.0 for o2 in objs])[obj]
    img += (amp * c.hf)[:, None]
    img *= scene.exposure * np.asarray(scene.tint, np.float32)
    r2 = ((xx - W / 2) / (W / 2)) ** 2 + ((yy - H / 2) / (H / 2)) ** 2
    img *= (1 - 0.09 * r2)[:, None]
    img = cv2.GaussianBlur(img.reshape(H, W, 3), (0, 0), sigmaX=0.7)
    img += rng.normal(0, 2.5, img.shape).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8), idx

