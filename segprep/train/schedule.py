"""What changes the weights over a run: the warm-up + poly learning-rate factor
(:class:`PolyWarmup`), the wall-clock budget that fits the schedule (:class:`Budget`) and the
exponential moving average of the weights (:class:`ModelEMA`)."""

from __future__ import annotations

import time
from collections import deque

import numpy as np
import torch
from torch import nn


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


