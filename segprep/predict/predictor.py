"""RGB frames → trainId predictions, the same way for every backend and every kind of input.

Inference: images normalised ``(rgb / 255 - mean) / std`` with the model's ``mean``/``std``.
Scale: a model trained on frames resized to ``--size WxH`` sees objects at that scale, so by
default each image is first resized to the training size recorded with the model (bilinear,
``cv2.INTER_LINEAR`` as the trainer's ``SegDataset``); the logits are resized back to the image's
native size (bilinear, as mmsegmentation's ``resize`` before the argmax), so every output has its
input's size. ``size="native"`` (or a model trained without ``--size``) runs at native size.
Whole images (the model pads to its stride and crops back), or a sliding window (``tile=(h, w)``
on the resized image, ``overlap`` fraction) whose logits are averaged where windows overlap.
``tta="flip"``: the logits of the image and of its horizontal mirror (mirrored back) are averaged,
window by window, in one forward pass of twice the batch. ``tta_scales``: multi-scale testing as
mmsegmentation's ``aug_test`` (``img_ratios``): the model runs at each factor of its size, each
view resized from the image itself (bilinear, ``cv2.INTER_LINEAR``) and its logits resized back
(bilinear); the views' softmax is averaged and the log of that mean is returned as the logits.
The argmax is taken on the device.
"""

from __future__ import annotations

import os
import resource
import sys
from collections.abc import Sequence

import numpy as np

from segprep.errors import SegprepError
from segprep.predict.backends import TorchBackend, load_backend

PathLike = str | os.PathLike

TTA_MODES = ("none", "flip")
MAX_TTA_SCALES = 8


def tile_positions(size: int, tile: int, overlap: float) -> list[int]:
    """Start offsets of sliding windows of ``tile`` pixels covering ``size`` with at least the
    ``overlap`` fraction between neighbours; the last window ends at ``size``."""
    if tile >= size:
        return [0]
    step = max(1, int(tile * (1 - overlap)))
    pos = list(range(0, size - tile, step))
    pos.append(size - tile)
    return sorted(set(pos))


class Predictor:
    """A loaded model (checkpoint or ONNX file) that maps RGB images to trainId predictions.

    Args:
        checkpoint: a ``best.pt``/``last.pt`` (or run folder) of ``segprep train``, or a
            ``.onnx`` of ``segprep export onnx`` (with ``backend="onnxruntime"``).
        size: ``(W, H)`` the model runs at (images resized, bilinear; logits resized back), None
            for the training size recorded with the model (``--size`` of ``segprep train``;
            native when it has none), or ``"native"``.
        device: ``auto`` (CUDA if available), ``cpu``, ``cuda`` or ``cuda:N``.
        amp: float16 autocast on CUDA (torch backend; ignored on CPU).
        tile: ``(h, w)`` sliding-window size, or None for whole images.
        overlap: overlap fraction of neighbouring windows, in ``[0, 1)``.
        batch_size: images (or windows) per forward pass.
        backend: ``torch``, ``onnxruntime``, or None (``onnxruntime`` for ``.onnx`` files).
        tta: ``none`` or ``flip`` (average with the mirrored image's logits).
        tta_scales: factors of multi-scale testing, e.g. ``(0.75, 1, 1.25, 1.5)`` of the size the
            model runs at (each > 0, at most 8), or None for one scale. With ``tta="flip"`` each
            scale is also flipped.
        threads: CPU threads of the backend (None: its default).

    Raises:
        SegprepError: unreadable model, unknown device, bad tile/overlap/size/tta/tta_scales,
            onnxruntime missing.
    """

    def __init__(self, checkpoint: PathLike, device: str = "auto", amp: bool = True,
                 tile: tuple[int, int] | None = None, overlap: float = 0.25,
                 batch_size: int = 1, size: tuple[int, int] | str | None = None,
                 backend: str | None = None, tta: str | None = None,
                 threads: int | None = None, tta_scales: Sequence[float] | None = None):
        import torch

        if not 0 <= overlap < 1:
            raise SegprepError("--overlap", f"must be in [0, 1), not {overlap}")
        if tile is not None and (tile[0] < 1 or tile[1] < 1):
            raise SegprepError("--tile", f"must be positive, not {tile}")
        if batch_size < 1:
            raise SegprepError("--batch-size", "must be at least 1")
        tta = tta or "none"
        if tta not in TTA_MODES:
            raise SegprepError("--tta", f"unknown mode {tta!r}; choose from {', '.join(TTA_MODES)}")
        scales = tuple(float(v) for v in tta_scales) if tta_scales else None
        if scales is not None and (len(scales) > MAX_TTA_SCALES or len(set(scales)) != len(scales)
                                   or not all(0 < v <= 4 for v in scales)):
            raise SegprepError("--tta-scales", f"expected 1 to {MAX_TTA_SCALES} different factors "
                                               f"in (0, 4], got {tta_scales!r}")
        self.backend = load_backend(checkpoint, backend, device=device, amp=amp, threads=threads)
        self.info = self.backend.info
        self.device = self.backend.device
        self.amp = self.backend.amp
        self.num_classes = self.info.num_classes
        if self.num_classes > 255:
            raise SegprepError(checkpoint, f"{self.num_classes} classes do not fit 8-bit "
                                           "predictions")
        self.class_map = self.info.class_map
        if size is None:  # the training size recorded with the model
            size = self.info.train_size or "native"
        if size == "native":
            self.size = None
        elif (isinstance(size, tuple) and len(size) == 2
              and all(isinstance(v, int) and v > 0 for v in size)):
            self.size = size
        else:
            raise SegprepError("--size", f"expected (W, H) positive ints or 'native', not {size!r}")
        self.tile = tile
        self.overlap = float(overlap)
        self.batch_size = int(batch_size)
        self.tta = tta
        self.tta_scales = None if scales == (1.0,) else scales
        self.mean = torch.tensor(self.info.mean, dtype=torch.float32,
                                 device=self.device).view(1, 3, 1, 1) * 255
        self.std = torch.tensor(self.info.std, dtype=torch.float32,
                                device=self.device).view(1, 3, 1, 1) * 255

    # the torch backend's network (tests swap it for a pointwise one)
    @property
    def model(self):
        if not isinstance(self.backend, TorchBackend):
            raise AttributeError("only the torch backend has a torch model")
        return self.backend.model

    @model.setter
    def model(self, value) -> None:
        if not isinstance(self.backend, TorchBackend):
            raise AttributeError("only the torch backend has a torch model")
        self.backend.model = value

    def describe(self) -> str:
        """E.g. ``torch cpu`` or ``onnxruntime CPUExecutionProvider``."""
        return self.backend.describe()

    def _input(self, images: Sequence[np.ndarray]):
        import torch

        x = torch.from_numpy(np.stack(images)).to(self.device, non_blocking=True)
        return (x.permute(0, 3, 1, 2).float() - self.mean) / self.std

    def _forward(self, x):
        """Logits of a normalised batch, averaged with the mirrored batch's under flip TTA."""
        import torch

        if self.tta == "flip":
            n = x.shape[0]
            out = self.backend.forward(torch.cat([x, x.flip(-1)]))
            return (out[:n] + out[n:].flip(-1)) / 2
        return self.backend.forward(x)

    def logits(self, images: Sequence[np.ndarray]):
        """``(N, K, H, W)`` float32 logits of same-size ``(H, W, 3)`` uint8 RGB images (a torch
        tensor on :attr:`device`, at the images' own size), whole or by sliding window, the model
        run at :attr:`size` when one is set. With :attr:`tta_scales`: the log of the mean softmax
        of the views at each factor of that size (each resized from the images themselves)."""
        import torch

        h0, w0 = images[0].shape[:2]
        base = self.size or (w0, h0)
        if self.tta_scales is None:
            return self._at(images, base)
        total = None
        for s in self.tta_scales:
            prob = self._at(images, (max(1, round(base[0] * s)), max(1, round(base[1] * s))))
            prob = prob.float().softmax(1)
            total = prob if total is None else total.add_(prob)
        assert total is not None
        return torch.log(total.div_(len(self.tta_scales)).clamp_min_(1e-12))

    def _at(self, images: Sequence[np.ndarray], size: tuple[int, int]):
        """Logits of the images run at ``size`` ``(W, H)`` (resized bilinearly, ``cv2``), resized
        back to the images' size (bilinear) when it differs."""
        import torch.nn.functional as F

        h0, w0 = images[0].shape[:2]
        if size == (w0, h0):
            return self._logits(images)
        import cv2

        small = [cv2.resize(im, size, interpolation=cv2.INTER_LINEAR) for im in images]
        return F.interpolate(self._logits(small).float(), size=(h0, w0), mode="bilinear",
                             align_corners=False)

    def _logits(self, images: Sequence[np.ndarray]):
        import torch

        x = self._input(images)
        if self.tile is None:
            return self._forward(x)
        n, _, h, w = x.shape
        th, tw = min(self.tile[0], h), min(self.tile[1], w)
        windows = [(y, xx) for y in tile_positions(h, th, self.overlap)
                   for xx in tile_positions(w, tw, self.overlap)]
        out = torch.zeros((n, self.num_classes, h, w), dtype=torch.float32, device=self.device)
        count = torch.zeros((1, 1, h, w), dtype=torch.float32, device=self.device)
        per = max(1, self.batch_size // n)
        for i in range(0, len(windows), per):
            chunk = windows[i:i + per]
            crops = torch.cat([x[:, :, y:y + th, xx:xx + tw] for y, xx in chunk])
            res = self._forward(crops).to(self.device)
            for k, (y, xx) in enumerate(chunk):
                out[:, :, y:y + th, xx:xx + tw] += res[k * n:(k + 1) * n]
                count[:, :, y:y + th, xx:xx + tw] += 1
        return out / count

    def predict(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        """``(H, W)`` uint8 trainId predictions (argmax over classes) of same-size images."""
        import torch

        logits = self.logits(images)
        if logits.device.type == "cpu":  # numpy's argmax over axis 1: ~6x torch's on CPU
            return list(logits.numpy().argmax(1).astype(np.uint8))
        return list(logits.argmax(1).to(dtype=torch.uint8).cpu().numpy())

    def peak_memory(self) -> tuple[str, float]:
        """``("cuda", MiB)`` from ``torch.cuda.max_memory_allocated`` on CUDA (torch backend),
        else ``("rss", MiB)``: the process's peak resident set size."""
        import torch

        if self.device.type == "cuda":
            return "cuda", torch.cuda.max_memory_allocated(self.device) / 2 ** 20
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
        return "rss", rss / (2 ** 20 if sys.platform == "darwin" else 2 ** 10)
