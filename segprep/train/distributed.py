"""``torchrun`` support: the process group (:func:`init_distributed`), this process's
rank (:class:`Dist`) and sums over ranks; :func:`say` prints on rank 0 only."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

import torch

from segprep.train.config import TrainConfig


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


OWNED_GROUP: list[bool] = []


def init_distributed(device_type: str) -> Dist:
    """Join the process group when launched by ``torchrun`` (``WORLD_SIZE`` > 1)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("nccl" if device_type == "cuda" else "gloo")
        OWNED_GROUP.append(True)  # destroyed by main() when the run ends
    return Dist(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def all_reduce_sum(values: torch.Tensor, d: Dist) -> torch.Tensor:
    if d.enabled:
        import torch.distributed as dist

        dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values



def say(msg: str, d: Dist, cfg: TrainConfig) -> None:
    if d.main and not cfg.quiet:
        print(msg, file=sys.stderr, flush=True)


