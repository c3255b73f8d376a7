"""One training epoch (:func:`train_one_epoch`) and one validation (:func:`evaluate`), as in
torchvision's ``references/segmentation/train.py``."""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Sequence

import torch
from torch import nn

from segprep.errors import SegprepError
from segprep.metrics import ConfusionMatrix
from segprep.model import MEAN, STD, encoder_norm_eval
from segprep.train.checkpoint import unwrap
from segprep.train.config import TrainConfig
from segprep.train.data import IGNORE, to_model_input
from segprep.train.distributed import Dist, all_reduce_sum
from segprep.train.schedule import ModelEMA


def oom_error(exc: BaseException, cfg: TrainConfig, device: torch.device) -> SegprepError:
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


def is_oom(exc: BaseException) -> bool:
    if isinstance(exc, torch.cuda.OutOfMemoryError):
        return True
    text = str(exc)
    return isinstance(exc, RuntimeError) and ("out of memory" in text
                                               or "can't allocate memory" in text
                                               or "not enough memory" in text)


def train_one_epoch(model: nn.Module, loader, criterion: nn.Module,
                    optimizer: torch.optim.Optimizer, scheduler, scaler, device: torch.device,
                    *, amp: torch.dtype | None = None, channels_last: bool = False,
                    mean: Sequence[float] = MEAN, std: Sequence[float] = STD,
                    progress: bool = False,
                    desc: str = "train", dist_info: Dist | None = None,
                    after_step: Callable[[float], bool] | None = None,
                    ema: ModelEMA | None = None, norm_eval: bool = False) -> dict:
    """One pass over ``loader``; the scheduler steps every iteration.

    Args:
        mean, std: the model's input normalisation of RGB / 255
            (:func:`segprep.model.input_normalisation`).
        after_step: called after every iteration with its wall time in seconds (batch wait
            included); returning True ends the epoch there (the time budget's mid-epoch stop).
            Under DDP it must return the same on every rank.
        ema: a :class:`ModelEMA` updated after every optimiser step, or None.
        norm_eval: keep the encoder's BatchNorm statistics
            (:func:`segprep.model.encoder_norm_eval`).

    Returns:
        ``{"loss": mean loss over iterations (averaged over ranks), "images": images seen by this
        rank, "seconds": wall time, "data_wait_s": time spent waiting for batches,
        "iterations": n, "stopped_early": whether ``after_step`` ended the epoch}``.
    """
    from tqdm import tqdm

    model.train()
    if norm_eval:
        encoder_norm_eval(unwrap(model))
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
        x = to_model_input(imgs, device, channels_last, mean, std)
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
        all_reduce_sum(total, dist_info)
    n = int(total[1].item())
    return {"loss": float(total[0].item() / max(n, 1)), "images": images, "seconds": seconds,
            "data_wait_s": wait, "iterations": n // (dist_info.world if dist_info else 1),
            "stopped_early": stopped_early}


@torch.no_grad()
def evaluate(model: nn.Module, loader, num_classes: int, device: torch.device, *,
             amp: torch.dtype | None = None, channels_last: bool = False,
             mean: Sequence[float] = MEAN, std: Sequence[float] = STD,
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
        x = to_model_input(imgs, device, channels_last, mean, std)
        with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
            pred = model(x).argmax(1)
        acc += confusion_matrix_torch(masks.to(device, non_blocking=True), pred, num_classes,
                                      IGNORE)
    if dist_info is not None:
        all_reduce_sum(acc, dist_info)
    cm.merge(acc.cpu().numpy())
    return cm


