"""``segprep train``'s driver, read top to bottom as torchvision's
``references/segmentation/train.py``: :func:`main` sets the run up
(:func:`segprep.train.setup.set_up`, :func:`~segprep.train.setup.build_data`,
:func:`~segprep.train.setup.build_training`), then per epoch trains
(:func:`segprep.train.engine.train_one_epoch`), validates (:func:`segprep.train.engine.evaluate`)
and checkpoints (:func:`save_epoch`; the folder's other files: :mod:`segprep.train.run_folder`).
Options: :class:`segprep.train.config.TrainConfig`; schedule, budget and EMA:
:mod:`segprep.train.schedule`; ``torchrun``: :mod:`segprep.train.distributed`.

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

import math
import os
import sys
import time
from collections.abc import Callable

import torch

from segprep.errors import SegprepError
from segprep.train.config import TrainConfig
from segprep.train.distributed import OWNED_GROUP, say
from segprep.train.engine import evaluate, is_oom, oom_error, train_one_epoch
from segprep.train.run_folder import (
    clear_run,
    format_scores,
    plot_curves,
    read_rows,
    remove_stale_temps,
    repair_run,
    write_rows,
)
from segprep.train.schedule import Budget
from segprep.train.setup import (
    Data,
    Setup,
    Training,
    build_data,
    build_training,
    set_up,
    val_iterations,
)


# ----------------------------------------------------------------------------- checkpoint
def save_epoch(s: Setup, data: Data, t: Training, epoch: int, elapsed: float,
               improved: bool, scores) -> None:
    """Write this epoch's checkpoint: ``last.pt`` (atomic; the resume point), then, when the
    validation mIoU improved, ``best.pt`` (a hard link to the same file, renamed into place)
    and ``best_scores.json``. ``last.pt`` records the best epoch and its scores, so a resume
    after a kill between these writes rebuilds what is missing (:func:`repair_run`)."""
    from segprep.io import write_json
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
                     class_map=data.class_map, class_names=data.names, mean=s.mean, std=s.std,
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
        if OWNED_GROUP:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()
            OWNED_GROUP.clear()
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
        say(f"removed {len(stale)} temp file(s) of an interrupted run", s.dist, cfg)
    if s.ckpt is not None:
        assert s.ckpt_path is not None
        fixed, notes = repair_run(run_dir, s.ckpt, s.ckpt_path)
        t.best_miou, t.best_epoch = fixed.get("best_miou"), fixed.get("best_epoch")
        t.best_scores = fixed.get("best_scores")
        for note in notes:
            say(f"segprep: {note}", s.dist, cfg)
    write_json(run_dir / "args.json", cfg.to_dict())
    rows = read_rows(run_dir / "metrics.csv", t.start_epoch)
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
    budget, epochs = _plan(s, data, t)
    after_step = _budget_step(s, t, budget, data.iters_per_epoch) if budget is not None else None

    last_scores = None
    stopped = "epochs"
    epoch = t.start_epoch
    while epoch < epochs:
        ep_start = time.perf_counter()
        data.sampler.set_epoch(epoch)
        try:
            stats = train_one_epoch(t.ddp_model, data.train_loader, t.criterion, t.optimizer,
                                    t.scheduler, t.scaler, device, amp=s.amp,
                                    channels_last=s.channels_last, mean=s.mean, std=s.std,
                                    progress=progress,
                                    desc=f"epoch {epoch + 1}/{epochs}"
                                    if not t.auto_epochs else f"epoch {epoch + 1}",
                                    dist_info=d,
                                    after_step=after_step,
                                    ema=t.ema, norm_eval=s.cfg.encoder_norm_eval)
        except Exception as exc:
            if is_oom(exc):
                raise oom_error(exc, cfg, device) from None
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
                          mean=s.mean, std=s.std,
                          dist_info=d, progress=progress)
            scores = last_scores = cm.scores()
            if budget is not None:
                budget.val_s = time.perf_counter() - t_val
        ep_time = time.perf_counter() - ep_start
        t.epoch_times.append(ep_time)
        elapsed = t.elapsed0 + time.perf_counter() - s.t_main
        if t.auto_epochs:  # the epoch count shown: the schedule's, in (partial) epochs
            epochs = epoch if last else max(epoch + 1, math.ceil(t.poly.total / data.iters_per_epoch))
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


def _plan(s: Setup, data: Data, t: Training) -> tuple[Budget | None, int]:
    """The run's time budget (None without ``--time-budget``) and the epoch count to train to
    (the start epoch when a resumed run has nothing left to do, which it says)."""
    cfg, d = s.cfg, s.dist
    budget = None
    if cfg.time_budget is not None:
        if d.main:  # curves.png's matplotlib import (~1-2 s) is paid now, not after the budget
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot  # noqa: F401
        budget = Budget(cfg.time_budget * 60, s.t_main, t.elapsed0,
                        val_iterations(cfg, data.train_recs, data.val_recs, d.world))
    epochs = t.epochs
    if t.auto_epochs:
        if s.ckpt is not None and budget is not None and budget.left() <= budget.END_S:
            say(f"nothing to train: the run already spent its {cfg.time_budget:g}-minute "
                "budget (give a larger --time-budget to extend it)", d, cfg)
            epochs = t.start_epoch
    elif t.start_epoch >= epochs:
        say(f"nothing to train: the run already finished {t.start_epoch} epochs (give --epochs N "
            f"to extend it)", d, cfg)
    return budget, epochs


def _budget_step(s: Setup, t: Training, budget: Budget, ipe: int) -> Callable[[float], bool]:
    """The per-iteration hook of a time-budget run: re-fit the schedule to the time left, stop
    before an iteration that would eat into the reserve (rank 0 decides, under DDP for every
    rank)."""
    cfg, d = s.cfg, s.dist

    def after_step(seconds: float) -> bool:
        budget.add_iteration(seconds)
        it = t.scheduler.last_epoch
        stop = budget.no_time_for(budget.iter_s)
        if t.auto_epochs:
            t.poly.total = max(it, budget.fit(it, ipe, cfg.val_every))
            stop = stop or it >= t.poly.total
        if d.enabled:
            import torch.distributed as dist

            flag = torch.tensor([float(stop), float(t.poly.total)], dtype=torch.float64,
                                device=s.device)
            dist.broadcast(flag, 0)
            stop, t.poly.total = bool(flag[0].item()), int(flag[1].item())
        return stop

    return after_step


def _announce(s: Setup, data: Data, t: Training) -> None:
    """The run's opening line (data, device, precision, threads) and a busy-CPU warning."""
    cfg, d, device = s.cfg, s.dist, s.device
    amp_note = f", amp {str(s.amp).split('.')[-1]}" if s.amp is not None else ""
    say(f"segprep train: {len(data.train_ds)} train / "
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
            say(f"segprep: warning: the CPU is busy (load {load:.1f} on {cores} cores); torch's "
                 f"{torch.get_num_threads()} threads wait on each other when other processes "
                 "hold the cores, --threads 1 may train faster", d, cfg)


def _record_epoch(s: Setup, data: Data, t: Training, rows: list[dict], writer, epoch: int,
                  it: int, stats: dict, scores, ep_time: float, elapsed: float, improved: bool,
                  shown_total: str) -> None:
    """Rank 0 after an epoch: the ``metrics.csv`` row, TensorBoard scalars, the checkpoint
    (:func:`save_epoch`) and the epoch's line."""
    cfg, d = s.cfg, s.dist
    rows.append(_epoch_row(epoch, it, t, stats, scores, ep_time, elapsed, d.world))
    write_rows(s.run_dir / "metrics.csv", rows)
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
    say(msg, d, cfg)


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
            say(f"segprep: warning: curves.png not written ({exc})", d, cfg)
    if writer is not None:
        writer.close()
    if last_scores is not None:
        say(format_scores(last_scores, data.names), d, cfg)
    if device.type == "cuda":
        say(f"peak GPU memory {torch.cuda.max_memory_allocated(device) / 2**30:.2f} GiB "
             "(allocated by tensors)", d, cfg)
    if t.best_miou is not None and (s.run_dir / "best.pt").is_file():
        say(f"best val mIoU {t.best_miou:.4f} at epoch {t.best_epoch} "
             f"({s.run_dir / 'best.pt'})", d, cfg)

