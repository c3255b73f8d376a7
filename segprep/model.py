"""The segmentation model shared by ``segprep train``, ``predict`` and ``export``.

* :class:`UNet`: the U-Net of Ronneberger et al. 2015 ("U-Net: Convolutional Networks for
  Biomedical Image Segmentation", MICCAI) with padded 3×3 convolutions (so the output has the
  input's size), BatchNorm after every convolution, 2×2 max-pooling down and 2×2 transposed
  convolutions ("up-convolutions") up, configurable depth (number of poolings; 4 in the paper) and
  base width (64 in the paper).
* :class:`TimmUNet`: a U-Net decoder on an encoder from ``timm`` (e.g. ``resnet34``), built only
  when timm is installed. Pretrained weights come only from a local file (``pretrained=PATH``);
  nothing is ever downloaded.

Both accept any input size: the input is zero-padded on the bottom/right to a multiple of the
network's stride (``2 ** depth`` for the U-Net, the encoder's deepest reduction for timm) and the
logits are cropped back, as segmentation_models_pytorch does since its PR #1029. Inputs are
``(N, 3, H, W)`` float32 images normalised as ``(rgb / 255 - MEAN) / STD``; outputs are
``(N, K, H, W)`` float32 logits.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

MEAN = (0.485, 0.456, 0.406)
"""Input normalisation mean of RGB/255 (the ImageNet statistics used by torchvision and timm)."""
STD = (0.229, 0.224, 0.225)
"""Input normalisation standard deviation of RGB/255."""

ARCHS = ("unet",)


def _pad_to_stride(x: torch.Tensor, stride: int) -> tuple[torch.Tensor, int, int]:
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


def _init_weights(module: nn.Module) -> None:
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
        _init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, h, w = _pad_to_stride(x, self.stride)
        skips = [self.inc(x)]
        for block in self.down:
            skips.append(block(self.pool(skips[-1])))
        y = skips.pop()
        for up, conv in zip(self.up, self.up_conv):
            y = conv(torch.cat([skips.pop(), up(y)], dim=1))
        return self.head(y)[..., :h, :w]


class TimmUNet(nn.Module):
    """U-Net decoder on a ``timm`` feature encoder (``features_only=True``).

    Each decoder stage upsamples (bilinear) to the next shallower feature map, concatenates it
    and applies a :class:`DoubleConv`; a last stage brings the map to the input resolution.

    Args:
        num_classes: K.
        encoder: a timm model name, e.g. ``"resnet34"``.
        pretrained: a local weight file (a timm/torchvision state dict for ``encoder``) or None.
            Never downloaded.
        in_channels: input channels.
        base_channels: decoder width at full resolution; the stage at reduction ``r`` has
            ``base_channels * r / 2`` channels (capped at 256).

    Raises:
        ImportError: timm is not installed.
        FileNotFoundError: ``pretrained`` does not exist.
    """

    def __init__(self, num_classes: int, encoder: str, pretrained: str | None = None,
                 in_channels: int = 3, base_channels: int = 32):
        super().__init__()
        try:
            import timm
        except ImportError:
            raise ImportError(f"encoder {encoder!r} needs timm: pip install timm") from None
        kwargs: dict[str, Any] = {"features_only": True, "in_chans": in_channels}
        if pretrained:
            import os

            if not os.path.isfile(pretrained):
                raise FileNotFoundError(pretrained)
            # a local file only: timm's "file" source never touches the network
            kwargs.update(pretrained=True, pretrained_cfg_overlay={"file": str(pretrained)})
        else:
            kwargs["pretrained"] = False
        self.encoder = timm.create_model(encoder, **kwargs)
        chs = list(self.encoder.feature_info.channels())
        reds = list(self.encoder.feature_info.reduction())
        self.stride = int(max(reds))
        dec = [min(256, base_channels * max(1, r // 2)) for r in reds]
        self.blocks = nn.ModuleList()
        prev = chs[-1]
        for i in reversed(range(len(chs) - 1)):
            self.blocks.append(DoubleConv(prev + chs[i], dec[i]))
            prev = dec[i]
        self.final = DoubleConv(prev, base_channels)
        self.head = nn.Conv2d(base_channels, num_classes, 1)
        _init_weights(self.blocks)
        _init_weights(self.final)
        _init_weights(self.head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, h, w = _pad_to_stride(x, self.stride)
        feats = self.encoder(x)
        y = feats[-1]
        for block, skip in zip(self.blocks, reversed(feats[:-1])):
            y = F.interpolate(y, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            y = block(torch.cat([y, skip], dim=1))
        if y.shape[-2:] != x.shape[-2:]:
            y = F.interpolate(y, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return self.head(self.final(y))[..., :h, :w]


def model_config(num_classes: int, base_channels: int = 32, depth: int = 4,
                 encoder: str | None = None, in_channels: int = 3) -> dict:
    """The keyword arguments that rebuild a model with :func:`build_model` (stored in checkpoints
    as ``meta["model"]``)."""
    return {"arch": "unet", "num_classes": int(num_classes), "in_channels": int(in_channels),
            "base_channels": int(base_channels), "depth": int(depth),
            "encoder": encoder or None}


def build_model(arch: str = "unet", num_classes: int = 19, in_channels: int = 3,
                base_channels: int = 32, depth: int = 4, encoder: str | None = None,
                pretrained: str | None = None, **unused: Any) -> nn.Module:
    """Build the segmentation model described by a config (see :func:`model_config`).

    Args:
        arch: ``"unet"``.
        num_classes: K output classes.
        in_channels: input channels (3).
        base_channels: width of the first level (U-Net) / of the full-resolution decoder stage.
        depth: poolings of the plain U-Net (ignored with an encoder).
        encoder: None for the plain U-Net, or a timm model name (needs timm).
        pretrained: local encoder weights file (only with ``encoder``); never downloaded.
        unused: other keys of a stored config (ignored, for forward compatibility).

    Returns:
        An ``nn.Module`` mapping ``(N, in_channels, H, W)`` float32 normalised images (any H, W)
        to ``(N, K, H, W)`` logits; it has an int attribute ``stride`` and a dict ``config``.

    Raises:
        ValueError: unknown arch or bad sizes. ImportError: ``encoder`` given without timm.
    """
    if arch not in ARCHS:
        raise ValueError(f"unknown arch {arch!r}; available: {', '.join(ARCHS)}")
    if encoder:
        model: nn.Module = TimmUNet(num_classes, encoder, pretrained=pretrained,
                                    in_channels=in_channels, base_channels=base_channels)
    else:
        if pretrained:
            raise ValueError("pretrained weights need an encoder (e.g. encoder='resnet34')")
        model = UNet(num_classes, in_channels=in_channels, base_channels=base_channels,
                     depth=depth)
    setattr(model, "config",  # noqa: B010 - an attribute nn.Module does not declare
            model_config(num_classes, base_channels, depth, encoder, in_channels))
    return model
