"""Where the network runs: a PyTorch checkpoint or an ONNX file in ONNX Runtime.

Both backends answer the same question — ``forward(x)``: ``(N, 3, H, W)`` float32 images,
normalised as ``(rgb / 255 - mean) / std``, to ``(N, K, H, W)`` float32 logits (torch tensors) —
and describe the model the same way (:class:`ModelInfo`: classes, class map, normalisation and the
training size). Everything else (resizing, sliding windows, flip TTA, argmax) is done once, by
:class:`segprep.predict.predictor.Predictor`, whatever the backend.

* ``torch``: a ``best.pt``/``last.pt`` (or run folder) of ``segprep train``; CUDA when asked and
  present, float16 autocast on CUDA (``amp``).
* ``onnxruntime``: a ``.onnx`` written by ``segprep export onnx``. Its ``segprep.*`` metadata
  carries what the checkpoint's ``meta`` carries (class map, mean/std, training size), so the file
  alone is enough. Execution providers: CPU always; CUDA first when onnxruntime has it and the
  device allows it. ``onnxruntime`` is the optional extra ``onnx`` (``pip install -e '.[onnx]'``).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from segprep.class_maps import ClassMap
from segprep.errors import SegprepError

PathLike = str | os.PathLike

BACKENDS = ("torch", "onnxruntime")
ONNX_EXTRA = "pip install -e '.[onnx]'"


@dataclass(frozen=True)
class ModelInfo:
    """What predicting with a model needs to know besides its weights.

    Attributes:
        num_classes: K, the number of logit channels (trainIds ``0..K-1``).
        class_map: the class map the model was trained with (None: none recorded).
        class_names: K names.
        mean, std: 3 floats each; the input is ``(rgb / 255 - mean) / std``.
        train_size: ``(W, H)`` the training frames were resized to (``segprep train --size``),
            None when trained at native size.
        ignore_index: the masks' ignore value at training.
    """

    num_classes: int
    class_map: ClassMap | None
    class_names: tuple[str, ...]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    train_size: tuple[int, int] | None
    ignore_index: int = 255

    @classmethod
    def from_meta(cls, meta: dict) -> ModelInfo:
        """From a checkpoint's ``meta`` (see :mod:`segprep.train.checkpoint`)."""
        cm = meta.get("class_map")
        size = (meta.get("args") or {}).get("size")
        return cls(int(meta["num_classes"]), ClassMap.from_dict(cm) if cm else None,
                   tuple(meta.get("class_names") or ()), tuple(meta["mean"]), tuple(meta["std"]),
                   (int(size[0]), int(size[1])) if size else None,
                   int(meta.get("ignore_index", 255)))


def _torch_device(device: str):
    import torch

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise SegprepError("--device", str(exc)) from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise SegprepError("--device", "CUDA is not available on this machine")
    if dev.type not in ("cpu", "cuda"):
        raise SegprepError("--device", f"expected auto, cpu, cuda or cuda:N, not {device!r}")
    return dev


class TorchBackend:
    """A ``segprep train`` checkpoint run by PyTorch.

    Args:
        checkpoint: ``best.pt``/``last.pt`` or a run folder.
        device: ``auto`` (CUDA if available), ``cpu``, ``cuda`` or ``cuda:N``.
        amp: float16 autocast on CUDA (ignored on CPU).
        threads: ``torch.set_num_threads`` (None: leave PyTorch's default).

    Raises:
        SegprepError: unreadable checkpoint, unknown or absent device.
    """

    name = "torch"

    def __init__(self, checkpoint: PathLike, device: str = "auto", amp: bool = True,
                 threads: int | None = None):
        import torch

        from segprep.train.checkpoint import load_model

        self.device = _torch_device(device)
        if threads:
            torch.set_num_threads(int(threads))
        self.model, meta = load_model(checkpoint, device=self.device)
        if self.device.type == "cpu":  # NHWC convolutions: ~1.3x faster on CPU (measured)
            self.model = self.model.to(  # type: ignore[call-overload]
                memory_format=torch.channels_last)
        self.info = ModelInfo.from_meta(meta)
        self.amp = bool(amp) and self.device.type == "cuda"

    def forward(self, x):
        """``(N, 3, H, W)`` float32 normalised images (on :attr:`device`) → ``(N, K, H, W)``
        float32 logits."""
        import torch

        with torch.inference_mode():
            if self.amp:
                with torch.autocast("cuda", dtype=torch.float16):
                    return self.model(x).float()
            return self.model(x)

    def describe(self) -> str:
        return f"torch {self.device}{' (AMP float16)' if self.amp else ''}"


def import_onnxruntime():
    """``import onnxruntime``, or the one-line error that names the extra to install."""
    try:
        import onnxruntime
    except ImportError:
        raise SegprepError("--backend", f"onnxruntime is not installed; install the extra: "
                                        f"{ONNX_EXTRA}") from None
    return onnxruntime


def onnx_info(props: dict[str, str], path: PathLike) -> ModelInfo:
    """:class:`ModelInfo` from an ONNX file's ``segprep.*`` metadata (as written by
    :func:`segprep.export.export_onnx`).

    Raises:
        SegprepError: the file has no segprep metadata, or it does not parse.
    """
    if "segprep.num_classes" not in props:
        raise SegprepError(path, "no segprep metadata in this ONNX file (write it with "
                                 "'segprep export onnx CHECKPOINT -o FILE.onnx')")
    try:
        cm = props.get("segprep.class_map_json")
        if cm:
            class_map = ClassMap.from_dict(json.loads(cm))
        elif props.get("segprep.class_map"):  # older exports: a shipped table, by name
            from segprep import class_maps

            try:
                class_map = class_maps.load(props["segprep.class_map"])
            except SegprepError:
                class_map = None
        else:
            class_map = None
        size = json.loads(props.get("segprep.train_size") or "null")
        mean = [float(v) for v in json.loads(props["segprep.mean"])]
        std = [float(v) for v in json.loads(props["segprep.std"])]
        return ModelInfo(int(props["segprep.num_classes"]), class_map,
                         tuple(json.loads(props.get("segprep.class_names") or "[]")),
                         (mean[0], mean[1], mean[2]), (std[0], std[1], std[2]),
                         (int(size[0]), int(size[1])) if size else None,
                         int(props.get("segprep.ignore_index", 255)))
    except (ValueError, KeyError, TypeError, IndexError) as exc:
        raise SegprepError(path, f"unreadable segprep metadata ({type(exc).__name__}: {exc})") \
            from None


class OnnxBackend:
    """An ``.onnx`` of ``segprep export onnx`` run by ONNX Runtime.

    Args:
        path: the ``.onnx`` file (input ``image`` ``(N, 3, H, W)``, output ``logits``).
        device: ``auto`` (CUDA provider first when onnxruntime has it), ``cpu``, ``cuda`` or
            ``cuda:N`` (error when the CUDA provider is missing).
        threads: ``intra_op_num_threads`` (None: onnxruntime's default, all cores).

    Raises:
        SegprepError: onnxruntime missing (names the extra), unreadable file, no segprep metadata.
    """

    name = "onnxruntime"

    def __init__(self, path: PathLike, device: str = "auto", threads: int | None = None):
        import torch

        ort = import_onnxruntime()
        path = Path(path)
        if path.is_dir():
            raise SegprepError(path, "--backend onnxruntime takes an .onnx file, not a folder")
        available = ort.get_available_providers()
        cuda_id = 0
        if device.startswith("cuda"):
            if "CUDAExecutionProvider" not in available:
                raise SegprepError("--device", "onnxruntime has no CUDA provider here "
                                               "(install onnxruntime-gpu)")
            cuda_id = int(device.split(":")[1]) if ":" in device else 0
        elif device not in ("auto", "cpu"):
            raise SegprepError("--device", f"expected auto, cpu, cuda or cuda:N, not {device!r}")
        providers: list = []
        if device != "cpu" and "CUDAExecutionProvider" in available:
            providers.append(("CUDAExecutionProvider", {"device_id": cuda_id}))
        providers.append("CPUExecutionProvider")
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = int(threads)
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(path), sess_options=opts,
                                                providers=providers)
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidProtobuf/NoSuchFile
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise SegprepError(path, f"cannot load ONNX model ({first})") from None
        self.info = onnx_info(dict(self.session.get_modelmeta().custom_metadata_map), path)
        self.input_name = self.session.get_inputs()[0].name
        self.providers = self.session.get_providers()
        self.device = torch.device("cpu")  # where input tensors are prepared
        self.amp = False

    def forward(self, x):
        """``(N, 3, H, W)`` float32 normalised images → ``(N, K, H, W)`` float32 logits."""
        import torch

        arr = np.ascontiguousarray(x.detach().cpu().numpy(), dtype=np.float32)
        return torch.from_numpy(self.session.run(None, {self.input_name: arr})[0])

    def describe(self) -> str:
        return f"onnxruntime {self.providers[0]}"


def load_backend(model: PathLike, backend: str | None = None, device: str = "auto",
                 amp: bool = True, threads: int | None = None) -> TorchBackend | OnnxBackend:
    """Open ``model`` with ``backend`` (None: ``onnxruntime`` for a ``.onnx`` file, else
    ``torch``).

    Raises:
        SegprepError: unknown backend, a model file the backend cannot take, or what the backend
            raises.
    """
    is_onnx = Path(model).suffix.lower() == ".onnx"
    if backend is None:
        backend = "onnxruntime" if is_onnx else "torch"
    if backend not in BACKENDS:
        raise SegprepError("--backend", f"unknown backend {backend!r}; choose from "
                                        f"{', '.join(BACKENDS)}")
    if threads is not None and threads < 1:
        raise SegprepError("--threads", f"must be at least 1, not {threads}")
    if backend == "torch":
        if is_onnx:
            raise SegprepError(model, "an ONNX file needs --backend onnxruntime")
        return TorchBackend(model, device=device, amp=amp, threads=threads)
    if not is_onnx:
        raise SegprepError(model, "--backend onnxruntime takes the .onnx written by "
                                  "'segprep export onnx', not a checkpoint")
    return OnnxBackend(model, device=device, threads=threads)
