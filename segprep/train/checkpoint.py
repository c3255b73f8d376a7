"""Training checkpoints (``last.pt``, ``best.pt``): save atomically, resume, and load a model.

A checkpoint is one ``torch.save`` dict that ``torch.load(weights_only=True)`` can read (no pickled
code, so a checkpoint from elsewhere cannot run anything when loaded)::

    {
      "format": 2,                          # FORMAT; load_checkpoint refuses other versions
      "model": state_dict,                  # the bare model (never DDP-wrapped)
      "meta": {                             # everything predict / export / evaluate need
        "num_classes": int, "ignore_index": int,   # ignore_index as the masks use it (e.g. 255)
        "class_map": ClassMap.to_dict() | None, "class_names": [str] * K,
        "mean": [3 floats], "std": [3 floats],     # input = (RGB / 255 - mean) / std
        "model": build_model kwargs (segprep.model.model_config),
        "epoch": int (epochs completed), "best_miou": float | None, "args": dict,
      },
      "optimizer": ..., "scheduler": ..., "scaler": ... | None,   # for --resume
      "ema": {"module": state_dict, "updates": int, "decay": float} | None,  # --ema weights
      "rng": {"python", "numpy", "torch", "cuda"},                # RNG states
      "epoch": int, "best_miou": float | None, "best_epoch": int | None,
      "best_scores": dict | None,           # best_scores.json's content (rebuilt from it)
      "elapsed_s": float, "epoch_times": [float], "args": dict,
    }

Format history: 1 — the layout above without ``ema`` and ``best_scores``; 2 — adds them (with
``ema`` the served weights are ``ema["module"]``, which :func:`load_model` picks). Both load.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from segprep.errors import SegprepError

FORMAT = 2
"""The checkpoint layout version written by this segprep (the ``"format"`` entry)."""

READABLE_FORMATS = (1, 2)
"""Layout versions :func:`load_checkpoint` reads."""


def unwrap(model: nn.Module) -> nn.Module:
    """The bare model inside a DistributedDataParallel (or torch.compile) wrapper."""
    while hasattr(model, "module") or hasattr(model, "_orig_mod"):
        inner: nn.Module = getattr(model, "module", None) or getattr(model, "_orig_mod")  # noqa: B009
        model = inner
    return model


def rng_state() -> dict:
    """RNG states of python, numpy (legacy global), torch CPU and every CUDA device, stored as
    tensors/ints so that ``weights_only`` loading accepts them."""
    py = random.getstate()
    np_state: Any = np.random.get_state()  # the legacy tuple
    state: dict[str, Any] = {
        "python": [py[0], list(py[1]), py[2]],
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), int(np_state[2]),
                  int(np_state[3]), float(np_state[4])],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    return state


def set_rng_state(state: dict) -> None:
    """Restore what :func:`rng_state` saved (missing entries are left alone)."""
    if "python" in state:
        v, s, g = state["python"]
        random.setstate((v, tuple(s), g))
    if "numpy" in state:
        name, keys, pos, has_gauss, gauss = state["numpy"]
        np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    if "torch" in state:
        torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        cuda = state["cuda"][: torch.cuda.device_count()]
        torch.cuda.set_rng_state_all(cuda)


def save_checkpoint(path: str | os.PathLike, ckpt: dict) -> None:
    """Write ``ckpt`` with ``torch.save`` atomically (temp file + rename, usual permissions), so
    a run killed while saving never leaves a truncated ``last.pt``."""
    from segprep.io import atomic_write

    atomic_write(path, lambda fh: torch.save(ckpt, fh))


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Read a checkpoint dict (``weights_only=True``).

    Raises:
        SegprepError: missing file, not a segprep checkpoint, unreadable, or a format version
            not in :data:`READABLE_FORMATS`.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "last.pt"
    if not path.is_file():
        raise SegprepError(path, "no such checkpoint")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # truncated zip, pickle of code, …
        raise SegprepError(path, f"cannot read checkpoint ({type(exc).__name__}: {exc})") from None
    if not isinstance(ckpt, dict) or "model" not in ckpt or "meta" not in ckpt:
        raise SegprepError(path, "not a segprep checkpoint (no 'model'/'meta' entries)")
    version = ckpt.get("format")
    if version not in READABLE_FORMATS:
        raise SegprepError(path, f"checkpoint format {version!r} is not one this segprep reads "
                                 f"({', '.join(map(str, READABLE_FORMATS))}); it comes from "
                                 "another segprep version")
    return ckpt


def link_checkpoint(source: str | os.PathLike, target: str | os.PathLike) -> None:
    """Make ``target`` the same checkpoint file as ``source`` in one atomic step: a hard link
    (no second write of the weights) under a temp name in the target's folder, renamed onto
    ``target`` (a copy where the file system has no hard links). ``source`` stays; a later
    atomic rewrite of ``source`` gives it a new file and leaves ``target`` as it was."""
    import shutil

    source, target = Path(source), Path(target)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.link.tmp")
    try:
        tmp.unlink()
    except FileNotFoundError:
        pass
    try:
        try:
            os.link(source, tmp)
        except OSError:
            shutil.copyfile(source, tmp)
        os.replace(tmp, target)
    except BaseException:
        try:
            tmp.unlink()
        except OSError:
            pass
        raise


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu"
               ) -> tuple[nn.Module, dict]:
    """Rebuild the trained model from a checkpoint, in eval mode on ``device``.

    Args:
        path: a ``last.pt`` / ``best.pt`` file (or a run folder: its ``best.pt`` if present, else
            ``last.pt``).
        device: where to put the model.

    Returns:
        ``(model, meta)``: ``model(x)`` maps ``(N, 3, H, W)`` float32 images normalised as
        ``(rgb / 255 - meta["mean"]) / meta["std"]`` (any H, W) to ``(N, K, H, W)`` logits.
        ``meta`` has ``num_classes``, ``ignore_index``, ``class_map`` (``ClassMap.to_dict()`` or
        None), ``class_names``, ``mean``, ``std``, ``model`` (the :func:`segprep.model.build_model`
        kwargs), ``epoch``, ``best_miou``, ``args``.

    Raises:
        SegprepError: missing or unreadable checkpoint, or weights that do not fit the model.
    """
    from segprep.model import build_model

    path = Path(path)
    if path.is_dir():
        path = path / "best.pt" if (path / "best.pt").is_file() else path / "last.pt"
    ckpt = load_checkpoint(path)
    meta = dict(ckpt["meta"])
    config = dict(meta["model"])
    config.pop("pretrained", None)  # the trained weights replace any encoder initialisation
    try:
        model = build_model(**config)
        ema = ckpt.get("ema")
        model.load_state_dict(ema["module"] if ema else ckpt["model"])
    except (RuntimeError, ValueError, ImportError, TypeError) as exc:
        raise SegprepError(path, f"cannot rebuild the model: {exc}") from None
    model.to(device).eval()
    return model, meta


def make_meta(model: nn.Module, *, num_classes: int, ignore_index: int, class_map: Any,
              class_names: list[str], mean: tuple, std: tuple, epoch: int,
              best_miou: float | None, args: dict) -> dict:
    """The ``meta`` entry of a checkpoint (see the module docstring)."""
    return {
        "num_classes": int(num_classes),
        "ignore_index": int(ignore_index),
        "class_map": class_map.to_dict() if class_map is not None else None,
        "class_names": list(class_names),
        "mean": [float(x) for x in mean],
        "std": [float(x) for x in std],
        "model": dict(getattr(unwrap(model), "config")),  # noqa: B009 - set by build_model
        "epoch": int(epoch),
        "best_miou": None if best_miou is None else float(best_miou),
        "args": dict(args),
    }
