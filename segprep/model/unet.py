"""The plain U-Net and the building blocks every segprep model shares.

* :class:`UNet`: the U-Net of Ronneberger et al. 2015 ("U-Net: Convolutional Networks for
  Biomedical Image Segmentation", MICCAI) with padded 3×3 convolutions (so the output has the
  input's size), BatchNorm after every convolution, 2×2 max-pooling down and 2×2 transposed
  convolutions ("up-convolutions") up, configurable depth (number of poolings; 4 in the paper) and
  base width (64 in the paper).
* :class:`UNetDecoder`: the U-Net decoder over a pretrained encoder's feature pyramid (used by
  :mod:`segprep.model.efficientnet_lite` and :mod:`segprep.model.timm_unet`).

Every model accepts any input size: the input is zero-padded on the bottom/right to a multiple of
the network's stride and the logits are cropped back, as segmentation_models_pytorch does since
its PR #1029 (:func:`pad_to_stride`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def pad_to_stride(x: torch.Tensor, stride: int) -> tuple[torch.Tensor, int, int]:
    """Zero-pad ``x`` (N, C, H, W) on the bottom/right so H and W are multiples of ``stride``."""
    h, w = x.shape[-2], x.shape[-1]
    ph = (stride - h % stride) % stride
    pw = (stride - w % stride) % stride
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph))
    return x, h, w


class DoubleConv(nn.Sequential):
    """Two (3×3 padded conv → BatchNorm → ReLU) layers, the U-Net's basic block."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


def init_weights(module: nn.Module) -> None:
    """Kaiming-normal convolutions (fan-out, ReLU), zero biases, unit BatchNorm: torchvision's
    initialisation of its segmentation heads."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.SyncBatchNorm)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


class UNet(nn.Module):
    """U-Net (Ronneberger et al. 2015) with padded convolutions and BatchNorm.

    Args:
        num_classes: K, the number of output channels (logits).
        in_channels: input channels (3 for RGB).
        base_channels: width of the first level; level ``i`` has ``base_channels * 2**i``
            channels (64 → 1024 in the paper with depth 4).
        depth: number of 2×2 poolings (4 in the paper); the stride is ``2 ** depth``.

    Forward:
        ``(N, in_channels, H, W)`` float32, any H and W → ``(N, K, H, W)`` float32 logits.
    """

    def __init__(self, num_classes: int, in_channels: int = 3, base_channels: int = 32,
                 depth: int = 4):
        super().__init__()
        if depth < 1:
            raise ValueError(f"depth must be >= 1, not {depth}")
        if base_channels < 1 or num_classes < 1:
            raise ValueError("base_channels and num_classes must be >= 1")
        widths = [base_channels * 2 ** i for i in range(depth + 1)]
        self.stride = 2 ** depth
        self.inc = DoubleConv(in_channels, widths[0])
        self.pool = nn.MaxPool2d(2)
        self.down = nn.ModuleList(DoubleConv(widths[i], widths[i + 1]) for i in range(depth))
        self.up = nn.ModuleList(nn.ConvTranspose2d(widths[i + 1], widths[i], 2, stride=2)
                                for i in reversed(range(depth)))
        self.up_conv = nn.ModuleList(DoubleConv(2 * widths[i], widths[i])
                                     for i in reversed(range(depth)))
        self.head = nn.Conv2d(widths[0], num_classes, 1)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, h, w = pad_to_stride(x, self.stride)
        skips = [self.inc(x)]
        for block in self.down:
            skips.append(block(self.pool(skips[-1])))
        y = skips.pop()
        for up, conv in zip(self.up, self.up_conv):
            y = conv(torch.cat([skips.pop(), up(y)], dim=1))
        return self.head(y)[..., :h, :w]


CONTEXTS = ("pool",)
"""Context branches :class:`UNetDecoder` can add on the deepest feature map (``context=``)."""


class GlobalContext(nn.Module):
    """Image-level context for the deepest feature map (ParseNet, Liu et al. 2015; the
    image-pooling branch of DeepLabv3's ASPP): the map's spatial mean, a 1×1 convolution and a
    ReLU, broadcast back over the map and concatenated to it. No BatchNorm on the pooled
    vector (one value per image and channel: batch statistics of a few images are noise).
    Exports to ONNX as ``ReduceMean`` (any input size).

    Forward: ``(N, C, h, w)`` → ``(N, C + width, h, w)``.
    """

    def __init__(self, channels: int, width: int):
        super().__init__()
        self.proj = nn.Conv2d(channels, width, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g = F.relu(self.proj(x.mean(dim=(2, 3), keepdim=True)))
        return torch.cat([x, g.expand(-1, -1, x.shape[-2], x.shape[-1])], dim=1)


class UNetDecoder(nn.Module):
    """A U-Net decoder over an encoder's feature pyramid (deepest last).

    From the deepest map up, each stage upsamples ×2 (bilinear) to the next shallower feature
    map, concatenates it and applies a :class:`DoubleConv`; a 1×1 head gives the logits at the
    shallowest map's resolution, which are upsampled (bilinear) to the input's size. Stage widths
    follow segmentation_models_pytorch's ``decoder_channels`` pattern, halving per level:
    ``min(256, base_channels * r / 2)`` at reduction ``r`` (base 16: 128, 64, 32, 16 channels
    at reductions 16, 8, 4, 2).

    Args:
        channels: each feature map's channels, shallowest first.
        reductions: each map's stride relative to the input (e.g. 2, 4, 8, 16, 32).
        num_classes: K.
        base_channels: sets the stage widths (above).
        context: None, or ``"pool"`` to concatenate a :class:`GlobalContext` branch (as wide as
            the first stage) to the deepest map before the first stage.

    Forward:
        ``features`` (a list of ``(N, C_i, H / r_i, W / r_i)`` tensors, shallowest first) and the
        output size ``(H, W)`` → ``(N, K, H, W)`` logits.
    """

    def __init__(self, channels: list[int], reductions: list[int], num_classes: int,
                 base_channels: int = 16, context: str | None = None):
        super().__init__()
        if len(channels) != len(reductions) or len(channels) < 2:
            raise ValueError("the decoder needs two or more feature maps")
        if context is not None and context not in CONTEXTS:
            raise ValueError(f"unknown context {context!r}; available: {', '.join(CONTEXTS)}")
        widths = [min(256, base_channels * max(1, r // 2)) for r in reductions]
        self.blocks = nn.ModuleList()
        prev = channels[-1]
        self.context: nn.Module = nn.Identity()
        if context == "pool":
            self.context = GlobalContext(prev, widths[-2])
            prev += widths[-2]
        for i in reversed(range(len(channels) - 1)):
            self.blocks.append(DoubleConv(prev + channels[i], widths[i]))
            prev = widths[i]
        self.head = nn.Conv2d(prev, num_classes, 1)
        init_weights(self)

    def forward(self, features: list[torch.Tensor], size: tuple[int, int]) -> torch.Tensor:
        y = self.context(features[-1])
        for block, skip in zip(self.blocks, reversed(features[:-1])):
            y = F.interpolate(y, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            y = block(torch.cat([y, skip], dim=1))
        y = self.head(y)
        if tuple(y.shape[-2:]) != tuple(size):
            y = F.interpolate(y, size=size, mode="bilinear", align_corners=False)
        return y
