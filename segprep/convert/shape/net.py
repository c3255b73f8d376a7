"""A learned shared-color rule that looks at each region: a small convolutional network over a
thumbnail of the region (its outline and, by channel set, what surrounds it) together with the
region's :func:`~segprep.convert.shape.features.model_inputs`, evaluated with numpy. The shipped networks
(person / sign, pole / polegroup) read the ``shape`` channels only (:data:`CHANNEL_SETS`).

Thumbnails (:func:`region_thumbnails`): for region ``k`` a square window centred on its bounding
box, ``THUMB_MARGIN`` times its longer side (plus 4 px), is sampled on a ``2S × 2S`` grid (nearest
pixel) and each ``2 × 2`` cell counts the samples of each :data:`THUMB_CHANNELS` entry: the region
itself, other regions of the same color, the :data:`~segprep.convert.shape.features.NEIGHBOUR_GROUPS` of
every other pixel, and outside the frame. The window scales with the region, so the thumbnail does
not depend on the frame's pixel size.

Network (:class:`RegionNet`, weights trained by ``scripts/train_shape_rule.py fit`` with
PyTorch and shipped as ``segprep/convert/shape_net.npz``): four 3×3 convolutions (ReLU, 2×2 max
pooling after the second, third and fourth) → a 128-unit layer, concatenated with a 64-unit layer
over the standardised region inputs → 64 units → class scores. A region's label is the argmax of
the mean softmax over the thumbnail and its mirror image (with the mirrored inputs).
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from segprep.convert.shape.features import (
    MODEL_INPUTS,
    NEIGHBOUR_GROUPS,
    RegionFeatures,
    model_inputs,
)
from segprep.convert.shape.rules import hand_rule, large_regions_to_fallback
from segprep.errors import SegprepError
from segprep.io.batch import blas_on_one_thread

THUMB_SIZE = 24
"""Side of a thumbnail in cells (:func:`region_thumbnails`)."""

THUMB_MARGIN = 1.4
"""Window side over the longer side of the region's bounding box."""

THUMB_CHANNELS = ("region", "same_color", *(f"near_{g}" for g in NEIGHBOUR_GROUPS), "outside")
"""What each thumbnail channel counts (see the module docstring)."""

CHANNEL_SETS = {"all": THUMB_CHANNELS, "shape": ("region", "same_color", "outside")}
"""Named subsets of :data:`THUMB_CHANNELS` a network may read (``shape``: the region's outline and
its neighbours of the same color, no other classes: the classes around a region differ between
datasets more than shapes do — README, *Shared colors by shape*)."""

SAME_COLOR = len(NEIGHBOUR_GROUPS)
"""A sample's class for the shared color's own pixels in :func:`region_thumbnails` (after the
neighbour groups; then the region itself, outside the frame)."""

MIN_INPUT_STD = 1e-4
"""A model input whose standard deviation over the training regions is below this is ignored by
a :class:`RegionNet` (its standardised value is 0): it never varied there, so the network learnt
nothing from it, and dividing by its tiny deviation would blow any other value up (a shared-color
region of the Cityscapes training frames never touches the frame's edge; on BDD100K frames a
pedestrian touching the bottom edge got a standardised ``touch_bottom`` of 10⁶ and the label
sign)."""

SHAPE_NET = "shape_net.npz"
"""The network rules shipped in ``segprep/convert/``, beside :mod:`segprep.convert.colors`
(written by ``scripts/train_shape_rule.py fit``)."""

# mirror image of the model inputs: box centre x → 1 - x, left ↔ right frame contact
_CENTER = MODEL_INPUTS.index("center_x")
_LEFT, _RIGHT = MODEL_INPUTS.index("touch_left"), MODEL_INPUTS.index("touch_right")

# thumbnail class of a sample → channel: groups 0..G-1 → 2.., same color → 1, region → 0, outside
# and -1 (a neighbour group not counted) → len(THUMB_CHANNELS)
_CHANNEL_OF = np.array([2 + i for i in range(len(NEIGHBOUR_GROUPS))]
                       + [1, 0, len(THUMB_CHANNELS) - 1, len(THUMB_CHANNELS)], np.int64)


def region_thumbnails(labels: np.ndarray, f: RegionFeatures, values: np.ndarray,
                      color_mask: np.ndarray, value_groups: np.ndarray, size: int = THUMB_SIZE,
                      channels: tuple[str, ...] = THUMB_CHANNELS) -> np.ndarray:
    """Context thumbnails of the regions of :func:`~segprep.convert.shape.features.region_features`.

    Only the sampled pixels are looked at (``N × 2S × 2S``), so a frame costs in proportion to
    its regions, not its size.

    Args:
        labels: ``(H, W)`` int32 region labels (0 = outside, ``k + 1`` = region ``k``).
        f: the ``N`` regions' features (their bounding boxes are used).
        values: ``(H, W)`` uint8 label ids of the frame.
        color_mask: ``(H, W)`` bool, the pixels of the shared color (``same_color`` unless in
            region ``k`` itself).
        value_groups: ``(256,)`` uint8 id → index in ``NEIGHBOUR_GROUPS``
            (:func:`~segprep.convert.shape.features.neighbour_groups`).
        size: ``S``, cells per side.
        channels: the :data:`THUMB_CHANNELS` to count, in output order (a network reads a subset,
            :data:`CHANNEL_SETS`).

    Returns:
        ``(N, len(channels), S, S)`` uint8: per cell the number (0–4) of its 4 samples in each
        channel.

    Raises:
        ValueError: a channel is not in :data:`THUMB_CHANNELS`.
    """
    n, c = len(f), len(channels)
    out_of = np.full(len(THUMB_CHANNELS) + 1, c, np.int64)  # THUMB_CHANNELS index → output
    for i, name in enumerate(channels):
        if name not in THUMB_CHANNELS:
            raise ValueError(f"unknown thumbnail channel {name!r}")
        out_of[THUMB_CHANNELS.index(name)] = i
    if n == 0:
        return np.zeros((0, c, size, size), np.uint8)
    H, W = labels.shape
    side = (np.maximum(f.w, f.h) * THUMB_MARGIN).astype(np.int64) + 4
    grid = (np.arange(2 * size) + 0.5) / (2 * size)
    offs = grid[None, :] * side[:, None] - side[:, None] / 2.0  # (N, 2S)
    ys = np.floor((f.y + f.h / 2.0)[:, None] + offs).astype(np.int64)
    xs = np.floor((f.x + f.w / 2.0)[:, None] + offs).astype(np.int64)
    inside = ((ys >= 0) & (ys < H))[:, :, None] & ((xs >= 0) & (xs < W))[:, None, :]
    yc, xc = np.clip(ys, 0, H - 1)[:, :, None], np.clip(xs, 0, W - 1)[:, None, :]
    if any(name.startswith("near_") for name in channels):
        cls = value_groups[values[yc, xc]].astype(np.int64)  # (N, 2S, 2S)
    else:  # no neighbour group is counted: skip their lookup
        cls = np.full(inside.shape, -1, np.int64)
    cls[color_mask[yc, xc]] = SAME_COLOR
    cls[labels[yc, xc] == np.arange(1, n + 1)[:, None, None]] = SAME_COLOR + 1
    cls[~inside] = SAME_COLOR + 2
    ch = out_of[_CHANNEL_OF[cls]]  # sample → output channel, c = not counted
    cell = (np.arange(2 * size) // 2)
    flat = ((np.arange(n)[:, None, None] * (c + 1) + ch) * size + cell[None, :, None]) * size \
        + cell[None, None, :]
    counts = np.bincount(flat.ravel(), minlength=n * (c + 1) * size * size)
    return counts.reshape(n, c + 1, size, size)[:, :c].astype(np.uint8)


def standardise(x: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """``(N, F)`` float32 ``(x - mean) / std``, 0 for the inputs whose ``std`` is below
    :data:`MIN_INPUT_STD` (constant in training: ignored)."""
    z = (x - mean) / np.where(std < MIN_INPUT_STD, np.inf, std)
    return z.astype(np.float32)


def mirror_inputs(x: np.ndarray) -> np.ndarray:
    """``model_inputs`` of the mirror image of the regions (``(N, F)`` → ``(N, F)``)."""
    x = x.copy()
    x[:, _CENTER] = 1.0 - x[:, _CENTER]
    x[:, [_LEFT, _RIGHT]] = x[:, [_RIGHT, _LEFT]]
    return x


def _conv3(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    """3×3 convolution, zero padding 1 (PyTorch ``Conv2d`` semantics) on channels-last data:
    ``(N, H, W, C)`` float32, ``w`` ``(O, C, 3, 3)`` → ``(N, H, W, O)`` (one matrix product over
    the ``(3, 3, C)`` windows, channels innermost so that gathering them reads contiguous
    memory)."""
    n, h, wd, c = x.shape
    xp = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    win = np.lib.stride_tricks.sliding_window_view(xp, (3, 3), axis=(1, 2))  # (N, H, W, C, 3, 3)
    cols = win.transpose(0, 1, 2, 4, 5, 3).reshape(n * h * wd, 9 * c)
    out = cols @ w.transpose(2, 3, 1, 0).reshape(9 * c, -1) + b
    return out.reshape(n, h, wd, -1)


def _pool2(x: np.ndarray) -> np.ndarray:
    """2×2 max pooling of ``(N, H, W, C)``."""
    n, h, w, c = x.shape
    return x.reshape(n, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))


@dataclass(frozen=True)
class RegionNet:
    """The network of one shared color (see the module docstring), numpy only.

    Attributes:
        labels: the label names of the color, in class order.
        weights: PyTorch state-dict names → float32 arrays (``conv.0``, ``conv.2``, ``conv.5``,
            ``conv.8`` convolutions, ``conv.12`` the 128-unit layer, ``mlp.0`` the input layer,
            ``head.0`` and ``head.3``; ``.weight`` / ``.bias``).
        mean, std: ``(F,)`` standardisation of :func:`model_inputs` (:func:`standardise`: an
            input with ``std`` below :data:`MIN_INPUT_STD` is ignored).
        channels: the :data:`THUMB_CHANNELS` it reads, in its input order.
        max_rel_area: the largest region of its training data (fraction of the frame); larger
            regions get the label of ``fallback``.
        fallback: the hand-written rule of the same labels, or None.
    """

    labels: tuple[str, ...]
    weights: dict[str, np.ndarray] = field(repr=False)
    mean: np.ndarray = field(repr=False)
    std: np.ndarray = field(repr=False)
    channels: tuple[str, ...] = THUMB_CHANNELS
    max_rel_area: float = np.inf
    fallback: Any = None
    contours: bool = True
    neighbours: bool = True
    thumbnails: bool = True

    def _scores(self, t: np.ndarray, x: np.ndarray) -> np.ndarray:
        p = self.weights

        def lin(h: np.ndarray, k: str) -> np.ndarray:
            return h @ p[k + ".weight"].T + p[k + ".bias"]

        h = np.ascontiguousarray(t.transpose(0, 2, 3, 1))  # channels last
        h = np.maximum(_conv3(h, p["conv.0.weight"], p["conv.0.bias"]), 0)
        h = _pool2(np.maximum(_conv3(h, p["conv.2.weight"], p["conv.2.bias"]), 0))
        h = _pool2(np.maximum(_conv3(h, p["conv.5.weight"], p["conv.5.bias"]), 0))
        h = _pool2(np.maximum(_conv3(h, p["conv.8.weight"], p["conv.8.bias"]), 0))
        h = h.transpose(0, 3, 1, 2).reshape(len(h), -1)  # PyTorch's (C, H, W) flattening
        h = np.maximum(lin(h, "conv.12"), 0)
        g = np.maximum(lin(standardise(x, self.mean, self.std), "mlp.0"), 0)
        h = np.maximum(lin(np.concatenate([h, g], axis=1), "head.0"), 0)
        s = lin(h, "head.3").astype(np.float64)
        e = np.exp(s - s.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    def proba(self, f: RegionFeatures, thumbs: np.ndarray,
              thumb_channels: tuple[str, ...] = THUMB_CHANNELS) -> np.ndarray:
        """``(N, K)`` class probabilities: the mean over the regions and their mirror images.

        Args:
            f: the regions (with :attr:`RegionFeatures.neighbours`).
            thumbs: their :func:`region_thumbnails` of ``thumb_channels`` (which hold
                :attr:`channels`).
        """
        if len(f) == 0:
            return np.zeros((0, len(self.labels)))
        x = model_inputs(f)
        t = thumbs[:, [thumb_channels.index(c) for c in self.channels]].astype(np.float32) / 4.0
        n = len(x)
        with blas_on_one_thread():  # one pass over both
            both = self._scores(np.concatenate([t, t[..., ::-1]]),
                                np.concatenate([x, mirror_inputs(x)]))
        return (both[:n] + both[n:]) / 2.0

    def classify(self, f: RegionFeatures, thumbs: np.ndarray,
                 thumb_channels: tuple[str, ...] = THUMB_CHANNELS) -> np.ndarray:
        """``(N,)`` int: index into :attr:`labels` of each region."""
        return large_regions_to_fallback(
            self.proba(f, thumbs, thumb_channels).argmax(axis=1).astype(np.int64), f,
            self.max_rel_area, self.fallback)


@dataclass(frozen=True)
class AveragedRule:
    """Several learned rules of one color voting together: the label of highest mean class
    probability over ``members`` (a :class:`RegionNet` and a
    :class:`~segprep.convert.shape.rules.ForestRule` in the shipped model). Regions larger than the
    first member's ``max_rel_area`` get its ``fallback``'s label."""

    members: tuple
    contours: bool = True
    neighbours: bool = True
    thumbnails: bool = True

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(self.members[0].labels)

    @property
    def max_rel_area(self) -> float:
        return float(self.members[0].max_rel_area)

    @property
    def fallback(self) -> Any:
        return self.members[0].fallback

    @property
    def channels(self) -> tuple[str, ...]:
        """The :data:`THUMB_CHANNELS` its members read, in that order."""
        read = {c for m in self.members for c in getattr(m, "channels", ())}
        return tuple(c for c in THUMB_CHANNELS if c in read)

    def proba(self, f: RegionFeatures, thumbs: np.ndarray,
              thumb_channels: tuple[str, ...] = THUMB_CHANNELS) -> np.ndarray:
        """``(N, K)`` mean class probabilities of the members (``thumbs``: see
        :meth:`RegionNet.proba`)."""
        ps = [m.proba(f, thumbs, thumb_channels) if getattr(m, "thumbnails", False)
              else m.proba(f) for m in self.members]
        return np.mean(ps, axis=0)

    def classify(self, f: RegionFeatures, thumbs: np.ndarray,
                 thumb_channels: tuple[str, ...] = THUMB_CHANNELS) -> np.ndarray:
        """``(N,)`` int: index into :attr:`labels` of each region."""
        return large_regions_to_fallback(
            self.proba(f, thumbs, thumb_channels).argmax(axis=1).astype(np.int64), f,
            self.max_rel_area, self.fallback)


def combined_rules(nets: dict[str, RegionNet], forests: dict[str, Any]) -> dict[str, Any]:
    """The learned rules by pair name: a pair with a network and a forest → their
    :class:`AveragedRule` (the shipped person / sign and pole / polegroup rules), otherwise the
    one there is (networks first)."""
    out: dict[str, Any] = {pair: AveragedRule((net, forests[pair])) if pair in forests else net
                           for pair, net in nets.items()}
    out.update({pair: r for pair, r in forests.items() if pair not in nets})
    return out


@functools.lru_cache(maxsize=4)
def load_shape_net(path: str | None = None) -> dict[str, RegionNet]:
    """The network rules of a model file (default: the shipped :data:`SHAPE_NET`), by pair name.

    The file is an ``.npz``: ``meta`` (a JSON string: ``rules`` → per pair ``labels``,
    ``max_rel_area``, ``inputs``, ``thumbnails`` (segprep's :data:`THUMB_CHANNELS` when trained)
    and ``channels`` (those the network reads); plus what it was trained on) and per pair
    ``{pair}/{name}`` arrays (``mean``, ``std`` and the state-dict entries of :class:`RegionNet`).

    Raises:
        SegprepError: the file is missing or not a network of segprep's inputs.
    """
    p = Path(path) if path else Path(__file__).parent.with_name(SHAPE_NET)
    try:
        with np.load(p, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            arrays = {k: z[k] for k in z.files if k != "meta"}
        out = {}
        for pair, r in meta["rules"].items():
            channels = tuple(r.get("channels", THUMB_CHANNELS))
            if list(r["inputs"]) != list(MODEL_INPUTS) or list(r["thumbnails"]) != list(
                    THUMB_CHANNELS) or not set(channels) <= set(THUMB_CHANNELS):
                raise ValueError("its inputs differ from segprep's")
            pre = pair + "/"
            w = {k[len(pre):]: v.astype(np.float32) for k, v in arrays.items()
                 if k.startswith(pre) and k[len(pre):] not in ("mean", "std")}
            labels = tuple(r["labels"])
            out[pair] = RegionNet(labels, w, arrays[pre + "mean"], arrays[pre + "std"], channels,
                                  float(r.get("max_rel_area", np.inf)), hand_rule(labels))
        return out
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SegprepError(p, f"not a readable shape network ({exc})") from None
