"""The training loop, in the shape of torchvision's ``references/segmentation/train.py``: set-up
(:func:`set_up`), data (:func:`build_data`), model / optimiser (:func:`build_training`), one epoch
(:func:`train_one_epoch`), validation (:func:`evaluate`) and checkpoint (:func:`save_epoch`),
driven by :func:`main`.

* Poly learning rate per iteration, ``(1 - it / total) ** power``, after a linear warm-up from
  1 % of the peak (torchvision's ``LinearLR(start_factor=0.01)`` + ``PolynomialLR``).
* CUDA: AMP (``torch.autocast`` + ``GradScaler``), ``channels_last``, ``cudnn.benchmark``.
* DDP: launched by ``torchrun`` (``WORLD_SIZE`` > 1 in the environment): NCCL on CUDA / gloo on
  CPU, one shard of the shuffled training set per rank (``DistributedSampler`` order),
  ``SyncBatchNorm`` on CUDA, validation confusion matrices summed over ranks, rank 0 writes.
* Every validated epoch: mIoU from :class:`segprep.metrics.ConfusionMatrix` (of the
  :class:`ModelEMA` weights with ``ema``); every epoch: a ``metrics.csv`` row, ``last.pt``, and
  when mIoU improves ``best.pt`` (a hard link to ``last.pt``) and ``best_scores.json``, in that
  order; a resume repairs what a kill between them left (:func:`repair_run`). A new run refuses a
  folder that holds a run unless ``overwrite`` (:func:`holds_run`, :func:`clear_run`).
  ``--resume RUN_DIR`` continues from ``last.pt`` exactly (same weights as an uninterrupted
  run on CPU with ``deterministic=True``): augmentation is seeded per (seed, epoch, sample),
  the shuffle per (seed, epoch), and the model, optimiser, scheduler, scaler and EMA states are
  restored.
* ``time_budget`` (minutes, wall time from the start of :func:`main`, summed over resumes): the
  run stops after the last iteration that leaves time for one final validation, checkpoint and
  ``curves.png`` (mid-epoch if need be; that partial epoch counts as an epoch), so it ends within
  the budget (:class:`Budget`). Without an explicit ``epochs`` the poly schedule is re-fitted
  after every iteration to the iterations that still fit (measured iteration, validation and
  checkpoint times), so the learning rate reaches ~0 when the budget ends.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from segprep.errors import SegprepError
from segprep.metrics import ConfusionMatrix
from segprep.train.data import IGNORE, to_model_input

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
    "ema": (float, 0, False, 1),
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
    ema: float = 0.0
    base_channels: int = 32
    depth: int = 4
    encoder: str | None = None
    pretrained: str | None = None
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
        CLI and :func:`main` both call it, the latter also after ``--resume`` overrides).

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

    def to_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v)
                for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        kw: dict[str, Any] = {k: (tuple(v) if isinstance(v, list) else v)
                              for k, v in d.items() if k in names}
        return cls(**kw)


# ----------------------------------------------------------------------------- schedule
class PolyWarmup:
    """LR factor at iteration ``it``: linear warm-up from 0.01 over ``warmup`` iterations, times
    ``(1 - it / total) ** power``. An object (not a lambda) so that ``LambdaLR.state_dict`` saves
    ``total`` and ``warmup`` (they change when a time budget re-fits the schedule)."""

    def __init__(self, total: int, warmup: int, power: float = 0.9):
        self.total = max(1, int(total))
        self.warmup = max(0, int(warmup))
        self.power = power

    def __call__(self, it: int) -> float:
        warm = 1.0
        if self.warmup and it < self.warmup:
            warm = 0.01 + 0.99 * it / self.warmup
        return warm * max(0.0, 1 - min(it, self.total) / self.total) ** self.power


class Budget:
    """A run's wall-clock budget (``--time-budget``): when to stop, and how many iterations the
    poly schedule can still span so that it reaches 0 when the budget ends.

    Every time is in seconds of ``time.perf_counter()``. The budget pays for training
    iterations, the validations and checkpoints between epochs, and, at the end, one final
    validation, checkpoint and ``curves.png`` (the *reserve*, kept free at all times).
    Iteration time: the mean of the last 50 iterations. Validation time: the last one measured;
    before the first, ``val_iterations`` training iterations' worth (val frames x pixels / batch
    pixels, x 0.5 for a forward pass without backward; 0 without a val set).

    Args:
        seconds: the budget.
        start: ``perf_counter()`` when the run (this process's part of it) began.
        spent: seconds already spent by the run before a resume.
        val_iterations: the first validation's time estimate, in training iterations.
    """

    END_S = 1.5  # curves.png, the score table, closing the logs (measured ~1 s with matplotlib)

    def __init__(self, seconds: float, start: float, spent: float = 0.0,
                 val_iterations: float = 0.0):
        self.deadline = start + seconds - spent
        self._iters: deque[float] = deque(maxlen=50)
        self.val_iterations = val_iterations
        self.val_s: float | None = None
        self.save_s = 0.5

    def add_iteration(self, seconds: float) -> None:
        self._iters.append(seconds)

    @property
    def iter_s(self) -> float:
        """Seconds per training iteration (0 before the first)."""
        return float(np.mean(self._iters)) if self._iters else 0.0

    @property
    def val_cost(self) -> float:
        return self.val_s if self.val_s is not None else self.val_iterations * self.iter_s

    @property
    def reserve(self) -> float:
        """Seconds kept for the final validation, checkpoint and curves."""
        return self.val_cost + self.save_s + self.END_S

    def left(self, now: float | None = None) -> float:
        return self.deadline - (time.perf_counter() if now is None else now)

    def no_time_for(self, seconds: float, now: float | None = None) -> bool:
        """Whether ``seconds`` more work would eat into the reserve."""
        return seconds + self.reserve > self.left(now)

    def fit(self, it: int, iters_per_epoch: int, val_every: int,
            now: float | None = None) -> int:
        """Total iterations for the schedule: ``it`` done plus those that fit in the time left
        after the reserve and the per-epoch checkpoints / validations they will cross."""
        if not self._iters:
            return it + 1
        left = self.left(now) - self.reserve
        n = max(0.0, left / self.iter_s)
        for _ in range(2):  # the checkpoints and validations at the epoch ends crossed
            ends = int((it + n) // iters_per_epoch - it // iters_per_epoch)
            vals = int((it + n) // (iters_per_epoch * val_every)
                       - it // (iters_per_epoch * val_every))
            n = max(0.0, (left - ends * self.save_s - vals * self.val_cost) / self.iter_s)
        return it + int(n)


# ----------------------------------------------------------------------------- EMA
class ModelEMA:
    """Exponential moving average of a model's weights and BatchNorm statistics, updated after
    every optimiser step (torchvision reference's ``ExponentialMovingAverage``, timm's
    ``ModelEmaV2``): ``ema = d * ema + (1 - d) * w`` with ``d = min(decay, (1 + n) / (10 + n))``
    after ``n`` updates (the warm-up of TensorFlow's ``ExponentialMovingAverage(num_updates)``),
    so the average does not remember the random initialisation. Integer buffers
    (``num_batches_tracked``) are copied.

    Args:
        model: the model being trained (a DDP wrapper is unwrapped); its weights are copied.
        decay: per-iteration decay in (0, 1), e.g. 0.998 (an average over ~500 iterations).
    """

    def __init__(self, model: nn.Module, decay: float):
        import copy

        from segprep.train.checkpoint import unwrap

        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay must be in (0, 1), not {decay}")
        self.decay = float(decay)
        self.updates = 0
        source = unwrap(model)
        self.module = copy.deepcopy(source).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)
        pairs = list(zip(self.module.state_dict().values(), source.state_dict().values()))
        self._float = [(e, m) for e, m in pairs if e.dtype.is_floating_point]
        self._other = [(e, m) for e, m in pairs if not e.dtype.is_floating_point]

    @torch.no_grad()
    def update(self) -> None:
        """Fold the model's current weights into the average (call after ``optimizer.step()``)."""
        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        torch._foreach_lerp_([e for e, _ in self._float], [m for _, m in self._float], 1.0 - d)
        for e, m in self._other:
            e.copy_(m)

    def state_dict(self) -> dict:
        return {"module": self.module.state_dict(), "updates": self.updates,
                "decay": self.decay}

    def load_state_dict(self, state: dict) -> None:
        self.module.load_state_dict(state["module"])
        self.updates = int(state["updates"])


# ----------------------------------------------------------------------------- distributed
@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        return self.rank == 0


_OWNED_GROUP: list[bool] = []


def init_distributed(device_type: str) -> Dist:
    """Join the process group when launched by ``torchrun`` (``WORLD_SIZE`` > 1)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("nccl" if device_type == "cuda" else "gloo")
        _OWNED_GROUP.append(True)  # destroyed by main() when the run ends
    return Dist(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def _all_reduce_sum(values: torch.Tensor, d: Dist) -> torch.Tensor:
    if d.enabled:
        import torch.distributed as dist

        dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values


# ----------------------------------------------------------------------------- one epoch
def _oom_error(exc: BaseException, cfg: TrainConfig, device: torch.device) -> SegprepError:
    where = "--batch-size"
    shape = f"crop {cfg.crop[0]}x{cfg.crop[1]}" if cfg.crop else (
        f"size {cfg.size[0]}x{cfg.size[1]}" if cfg.size else "full frames")
    tips = [f"a smaller --batch-size (now {cfg.batch_size})",
            "a smaller --crop or --size" if cfg.crop or cfg.size else "--crop HxW",
            "a smaller --base-channels"]
    if cfg.amp is False:
        tips.insert(1, "--amp")
    return SegprepError(where, f"out of memory on {device.type} at batch {cfg.batch_size}, "
                               f"{shape}: try {', '.join(tips)}")


def _is_oom(exc: BaseException) -> bool:
    if isinstance(exc, torch.cuda.OutOfMemoryError):
        return True
    text = str(exc)
    return isinstance(exc, RuntimeError) and ("out of memory" in text
                                               or "can't allocate memory" in text
                                               or "not enough memory" in text)


def train_one_epoch(model: nn.Module, loader, criterion: nn.Module,
                    optimizer: torch.optim.Optimizer, scheduler, scaler, device: torch.device,
                    *, amp: torch.dtype | None = None, channels_last: bool = False,
                    progress: bool = False,
                    desc: str = "train", dist_info: Dist | None = None,
                    after_step: Callable[[float], bool] | None = None,
                    ema: ModelEMA | None = None) -> dict:
    """One pass over ``loader``; the scheduler steps every iteration.

    Args:
        after_step: called after every iteration with its wall time in seconds (batch wait
            included); returning True ends the epoch there (the time budget's mid-epoch stop).
            Under DDP it must return the same on every rank.
        ema: a :class:`ModelEMA` updated after every optimiser step, or None.

    Returns:
        ``{"loss": mean loss over iterations (averaged over ranks), "images": images seen by this
        rank, "seconds": wall time, "data_wait_s": time spent waiting for batches,
        "iterations": n, "stopped_early": whether ``after_step`` ended the epoch}``.
    """
    from tqdm import tqdm

    model.train()
    total = torch.zeros(2, dtype=torch.float64, device=device)  # loss sum, iterations
    images = 0
    wait = 0.0
    start = time.perf_counter()
    bar = tqdm(total=len(loader), desc=desc, disable=not progress, leave=False, unit="it",
               dynamic_ncols=True, file=sys.stderr)
    t0 = time.perf_counter()
    shown = -math.inf
    stopped_early = False
    for imgs, masks in loader:
        t_iter = t0
        wait += time.perf_counter() - t0
        x = to_model_input(imgs, device, channels_last)
        y = masks.to(device, non_blocking=True).long()
        with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
            loss = criterion(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None and scaler.is_enabled():
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        scheduler.step()
        if ema is not None:
            ema.update()
        total[0] += loss.detach().double()
        total[1] += 1
        images += imgs.shape[0]
        if progress:
            now = time.perf_counter()
            if now - shown >= 1.0:  # .item() syncs with the GPU: once a second at most
                shown = now
                bar.set_postfix(loss=f"{(total[0] / total[1]).item():.4f}",
                                img_s=f"{images / max(now - start, 1e-9):.1f}", refresh=False)
            bar.update()
        t0 = time.perf_counter()
        if after_step is not None and after_step(t0 - t_iter):
            stopped_early = True
            break
    bar.close()
    seconds = time.perf_counter() - start
    if dist_info is not None:
        _all_reduce_sum(total, dist_info)
    n = int(total[1].item())
    return {"loss": float(total[0].item() / max(n, 1)), "images": images, "seconds": seconds,
            "data_wait_s": wait, "iterations": n // (dist_info.world if dist_info else 1),
            "stopped_early": stopped_early}


@torch.no_grad()
def evaluate(model: nn.Module, loader, num_classes: int, device: torch.device, *,
             amp: torch.dtype | None = None, channels_last: bool = False,
             dist_info: Dist | None = None,
             progress: bool = False) -> ConfusionMatrix:
    """Confusion matrix of ``model`` on ``loader`` (masks with 255 = ignore), summed over ranks.

    Returns:
        A :class:`segprep.metrics.ConfusionMatrix` (``.scores()`` gives IoU / mIoU / accuracies).
    """
    from tqdm import tqdm

    model.eval()
    cm = ConfusionMatrix(num_classes, IGNORE)
    acc = torch.zeros((num_classes, num_classes + 1), dtype=torch.int64, device=device)
    from segprep.metrics import confusion_matrix_torch

    for imgs, masks in tqdm(loader, desc="val", disable=not progress, leave=False,
                            file=sys.stderr, dynamic_ncols=True):
        x = to_model_input(imgs, device, channels_last)
        with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
            pred = model(x).argmax(1)
        acc += confusion_matrix_torch(masks.to(device, non_blocking=True), pred, num_classes,
                                      IGNORE)
    if dist_info is not None:
        _all_reduce_sum(acc, dist_info)
    cm.merge(acc.cpu().numpy())
    return cm


# ----------------------------------------------------------------------------- setup helpers
def resolve_device(name: str) -> torch.device:
    """``auto`` → CUDA if available, else CPU.

    Raises:
        SegprepError: ``cuda`` asked for but not available.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise SegprepError("--device", "CUDA is not available on this machine (use cpu or auto)")
    return dev


def resolve_classes(cfg: TrainConfig):
    """``(num_classes, class_names, class_map or None)`` from ``--class-map`` / ``--num-classes``.

    Raises:
        SegprepError: neither given, or both given and disagreeing.
    """
    class_map = None
    if cfg.class_map:
        from segprep.class_maps import load

        class_map = load(cfg.class_map)
        k = class_map.num_classes
        if cfg.num_classes is not None and cfg.num_classes != k:
            raise SegprepError("--num-classes", f"{cfg.num_classes} disagrees with class map "
                                                f"{class_map.name} ({k} classes)")
        names = list(class_map.train_names)
    elif cfg.num_classes:
        k = int(cfg.num_classes)
        names = [f"class_{i}" for i in range(k)]
    else:
        raise SegprepError("--class-map", "give --class-map NAME or --num-classes K")
    if k < 1 or k > 255:
        raise SegprepError("--num-classes", f"must be in 1..255, got {k}")
    return k, names, class_map


def class_weight_tensor(cfg: TrainConfig, num_classes: int) -> torch.Tensor | None:
    """``(K,)`` float32 class weights from a ``segprep odgt stats`` JSON, or None.

    Read by :func:`segprep.stats.load_class_weights` (``class_weights[kind]``).

    Raises:
        SegprepError: unreadable JSON, missing kind, or a weight count that is not K.
    """
    if not cfg.class_weights:
        return None
    from segprep.stats import load_class_weights

    path = cfg.class_weights
    w = np.asarray(load_class_weights(path, kind=cfg.class_weight_kind), np.float32)
    if w.shape != (num_classes,):
        raise SegprepError(path, f"{w.size} class weights for {num_classes} classes")
    if not np.all(np.isfinite(w)) or (w < 0).any():
        raise SegprepError(path, "class weights must be finite and >= 0")
    return torch.from_numpy(w)


def cpu_has_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX512-BF16 or AMX), where oneDNN runs
    bf16 convolutions several times faster than float32."""
    for name in ("_is_amx_tile_supported", "_is_avx512_bf16_supported"):
        fn = getattr(torch.cpu, name, None)
        try:
            if fn is not None and fn():
                return True
        except Exception:  # pragma: no cover - private API changed
            pass
    return False


def amp_dtype(device: torch.device, amp: bool | None) -> torch.dtype | None:
    """Autocast dtype: CUDA float16 (with a GradScaler); CPU bfloat16 (no scaler needed).
    ``amp=None`` (auto) turns it on for CUDA and for CPUs with native bf16; ``False`` is off.
    ``True`` on a CPU without native bf16 still uses bf16 (emulated, slower)."""
    if amp is False:
        return None
    if device.type == "cuda":
        return torch.float16
    if device.type == "cpu" and (amp or cpu_has_bf16()):
        return torch.bfloat16
    return None


def default_workers(device: torch.device) -> int:
    """DataLoader workers when ``--workers`` is not given: up to 8 on CUDA; on CPU 0 (the model
    step needs every core and the loading runs in the main process)."""
    if device.type == "cuda":
        return min(8, os.cpu_count() or 1)
    return 0


def _param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """No weight decay on biases and BatchNorm parameters (as torchvision's ``norm_weight_decay``
    option with 0)."""
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for p in model.parameters():
        if p.requires_grad:
            (no_decay if p.ndim <= 1 else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0}]


def build_optimizer(cfg: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    lr = cfg.lr if cfg.lr is not None else (1e-3 if cfg.optimizer == "adamw" else 0.01)
    groups = _param_groups(model, cfg.weight_decay)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=lr)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=cfg.momentum)
    raise SegprepError("--optimizer", f"unknown optimizer {cfg.optimizer!r} (adamw, sgd)")


def _val_iterations(cfg: TrainConfig, train_recs, val_recs, world: int) -> float:
    """A validation's time in training iterations, before one is measured: this rank's val
    frames x pixels / (batch x training pixels), x 0.5 (forward only, no backward or optimiser)."""
    if not val_recs:
        return 0.0
    from segprep.io import image_size

    def pixels(rec) -> float:
        try:
            w, h = image_size(rec.image)
        except SegprepError:
            return 1.0
        return float(w * h)

    val_px = float(cfg.size[0] * cfg.size[1]) if cfg.size else pixels(val_recs[0])
    train_px = float(cfg.crop[0] * cfg.crop[1]) if cfg.crop else (
        float(cfg.size[0] * cfg.size[1]) if cfg.size else pixels(train_recs[0]))
    frames = math.ceil(len(val_recs) / world)
    return 0.5 * frames * val_px / (cfg.batch_size * max(train_px, 1.0))


def _read_rows(path: Path, upto_epoch: int) -> list[dict]:
    if not path.is_file():
        return []
    with open(path, newline="", encoding="utf-8") as fh:
        return [r for r in csv.DictReader(fh) if int(r["epoch"]) <= upto_epoch]


def _write_rows(path: Path, rows: list[dict]) -> None:
    import io

    from segprep.io import atomic_write_text

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buf.getvalue())


def plot_curves(rows: list[dict], path: Path) -> None:
    """``curves.png``: train loss and val mIoU per epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ep = [int(r["epoch"]) for r in rows]
    loss = [float(r["train_loss"]) for r in rows]
    val = [(int(r["epoch"]), float(r["val_miou"])) for r in rows if r.get("val_miou") not in
           ("", None)]
    from matplotlib.ticker import MaxNLocator

    fig, ax = plt.subplots(1, 2, figsize=(10, 3.6))
    for a in ax:
        a.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax[0].plot(ep, loss, marker=".")
    ax[0].set_xlabel("epoch")
    ax[0].set_ylabel("train loss")
    ax[0].grid(alpha=0.3)
    if val:
        ax[1].plot([v[0] for v in val], [v[1] for v in val], marker=".", color="C1")
    ax[1].set_xlabel("epoch")
    ax[1].set_ylabel("val mIoU")
    ax[1].grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def format_scores(scores, names: list[str]) -> str:
    """A per-class IoU table (one line per class, then mIoU and pixel accuracy)."""
    width = max(10, max(len(n) for n in names))
    lines = [f"{'class':<{width}}  IoU"]
    for n, v in zip(names, scores.iou):
        lines.append(f"{n:<{width}}  {'  n/a' if not np.isfinite(v) else f'{v:.4f}'}")
    lines.append(f"{'mIoU':<{width}}  {scores.miou:.4f}")
    lines.append(f"{'pixel acc':<{width}}  {scores.pixel_accuracy:.4f}")
    return "\n".join(lines)


def _say(msg: str, d: Dist, cfg: TrainConfig) -> None:
    if d.main and not cfg.quiet:
        print(msg, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- run folder
RUN_FILES = ("last.pt", "best.pt", "best_scores.json", "metrics.csv", "args.json", "curves.png")
"""The files a run writes into its folder (and ``tb/``); ``--overwrite`` removes these only."""

_HOLDS_RUN = ("last.pt", "best.pt", "best_scores.json")


def holds_run(run_dir: Path) -> bool:
    """Whether ``run_dir`` holds a run's checkpoint or scores (so a new run would mix with it)."""
    return any((run_dir / name).exists() for name in _HOLDS_RUN)


def remove_stale_temps(run_dir: Path) -> list[Path]:
    """Delete the temp files (``.NAME.*.tmp``) that atomic writes killed mid-way left behind.

    Returns:
        The files removed.
    """
    removed = []
    for name in RUN_FILES:
        for tmp in run_dir.glob(f".{name}.*.tmp"):
            try:
                tmp.unlink()
                removed.append(tmp)
            except FileNotFoundError:  # pragma: no cover - removed meanwhile
                pass
    return removed


def clear_run(run_dir: Path) -> None:
    """``--overwrite``: remove a previous run's files (:data:`RUN_FILES`, ``tb/``, temp files);
    anything else in the folder (e.g. the manifests ``train_camvid.sh`` keeps there) stays."""
    import shutil

    for name in RUN_FILES:
        path = run_dir / name
        if path.is_file() or path.is_symlink():
            path.unlink()
    if (run_dir / "tb").is_dir():
        shutil.rmtree(run_dir / "tb")
    remove_stale_temps(run_dir)


def repair_run(run_dir: Path, ckpt: dict, source: Path) -> tuple[dict, list[str]]:
    """Make ``best.pt`` and ``best_scores.json`` agree with the checkpoint a resume starts from.

    Every epoch writes ``metrics.csv``, then ``last.pt`` (the resume point), then ``best.pt``
    (a hard link to ``last.pt``) and ``best_scores.json`` when the mIoU improved; a kill between
    these leaves the later ones stale or missing. ``last.pt`` records which epoch ``best.pt``
    holds and its scores, so: a ``best.pt`` of the wrong epoch (or missing) is rebuilt from
    ``last.pt`` when that is the best epoch; ``best_scores.json`` is rewritten from the scores in
    ``last.pt``. A best model that cannot be rebuilt (deleted by hand) is forgotten, so the next
    validation writes a new ``best.pt``.

    Args:
        run_dir: the run folder.
        ckpt: the checkpoint loaded from ``source``.
        source: the file ``ckpt`` came from.

    Returns:
        ``(ckpt, notes)``: the checkpoint (``best_miou`` / ``best_epoch`` cleared if the best
        model is lost) and one line per repair made.
    """
    from segprep.io import write_json
    from segprep.train.checkpoint import link_checkpoint, load_checkpoint

    notes: list[str] = []
    best_epoch = ckpt.get("best_epoch")
    if best_epoch is None:
        return ckpt, notes
    best = run_dir / "best.pt"
    held = None
    if best.is_file():
        try:
            held = int(load_checkpoint(best)["epoch"])
        except SegprepError:
            held = None
    if held != best_epoch:
        if int(ckpt["epoch"]) == int(best_epoch) and source.resolve() != best.resolve():
            link_checkpoint(source, best)
            notes.append(f"best.pt (epoch {best_epoch}) rebuilt from {source.name}")
        else:
            notes.append(f"best.pt of epoch {best_epoch} is missing and cannot be rebuilt; the "
                         "next validation writes a new one")
            ckpt = dict(ckpt, best_miou=None, best_epoch=None, best_scores=None)
            return ckpt, notes
    scores = ckpt.get("best_scores")
    if scores:
        path = run_dir / "best_scores.json"
        try:
            current = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            current = None
        if current != scores:
            write_json(path, scores)
            notes.append(f"best_scores.json (epoch {best_epoch}) rewritten from {source.name}")
    return ckpt, notes


# ----------------------------------------------------------------------------- set-up
@dataclass
class Setup:
    """What :func:`set_up` decides: the configuration, where and how the run computes."""

    cfg: TrainConfig
    run_dir: Path
    ckpt: dict | None  # the checkpoint a resume starts from
    ckpt_path: Path | None
    device: torch.device
    dist: Dist
    amp: torch.dtype | None
    channels_last: bool
    threads_note: str
    t_main: float  # perf_counter() when the run (this process's part) began


def set_up(cfg: TrainConfig | None, resume: str | None, overrides: dict | None,
           t_main: float) -> Setup:
    """The configuration (a new one, or the stored one of ``resume`` with ``overrides``),
    checked; the run folder's state checked (a new run refuses a folder holding a run unless
    ``cfg.overwrite``, which clears it); device, distributed group, threads, precision,
    determinism and seeds."""
    from segprep.train.checkpoint import load_checkpoint

    ckpt = ckpt_path = None
    if resume:
        ckpt_path = Path(resume) / "last.pt" if Path(resume).is_dir() else Path(resume)
        ckpt = load_checkpoint(ckpt_path)
        cfg = TrainConfig.from_dict(ckpt["args"])
        cfg.out = str(ckpt_path.parent)
        cfg.stop_after = None  # an interruption is not part of the run's definition
        cfg.overwrite = False
        for k, v in (overrides or {}).items():
            setattr(cfg, k, v)
    if cfg is None:
        raise SegprepError("--out", "nothing to train: give a configuration or --resume RUN_DIR")
    if not cfg.out:
        raise SegprepError("--out", "missing run folder")
    cfg.validate()
    run_dir = Path(cfg.out)
    if run_dir.exists() and not run_dir.is_dir():
        raise SegprepError(run_dir, "is a file, not a run folder")
    if ckpt is None and holds_run(run_dir) and not cfg.overwrite:
        raise SegprepError(run_dir, "already holds a run (last.pt / best.pt); continue it with "
                                    "--resume, or replace it with --overwrite")

    device = resolve_device(cfg.device)
    d = init_distributed(device.type)
    if device.type == "cuda" and d.enabled:
        device = torch.device("cuda", d.local_rank)
        torch.cuda.set_device(device)
    threads_note = ""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    elif device.type == "cpu":  # the cores other processes leave free (segprep.train.threads)
        from segprep.io import default_jobs
        from segprep.train.threads import cpu_load, cpu_threads

        torch.set_num_threads(cpu_threads())
        load = cpu_load()
        threads_note = (f" (auto: {default_jobs()} cores"
                        f"{f', load {load:.1f}' if load is not None else ''}; --threads to set)")
    amp = amp_dtype(device, cfg.amp)
    channels_last = True if cfg.channels_last is None else cfg.channels_last
    if cfg.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
        if device.type == "cuda":
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    elif device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    import random

    random.seed(cfg.seed)
    return Setup(cfg, run_dir, ckpt, ckpt_path, device, d, amp, channels_last, threads_note,
                 t_main)


# ----------------------------------------------------------------------------- data
@dataclass
class Data:
    """Classes, records, datasets and loaders of a run (:func:`build_data`)."""

    num_classes: int
    names: list[str]
    class_map: Any  # ClassMap | None
    train_recs: list
    val_recs: list | None
    train_ds: Any  # SegDataset
    sampler: Any  # EpochSampler
    train_loader: Any  # DataLoader
    val_loader: Any  # DataLoader | None
    iters_per_epoch: int
    workers: int


def build_data(s: Setup) -> Data:
    """Manifests → datasets (training with the configured augmentation, validation resized
    only) → loaders (one shard per rank; validation sharded without padding)."""
    from torch.utils.data import DataLoader

    from segprep.train.data import EpochSampler, SegDataset, pad_collate, read_records

    cfg, d, device = s.cfg, s.dist, s.device
    num_classes, names, class_map = resolve_classes(cfg)
    if not cfg.train:
        raise SegprepError("--train", "missing training manifest")
    train_recs = read_records(cfg.train, cfg.root)
    val_recs = read_records(cfg.val, cfg.root) if cfg.val else None
    train_ds = SegDataset(train_recs, num_classes, cfg.ignore_index, size=cfg.size,
                          crop=cfg.crop, scale=cfg.scale, flip=cfg.flip, jitter=cfg.color_jitter,
                          hue=cfg.hue, augment=True, seed=cfg.seed, cache=cfg.cache)
    workers = default_workers(device) if cfg.workers is None else cfg.workers
    sampler = EpochSampler(train_ds, shuffle=True, seed=cfg.seed, num_replicas=d.world,
                           rank=d.rank)
    drop_last = len(sampler) >= cfg.batch_size  # no size-1 last batch for BatchNorm
    loader_kw: dict[str, Any] = dict(num_workers=workers, collate_fn=pad_collate,
                     pin_memory=device.type == "cuda", persistent_workers=workers > 0)
    train_loader = DataLoader(train_ds, batch_size=cfg.batch_size, sampler=sampler,
                              drop_last=drop_last, **loader_kw)
    val_loader = None
    if val_recs is not None:
        val_ds = SegDataset(val_recs, num_classes, cfg.ignore_index, size=cfg.size,
                            augment=False, cache=cfg.cache)
        val_idx = list(range(d.rank, len(val_ds), d.world))  # exact shards, no padding
        val_loader = DataLoader(val_ds, batch_size=cfg.val_batch_size or cfg.batch_size,
                                sampler=val_idx, **loader_kw)
    iters_per_epoch = len(train_loader)
    if iters_per_epoch == 0:
        raise SegprepError(cfg.train, "no training batch (empty manifest?)")
    return Data(num_classes, names, class_map, train_recs, val_recs, train_ds, sampler,
                train_loader, val_loader, iters_per_epoch, workers)


# ----------------------------------------------------------------------------- model / optimiser
@dataclass
class Training:
    """The model and what updates it, and where the run stands (:func:`build_training`)."""

    model: nn.Module  # the bare model
    ddp_model: nn.Module  # what the training step calls (DDP-wrapped under torchrun)
    ema: ModelEMA | None
    criterion: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler | None
    poly: PolyWarmup
    epochs: int  # the schedule's epoch count (provisional for a time-budget run)
    auto_epochs: bool  # the schedule is fitted to the time budget
    start_epoch: int = 0
    best_miou: float | None = None
    best_epoch: int | None = None
    best_scores: dict | None = None
    elapsed0: float = 0.0  # seconds spent before this resume
    epoch_times: list[float] = dataclasses.field(default_factory=list)


def build_training(s: Setup, data: Data) -> Training:
    """Model (on the device, channels_last, SyncBatchNorm under DDP), loss, optimiser, poly
    schedule, GradScaler, EMA; restored from the checkpoint when resuming (RNG states too)."""
    from segprep.model import build_model
    from segprep.train.checkpoint import set_rng_state, unwrap
    from segprep.train.losses import build_loss

    cfg, ckpt, device, d = s.cfg, s.ckpt, s.device, s.dist
    try:
        model = build_model(num_classes=data.num_classes, base_channels=cfg.base_channels,
                            depth=cfg.depth, encoder=cfg.encoder,
                            pretrained=None if ckpt is not None else cfg.pretrained)
    except (ImportError, FileNotFoundError, ValueError) as exc:
        raise SegprepError("--encoder" if cfg.encoder else "--base-channels", str(exc)) from None
    if d.enabled and device.type == "cuda":
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    model.to(device)
    if s.channels_last:
        model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    weight = class_weight_tensor(cfg, data.num_classes)
    try:
        criterion = build_loss(cfg.loss, weight, IGNORE).to(device)
    except ValueError as exc:
        raise SegprepError("--loss", str(exc)) from None
    optimizer = build_optimizer(cfg, model)
    ipe = data.iters_per_epoch
    auto_epochs = cfg.epochs is None and cfg.time_budget is not None
    epochs = cfg.epochs if cfg.epochs is not None else (
        PROVISIONAL_EPOCHS if cfg.time_budget is not None else 50)
    poly = PolyWarmup(epochs * ipe, int(round(cfg.warmup_epochs * ipe)), cfg.poly_power)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, poly)
    scaler = torch.amp.GradScaler("cuda", enabled=s.amp == torch.float16) \
        if device.type == "cuda" else None
    t = Training(model, model, None, criterion, optimizer, scheduler, scaler, poly, epochs,
                 auto_epochs)
    if ckpt is not None:
        unwrap(model).load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        if scaler is not None and ckpt.get("scaler"):
            scaler.load_state_dict(ckpt["scaler"])
        t.start_epoch = int(ckpt["epoch"])
        t.best_miou = ckpt.get("best_miou")
        t.best_epoch = ckpt.get("best_epoch")
        t.best_scores = ckpt.get("best_scores")
        t.elapsed0 = float(ckpt.get("elapsed_s", 0.0))
        t.epoch_times = [float(x) for x in ckpt.get("epoch_times", [])]
        if "rng" in ckpt:
            set_rng_state(ckpt["rng"])
        if cfg.epochs is not None and not auto_epochs:
            poly.total = cfg.epochs * ipe  # --epochs given on resume extends the run
        if not auto_epochs:
            t.epochs = max(1, round(poly.total / ipe))
    if cfg.ema:
        t.ema = ModelEMA(model, cfg.ema)
        if ckpt is not None and ckpt.get("ema"):
            t.ema.load_state_dict(ckpt["ema"])
    if d.enabled:
        from torch.nn.parallel import DistributedDataParallel as DDP

        t.ddp_model = DDP(model, device_ids=[device.index] if device.type == "cuda" else None)
    return t


# ----------------------------------------------------------------------------- checkpoint
def save_epoch(s: Setup, data: Data, t: Training, epoch: int, elapsed: float,
               improved: bool, scores) -> None:
    """Write this epoch's checkpoint: ``last.pt`` (atomic; the resume point), then, when the
    validation mIoU improved, ``best.pt`` (a hard link to the same file, renamed into place)
    and ``best_scores.json``. ``last.pt`` records the best epoch and its scores, so a resume
    after a kill between these writes rebuilds what is missing (:func:`repair_run`)."""
    from segprep.io import write_json
    from segprep.model import MEAN, STD
    from segprep.train.checkpoint import (
        FORMAT,
        link_checkpoint,
        make_meta,
        rng_state,
        save_checkpoint,
        unwrap,
    )

    cfg = s.cfg
    if improved:
        t.best_scores = {"epoch": epoch, **scores.to_dict(data.names)}
    meta = make_meta(t.model, num_classes=data.num_classes, ignore_index=cfg.ignore_index,
                     class_map=data.class_map, class_names=data.names, mean=MEAN, std=STD,
                     epoch=epoch, best_miou=t.best_miou, args=cfg.to_dict())
    state = {
        "format": FORMAT, "model": unwrap(t.model).state_dict(), "meta": meta,
        "optimizer": t.optimizer.state_dict(), "scheduler": t.scheduler.state_dict(),
        "scaler": t.scaler.state_dict() if t.scaler is not None else None,
        "ema": t.ema.state_dict() if t.ema is not None else None,
        "rng": rng_state(), "epoch": epoch, "best_miou": t.best_miou,
        "best_epoch": t.best_epoch, "best_scores": t.best_scores, "elapsed_s": elapsed,
        "epoch_times": t.epoch_times, "args": cfg.to_dict(),
    }
    save_checkpoint(s.run_dir / "last.pt", state)
    if improved:
        link_checkpoint(s.run_dir / "last.pt", s.run_dir / "best.pt")
        write_json(s.run_dir / "best_scores.json", t.best_scores)


# ----------------------------------------------------------------------------- main
def main(cfg: TrainConfig | None = None, resume: str | None = None,
         overrides: dict | None = None) -> dict:
    """Train (or resume) a run; see :func:`_main`. Torch's global settings that the run changes
    (CPU threads, deterministic algorithms, cuDNN benchmark) are restored afterwards."""
    saved = (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled(),
             torch.is_deterministic_algorithms_warn_only_enabled(),
             torch.backends.cudnn.benchmark)
    try:
        return _main(cfg, resume, overrides)
    finally:
        if _OWNED_GROUP:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()
            _OWNED_GROUP.clear()
        torch.set_num_threads(saved[0])
        torch.use_deterministic_algorithms(saved[1], warn_only=saved[2])
        torch.backends.cudnn.benchmark = saved[3]


def _prepare_outputs(s: Setup, t: Training) -> tuple[list[dict], object]:
    """Rank 0: the run folder (cleared with ``--overwrite``; stale temp files removed; a resumed
    run repaired), ``args.json``, the ``metrics.csv`` rows so far and the TensorBoard writer."""
    from segprep.io import write_json

    cfg, run_dir = s.cfg, s.run_dir
    if s.ckpt is None and cfg.overwrite and run_dir.is_dir():
        clear_run(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    stale = remove_stale_temps(run_dir)
    if stale:
        _say(f"removed {len(stale)} temp file(s) of an interrupted run", s.dist, cfg)
    if s.ckpt is not None:
        assert s.ckpt_path is not None
        fixed, notes = repair_run(run_dir, s.ckpt, s.ckpt_path)
        t.best_miou, t.best_epoch = fixed.get("best_miou"), fixed.get("best_epoch")
        t.best_scores = fixed.get("best_scores")
        for note in notes:
            _say(f"segprep: {note}", s.dist, cfg)
    write_json(run_dir / "args.json", cfg.to_dict())
    rows = _read_rows(run_dir / "metrics.csv", t.start_epoch)
    writer = None
    if cfg.tensorboard:
        try:
            from torch.utils.tensorboard import SummaryWriter

            writer = SummaryWriter(str(run_dir / "tb"), purge_step=t.start_epoch + 1)
        except ImportError:
            writer = None
    return rows, writer


def _epoch_row(epoch: int, it: int, t: Training, stats: dict, scores, ep_time: float,
               elapsed: float, world: int) -> dict:
    def fmt(name: str) -> str:
        return "" if scores is None else f"{getattr(scores, name):.6f}"

    return {"epoch": epoch, "iterations": it,
            "lr": f"{t.optimizer.param_groups[0]['lr']:.6g}",
            "train_loss": f"{stats['loss']:.6f}",
            "val_miou": fmt("miou"), "val_pixel_accuracy": fmt("pixel_accuracy"),
            "val_mean_accuracy": fmt("mean_accuracy"),
            "train_images_per_s": f"{stats['images'] * world / stats['seconds']:.2f}",
            "data_wait_s": f"{stats['data_wait_s']:.2f}", "epoch_s": f"{ep_time:.2f}",
            "elapsed_s": f"{elapsed:.1f}"}


def _main(cfg: TrainConfig | None = None, resume: str | None = None,
          overrides: dict | None = None) -> dict:
    """Train (or resume) a run: :func:`set_up`, :func:`build_data`, :func:`build_training`,
    then per epoch :func:`train_one_epoch`, :func:`evaluate` and :func:`save_epoch`.

    Args:
        cfg: the configuration of a new run (ignored with ``resume``).
        resume: a run folder (or its ``last.pt``) to continue; its stored configuration is used,
            updated with ``overrides`` (e.g. ``epochs``, ``time_budget``, ``workers``).
        overrides: config fields to change on resume.

    Returns:
        ``{"run_dir", "epoch", "best_miou", "best_epoch", "scores" (Scores of the last
        validation or None), "stopped" ("epochs" | "time_budget" | "stop_after"),
        "class_names", "model" (the trained model, last epoch's weights; the EMA weights with
        ``ema``)}``.

    Raises:
        SegprepError: bad options or data (one line naming the file/option), out of memory, a
            folder that holds a run (without ``overwrite``).
    """
    s = set_up(cfg, resume, overrides, time.perf_counter())  # the time budget counts from here
    cfg, d, device = s.cfg, s.dist, s.device
    data = build_data(s)
    t = build_training(s, data)
    rows, writer = _prepare_outputs(s, t) if d.main else ([], None)
    if d.enabled:  # no rank reads the folder before rank 0 has cleared / repaired it
        import torch.distributed as dist

        dist.barrier()
    progress = d.main and not cfg.quiet and sys.stderr.isatty()
    _announce(s, data, t)
    budget = None
    if cfg.time_budget is not None:
        if d.main:  # curves.png's matplotlib import (~1-2 s) is paid now, not after the budget
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot  # noqa: F401
        budget = Budget(cfg.time_budget * 60, s.t_main, t.elapsed0,
                        _val_iterations(cfg, data.train_recs, data.val_recs, d.world))
    epochs = t.epochs
    if t.auto_epochs:
        if s.ckpt is not None and budget is not None and budget.left() <= budget.END_S:
            _say(f"nothing to train: the run already spent its {cfg.time_budget:g}-minute "
                 "budget (give a larger --time-budget to extend it)", d, cfg)
            epochs = t.start_epoch
    elif t.start_epoch >= epochs:
        _say(f"nothing to train: the run already finished {t.start_epoch} epochs (give --epochs N "
             f"to extend it)", d, cfg)
    ipe = data.iters_per_epoch

    def after_step(seconds: float) -> bool:
        """Time-budget runs: re-fit the schedule to the time left, stop before an iteration that
        would eat into the reserve (rank 0 decides, under DDP for every rank)."""
        assert budget is not None
        budget.add_iteration(seconds)
        it = t.scheduler.last_epoch
        stop = budget.no_time_for(budget.iter_s)
        if t.auto_epochs:
            t.poly.total = max(it, budget.fit(it, ipe, cfg.val_every))
            stop = stop or it >= t.poly.total
        if d.enabled:
            import torch.distributed as dist

            flag = torch.tensor([float(stop), float(t.poly.total)], dtype=torch.float64,
                                device=device)
            dist.broadcast(flag, 0)
            stop, t.poly.total = bool(flag[0].item()), int(flag[1].item())
        return stop

    last_scores = None
    stopped = "epochs"
    epoch = t.start_epoch
    while epoch < epochs:
        ep_start = time.perf_counter()
        data.sampler.set_epoch(epoch)
        try:
            stats = train_one_epoch(t.ddp_model, data.train_loader, t.criterion, t.optimizer,
                                    t.scheduler, t.scaler, device, amp=s.amp,
                                    channels_last=s.channels_last, progress=progress,
                                    desc=f"epoch {epoch + 1}/{epochs}"
                                    if not t.auto_epochs else f"epoch {epoch + 1}",
                                    dist_info=d,
                                    after_step=after_step if budget is not None else None,
                                    ema=t.ema)
        except Exception as exc:
            if _is_oom(exc):
                raise _oom_error(exc, cfg, device) from None
            raise
        if not math.isfinite(stats["loss"]):
            raise SegprepError("--lr", f"training diverged at epoch {epoch + 1} (loss "
                                       f"{stats['loss']}); try a lower --lr")
        epoch += 1
        it = t.scheduler.last_epoch
        last, why = _is_last_epoch(s, data, t, budget, stats, epoch, epochs, it)
        if why:
            stopped = why
        scores = None
        if data.val_loader is not None and (epoch % cfg.val_every == 0 or last):
            t_val = time.perf_counter()
            cm = evaluate(t.model if t.ema is None else t.ema.module, data.val_loader,
                          data.num_classes, device, amp=s.amp, channels_last=s.channels_last,
                          dist_info=d, progress=progress)
            scores = last_scores = cm.scores()
            if budget is not None:
                budget.val_s = time.perf_counter() - t_val
        ep_time = time.perf_counter() - ep_start
        t.epoch_times.append(ep_time)
        elapsed = t.elapsed0 + time.perf_counter() - s.t_main
        if t.auto_epochs:  # the epoch count shown: the schedule's, in (partial) epochs
            epochs = epoch if last else max(epoch + 1, math.ceil(t.poly.total / ipe))
        improved = scores is not None and (t.best_miou is None or scores.miou > t.best_miou)
        if scores is not None and improved:
            t.best_miou, t.best_epoch = float(scores.miou), epoch
        t_save = time.perf_counter()
        if d.main:
            _record_epoch(s, data, t, rows, writer, epoch, it, stats, scores, ep_time, elapsed,
                          improved, f"{epoch}" if stopped == "time_budget" or (
                              last and t.auto_epochs) else
                          f"{'~' if t.auto_epochs else ''}{epochs}")
        if budget is not None:
            budget.save_s = time.perf_counter() - t_save
        if last:
            break

    if d.main:
        _finish(s, data, t, rows, writer, last_scores)
    if d.enabled:  # every rank returns once rank 0 has written the run's files
        import torch.distributed as dist

        dist.barrier()
    from segprep.train.checkpoint import unwrap

    return {"run_dir": str(s.run_dir), "epoch": epoch, "best_miou": t.best_miou,
            "best_epoch": t.best_epoch, "scores": last_scores, "stopped": stopped,
            "class_names": data.names,
            "model": unwrap(t.model) if t.ema is None else t.ema.module}


def _announce(s: Setup, data: Data, t: Training) -> None:
    """The run's opening line (data, device, precision, threads) and a busy-CPU warning."""
    cfg, d, device = s.cfg, s.dist, s.device
    amp_note = f", amp {str(s.amp).split('.')[-1]}" if s.amp is not None else ""
    _say(f"segprep train: {len(data.train_ds)} train / "
         f"{len(data.val_recs) if data.val_recs else 0} val frames, "
         f"{data.num_classes} classes, {data.iters_per_epoch} it/epoch, device {device}"
         f"{' x' + str(d.world) if d.enabled else ''}, workers {data.workers}, "
         f"threads {torch.get_num_threads()}{s.threads_note}"
         f"{amp_note}"
         f"{', channels_last' if s.channels_last else ''}"
         f"{f', resuming after epoch {t.start_epoch}' if s.ckpt is not None else ''}", d, cfg)
    if device.type == "cpu" and cfg.threads and hasattr(os, "getloadavg"):
        load, cores = os.getloadavg()[0], os.cpu_count() or 1
        if torch.get_num_threads() > 1 and load > cores:
            _say(f"segprep: warning: the CPU is busy (load {load:.1f} on {cores} cores); torch's "
                 f"{torch.get_num_threads()} threads wait on each other when other processes "
                 "hold the cores, --threads 1 may train faster", d, cfg)


def _record_epoch(s: Setup, data: Data, t: Training, rows: list[dict], writer, epoch: int,
                  it: int, stats: dict, scores, ep_time: float, elapsed: float, improved: bool,
                  shown_total: str) -> None:
    """Rank 0 after an epoch: the ``metrics.csv`` row, TensorBoard scalars, the checkpoint
    (:func:`save_epoch`) and the epoch's line."""
    cfg, d = s.cfg, s.dist
    rows.append(_epoch_row(epoch, it, t, stats, scores, ep_time, elapsed, d.world))
    _write_rows(s.run_dir / "metrics.csv", rows)
    if writer is not None:
        writer.add_scalar("train/loss", stats["loss"], epoch)
        writer.add_scalar("train/lr", t.optimizer.param_groups[0]["lr"], epoch)
        if scores is not None:
            writer.add_scalar("val/mIoU", scores.miou, epoch)
            writer.add_scalar("val/pixel_accuracy", scores.pixel_accuracy, epoch)
    save_epoch(s, data, t, epoch, elapsed, improved, scores)
    msg = f"epoch {epoch}/{shown_total}  loss {stats['loss']:.4f}"
    if scores is not None:
        msg += f"  val mIoU {scores.miou:.4f}  pixAcc {scores.pixel_accuracy:.4f}"
    msg += (f"  lr {t.optimizer.param_groups[0]['lr']:.2e}  "
            f"{stats['images'] * d.world / stats['seconds']:.1f} img/s  {ep_time:.1f} s")
    _say(msg, d, cfg)


def _is_last_epoch(s: Setup, data: Data, t: Training, budget: Budget | None, stats: dict,
                   epoch: int, epochs: int, it: int) -> tuple[bool, str | None]:
    """Whether the epoch just trained is the run's last, and why (``"time_budget"``,
    ``"stop_after"``, or None for the planned end): the budget stopped it mid-epoch or leaves no
    time for this epoch's checkpoint (+ validation) and another iteration; under DDP every rank
    ends together."""
    cfg, d = s.cfg, s.dist
    last = epoch >= epochs and not t.auto_epochs
    why = None
    if budget is not None:
        if stats["stopped_early"] or (t.auto_epochs and it >= t.poly.total):
            last, why = True, "time_budget"
        elif not last:
            due = data.val_loader is not None and epoch % cfg.val_every == 0
            if budget.no_time_for(budget.save_s + (budget.val_cost if due else 0.0)
                                  + budget.iter_s):
                last, why = True, "time_budget"
        if d.enabled:
            import torch.distributed as dist

            flag = torch.tensor([float(last)], dtype=torch.float64, device=s.device)
            dist.broadcast(flag, 0)
            if bool(flag[0].item()) and not last:
                last, why = True, "time_budget"
    if cfg.stop_after is not None and epoch >= cfg.stop_after and not last:
        last, why = True, "stop_after"
    return last, why


def _finish(s: Setup, data: Data, t: Training, rows: list[dict], writer, last_scores) -> None:
    """Rank 0 at the end: ``curves.png``, the last validation's table, peak GPU memory, and
    where the best model is."""
    cfg, d, device = s.cfg, s.dist, s.device
    if rows:
        try:
            plot_curves(rows, s.run_dir / "curves.png")
        except Exception as exc:  # a plotting problem never loses a finished run
            _say(f"segprep: warning: curves.png not written ({exc})", d, cfg)
    if writer is not None:
        writer.close()
    if last_scores is not None:
        _say(format_scores(last_scores, data.names), d, cfg)
    if device.type == "cuda":
        _say(f"peak GPU memory {torch.cuda.max_memory_allocated(device) / 2**30:.2f} GiB "
             "(allocated by tensors)", d, cfg)
    if t.best_miou is not None and (s.run_dir / "best.pt").is_file():
        _say(f"best val mIoU {t.best_miou:.4f} at epoch {t.best_epoch} "
             f"({s.run_dir / 'best.pt'})", d, cfg)
