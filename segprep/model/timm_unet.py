"""A U-Net decoder on an encoder from ``timm`` (e.g. ``resnet34``), for users whose PyTorch can
run timm (timm needs torchvision, whose installable wheels do not import beside the project's
CPU ``torch``; the default pretrained path is :mod:`segprep.model.efficientnet_lite`)."""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import nn

from segprep.model.unet import UNetDecoder, pad_to_stride


class TimmUNet(nn.Module):
    """:class:`segprep.model.unet.UNetDecoder` on a ``timm`` feature encoder
    (``features_only=True``).

    Args:
        num_classes: K.
        encoder: a timm model name, e.g. ``"resnet34"``.
        pretrained: a local weight file (a timm/torchvision state dict for ``encoder``) or None.
            Never downloaded (timm's ``file`` source).
        in_channels: input channels.
        base_channels: decoder width (see :class:`~segprep.model.unet.UNetDecoder`).
        context: None or ``"pool"`` (:class:`~segprep.model.unet.UNetDecoder`).

    Forward:
        ``(N, in_channels, H, W)`` float32, any H and W → ``(N, K, H, W)`` float32 logits.

    Raises:
        ImportError: timm is not installed.
        FileNotFoundError: ``pretrained`` does not exist.
    """

    def __init__(self, num_classes: int, encoder: str, pretrained: str | None = None,
                 in_channels: int = 3, base_channels: int = 32, context: str | None = None):
        super().__init__()
        try:
            import timm
        except ImportError:
            raise ImportError(f"encoder {encoder!r} needs timm: pip install timm") from None
        kwargs: dict[str, Any] = {"features_only": True, "in_chans": in_channels}
        if pretrained:
            if not os.path.isfile(pretrained):
                raise FileNotFoundError(pretrained)
            # a local file only: timm's "file" source never touches the network
            kwargs.update(pretrained=True, pretrained_cfg_overlay={"file": str(pretrained)})
        else:
            kwargs["pretrained"] = False
        self.encoder = timm.create_model(encoder, **kwargs)
        reductions = [int(r) for r in self.encoder.feature_info.reduction()]
        self.stride = max(reductions)
        self.decoder = UNetDecoder(list(self.encoder.feature_info.channels()), reductions,
                                   num_classes, base_channels, context)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, h, w = pad_to_stride(x, self.stride)
        return self.decoder(self.encoder(x), tuple(x.shape[-2:]))[..., :h, :w]
