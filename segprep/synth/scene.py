"""The synthetic scene's data model: the pinhole :class:`Camera`, :class:`SceneObject` (a labelled
integer polygon and how it looks) and :class:`Scene`; the appearance kinds ``K_*``."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

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
