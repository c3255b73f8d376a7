"""Export a trained checkpoint to ONNX, with dynamic batch and image size, and check it.

The exported graph maps ``image``: ``(N, 3, H, W)`` float32, normalised as
``(rgb / 255 - mean) / std`` (the checkpoint's ``mean``/``std``, stored in the ONNX metadata), to
``logits``: ``(N, K, H, W)`` float32, for any N, H, W. The ``segprep.*`` metadata also carries the
class map, the class names and the training size (:func:`metadata_props`), so ``segprep predict
--backend onnxruntime model.onnx`` needs nothing else.

Why a wrapper: segprep's models pad their input to a multiple of their stride with a Python
``if`` on the input size; a traced export would freeze that branch at the example's size and give
wrong shapes on other sizes. The exported module always pads (by 0 when the size is a multiple
already) and crops the logits back, with the padding computed from the traced shape, so one graph
serves every size; the model inside then never takes its own padding branch.

The check runs the ONNX file in onnxruntime (CPU) and the PyTorch model on the same inputs — a
stride-multiple size, an odd size, and a batch of two — and reports the largest absolute logit
difference and the fraction of pixels whose argmax class agrees.
"""

from __future__ import annotations

import io
import json
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from segprep.class_maps import IGNORE_INDEX
from segprep.errors import SegprepError
from segprep.io import atomic_write_bytes

PathLike = str | os.PathLike

DEFAULT_OPSET = 17


@dataclass
class ParityCheck:
    """One onnxruntime-vs-PyTorch comparison."""

    shape: tuple[int, int, int, int]
    max_abs_diff: float
    argmax_agreement: float
    max_abs_logit: float


@dataclass
class ExportReport:
    """What :func:`export_onnx` did."""

    path: Path
    opset: int
    num_classes: int
    size_bytes: int
    seconds: float
    checks: list[ParityCheck] = field(default_factory=list)

    def passed(self, atol: float = 1e-3, min_agreement: float = 0.999) -> bool:
        """Every check within ``atol`` (scaled by the logits' magnitude when above 1) and argmax
        agreement at least ``min_agreement``."""
        return all(c.max_abs_diff <= atol * max(1.0, c.max_abs_logit)
                   and c.argmax_agreement >= min_agreement for c in self.checks)


def _export_module(model):
    import torch
    import torch.nn.functional as F

    class PadCrop(torch.nn.Module):
        """``model`` with stride padding done here, traceably, for every input size."""

        def __init__(self, inner: torch.nn.Module, stride: int):
            super().__init__()
            self.model = inner
            self.stride = int(stride)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h, w = x.shape[-2], x.shape[-1]
            ph = (self.stride - h % self.stride) % self.stride
            pw = (self.stride - w % self.stride) % self.stride
            return self.model(F.pad(x, (0, pw, 0, ph)))[..., :h, :w]

    return PadCrop(model, getattr(model, "stride", 1)).eval()


def export_onnx(checkpoint: PathLike, out: PathLike, *, opset: int = DEFAULT_OPSET,
                check: bool = True, seed: int = 0) -> ExportReport:
    """Export ``checkpoint`` to ``out`` (ONNX, dynamic N/H/W), optionally checking parity.

    Args:
        checkpoint: a ``best.pt``/``last.pt`` of ``segprep train`` (or its run folder).
        out: the ``.onnx`` file (written atomically).
        opset: ONNX opset version.
        check: compare onnxruntime with PyTorch (needs ``onnxruntime``).
        seed: seed of the check's random images.

    Returns:
        an :class:`ExportReport` (with :class:`ParityCheck` entries when ``check``).

    Raises:
        SegprepError: unreadable checkpoint, export failure, the ``onnx`` package missing, or
            ``check`` without onnxruntime (both name the extra ``pip install -e '.[onnx]'``).
    """
    import torch

    from segprep.train.checkpoint import load_model

    t0 = time.perf_counter()
    try:
        import onnx  # noqa: F401  (torch's exporter and the metadata both need it)
    except ImportError:
        raise SegprepError("export onnx", "needs the onnx package; install the extra: "
                                          "pip install -e '.[onnx]'") from None
    if check:
        try:
            import onnxruntime  # noqa: F401  (availability check only)
        except ImportError:
            raise SegprepError("--check", "needs onnxruntime (install the extra: pip install -e "
                                          "'.[onnx]'), or pass --no-check") from None
    model, meta = load_model(checkpoint, device="cpu")
    wrapped = _export_module(model)
    stride = wrapped.stride
    # an example whose size is not a multiple of the stride, so nothing is special-cased
    example = torch.randn(1, 3, 2 * stride + 3, 3 * stride + 5)
    buf = io.BytesIO()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer warnings about shape arithmetic
            torch.onnx.export(
                wrapped, (example,), buf,  # type: ignore[arg-type]
                input_names=["image"], output_names=["logits"],
                opset_version=int(opset), dynamo=False, do_constant_folding=True,
                dynamic_axes={"image": {0: "N", 2: "H", 3: "W"},
                              "logits": {0: "N", 2: "H", 3: "W"}})
    except Exception as exc:
        raise SegprepError(checkpoint, f"ONNX export failed ({type(exc).__name__}: "
                                       f"{str(exc).splitlines()[0] if str(exc) else ''})") from None
    data = _with_metadata(buf.getvalue(), meta)
    out = Path(out)
    atomic_write_bytes(out, data)
    report = ExportReport(out, int(opset), int(meta["num_classes"]), len(data), 0.0)
    if check:
        report.checks = parity(model, data, meta, seed=seed)
    report.seconds = time.perf_counter() - t0
    return report


METADATA_VERSION = "2"


def metadata_props(meta: dict) -> dict[str, str]:
    """The ``segprep.*`` ONNX ``metadata_props`` of a checkpoint's ``meta``: everything
    ``segprep predict --backend onnxruntime`` needs, so that the ``.onnx`` alone is enough.

    Keys: ``segprep.metadata_version`` (``"2"``), ``num_classes``, ``class_names`` (JSON list),
    ``mean`` / ``std`` (JSON lists of 3 floats; input = ``(rgb / 255 - mean) / std``),
    ``ignore_index``, ``class_map`` (its name), ``class_map_json`` (``ClassMap.to_dict()`` as
    JSON, or ``""`` when the model has none), ``train_size`` (JSON ``[W, H]`` of ``segprep train
    --size``, or ``null``: trained at native size), ``model`` (the ``build_model`` config, JSON),
    ``input`` / ``output`` (the tensors, in words).
    """
    cmap = meta.get("class_map") or {}
    size = (meta.get("args") or {}).get("size")
    return {"segprep.metadata_version": METADATA_VERSION,
            "segprep.num_classes": str(meta["num_classes"]),
            "segprep.class_names": json.dumps(meta.get("class_names") or []),
            "segprep.mean": json.dumps(meta["mean"]), "segprep.std": json.dumps(meta["std"]),
            "segprep.ignore_index": str(meta.get("ignore_index", IGNORE_INDEX)),
            "segprep.class_map": str(cmap.get("name", "")),
            "segprep.class_map_json": json.dumps(cmap) if cmap else "",
            "segprep.train_size": json.dumps([int(size[0]), int(size[1])] if size else None),
            "segprep.model": json.dumps(meta.get("model") or {}),
            "segprep.input": "(N, 3, H, W) float32 = (rgb / 255 - mean) / std",
            "segprep.output": "(N, K, H, W) float32 logits"}


def _with_metadata(data: bytes, meta: dict) -> bytes:
    """Store :func:`metadata_props` in the ONNX ``metadata_props``.

    Raises:
        SegprepError: the ``onnx`` package is missing (names the extra).
    """
    try:
        import onnx
    except ImportError:
        raise SegprepError("export onnx", "needs the onnx package to store the model's metadata; "
                                          "install the extra: pip install -e '.[onnx]'") from None
    model = onnx.load_from_string(data)
    for k, v in metadata_props(meta).items():
        entry = model.metadata_props.add()
        entry.key, entry.value = k, v
    return model.SerializeToString()


def parity(model, onnx_bytes: bytes, meta: dict, seed: int = 0) -> list[ParityCheck]:
    """Compare onnxruntime (CPU) with the PyTorch ``model`` on normalised random images of a
    stride-multiple size, an odd size, and a batch of two."""
    import onnxruntime as ort
    import torch

    sess = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    stride = int(getattr(model, "stride", 1))
    rng = np.random.default_rng(seed)
    mean = np.array(meta["mean"], np.float32).reshape(1, 3, 1, 1)
    std = np.array(meta["std"], np.float32).reshape(1, 3, 1, 1)
    shapes = [(1, 3, 8 * stride, 12 * stride), (1, 3, 5 * stride + 7, 9 * stride + 3),
              (2, 3, 3 * stride + 1, 4 * stride + 2)]
    out = []
    for shape in shapes:
        rgb = rng.integers(0, 256, shape, dtype=np.uint8).astype(np.float32)
        x = ((rgb / 255 - mean) / std).astype(np.float32)
        got = sess.run(None, {"image": x})[0]
        with torch.inference_mode():
            want = model(torch.from_numpy(x)).numpy()
        if got.shape != want.shape:
            raise SegprepError("onnx", f"output shape {got.shape} != PyTorch {want.shape} for "
                                       f"input {shape}")
        out.append(ParityCheck(shape, float(np.abs(got - want).max()),
                               float((got.argmax(1) == want.argmax(1)).mean()),
                               float(np.abs(want).max())))
    return out
