"""``segprep train``'s options: :class:`TrainConfig` and the valid range of each
(:data:`LIMITS`), checked in one place (:meth:`TrainConfig.validate`)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from segprep.errors import SegprepError
from segprep.train.data import IGNORE

PROVISIONAL_EPOCHS = 10_000
"""Epoch count the schedule assumes before the first epoch's time is known (time-budget runs)."""

CSV_FIELDS = ("epoch", "iterations", "lr", "train_loss", "val_miou", "val_pixel_accuracy",
              "val_mean_accuracy", "train_images_per_s", "data_wait_s", "epoch_s", "elapsed_s")


LIMITS: dict[str, tuple[type, float, bool, float | None]] = {
    # option: (type, lower bound, bound excluded?, upper bound (excluded) or None)
    "num_classes": (int, 1, False, 256), "ignore_index": (int, 0, False, 256),
    "epochs": (int, 1, False, None), "time_budget": (float, 0, True, None),
    "stop_after": (int, 1, False, None), "batch_size": (int, 1, False, None),
    "val_batch_size": (int, 1, False, None), "lr": (float, 0, True, None),
    "momentum": (float, 0, False, 1), "weight_decay": (float, 0, False, None),
    "warmup_epochs": (float, 0, False, None), "poly_power": (float, 0, False, None),
    "color_jitter": (float, 0, False, None), "hue": (float, 0, False, 0.5),
    "photometric": (float, 0, False, None), "class_mix": (float, 0, False, None),
    "ema": (float, 0, False, 1), "encoder_lr_scale": (float, 0, False, None),
    "base_channels": (int, 1, False, None), "depth": (int, 1, False, None),
    "workers": (int, 0, False, None), "seed": (int, 0, False, 2 ** 32),
    "threads": (int, 1, False, None), "val_every": (int, 1, False, None),
}
"""The numeric options' valid ranges, checked by :meth:`TrainConfig.validate`."""


@dataclass
class TrainConfig:
    """Every option of ``segprep train`` (see ``segprep train --help`` for each meaning).

    Sizes: ``crop`` is ``(H, W)``; ``size`` is ``(W, H)`` (as written on the command line).
    """

    train: str = ""
    val: str | None = None
    out: str = ""
    root: str | None = None
    class_map: str | None = None
    num_classes: int | None = None
    ignore_index: int = IGNORE
    epochs: int | None = None
    time_budget: float | None = None
    stop_after: int | None = None
    batch_size: int = 8
    val_batch_size: int | None = None
    lr: float | None = None
    optimizer: str = "adamw"
    momentum: float = 0.9
    weight_decay: float = 1e-4
    warmup_epochs: float = 1.0
    poly_power: float = 0.9
    loss: str = "ce"
    class_weights: str | None = None
    class_weight_kind: str = "median_frequency"
    crop: tuple[int, int] | None = None
    size: tuple[int, int] | None = None
    scale: tuple[float, float] | None = None
    flip: bool = True
    color_jitter: float = 0.0
    hue: float = 0.0
    photometric: float = 0.0
    class_mix: float = 0.0
    class_mix_classes: tuple[int, ...] | None = None
    ema: float = 0.0
    base_channels: int = 32
    depth: int = 4
    encoder: str | None = None
    pretrained: str | None = None
    encoder_lr_scale: float = 0.1
    encoder_norm_eval: bool = False
    context: str | None = None
    workers: int | None = None
    cache: bool = False
    seed: int = 0
    device: str = "auto"
    amp: bool | None = None
    channels_last: bool | None = None
    threads: int | None = None
    val_every: int = 1
    deterministic: bool = False
    quiet: bool = False
    tensorboard: bool = True
    overwrite: bool = False

    def validate(self) -> None:
        """Check every numeric option against :data:`LIMITS` (the one place these rules live; the
        CLI and :func:`main` both call it, the latter also after ``--resume`` overrides), and the
        options that only make sense together (``--photometric`` and ``--class-mix``
        probabilities, ``--class-mix-classes`` with ``--class-mix``, ``--encoder-norm-eval`` and
        ``--context`` with ``--encoder``). ``--class-mix-classes`` against the class count is
        checked once that is known (:func:`segprep.train.setup.build_data`).

        Raises:
            SegprepError: naming the option, e.g. ``--epochs: must be >= 1, got 0``.
        """
        for name, (kind, low, strict, high) in LIMITS.items():
            value = getattr(self, name)
            if value is None:
                continue
            option = "--" + name.replace("_", "-")
            if isinstance(value, bool) or not isinstance(value, (int, float)) or (
                    kind is int and not isinstance(value, int)):
                raise SegprepError(option, f"expected {'an integer' if kind is int else 'a number'}"
                                           f", got {value!r}")
            if not math.isfinite(value):
                raise SegprepError(option, f"must be a finite number, got {value}")
            if (value <= low) if strict else (value < low):
                raise SegprepError(option, f"must be {'>' if strict else '>='} {low:g}, "
                                           f"got {value:g}")
            if high is not None and value >= high:
                raise SegprepError(option, f"must be < {high:g}, got {value:g}")
        for option, given in (("--encoder-norm-eval", self.encoder_norm_eval),
                              ("--context", self.context)):
            if given and not self.encoder:
                raise SegprepError(option, "needs --encoder (e.g. --encoder efficientnet-lite0)")
        for option, p in (("--photometric", self.photometric), ("--class-mix", self.class_mix)):
            if p > 1:
                raise SegprepError(option, f"a probability: must be <= 1, got {p:g}")
        if self.class_mix_classes is not None:
            if not self.class_mix:
                raise SegprepError("--class-mix-classes", "needs --class-mix P (P > 0)")
            if not self.class_mix_classes or min(self.class_mix_classes) < 0:
                raise SegprepError("--class-mix-classes", "expected train_ids >= 0, e.g. 2,6,9, "
                                                          f"got {self.class_mix_classes}")

    def to_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v)
                for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        kw: dict[str, Any] = {k: (tuple(v) if isinstance(v, list) else v)
                              for k, v in d.items() if k in names}
        return cls(**kw)


