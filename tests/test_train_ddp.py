"""DDP on CPU (gloo, 2 processes, as torchrun would launch them): weights stay in sync and the
validation confusion matrix summed over the ranks' shards equals a single-process evaluation."""

from __future__ import annotations

import os
import socket

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from segprep.train.checkpoint import load_model
from segprep.train.data import SegDataset, pad_collate, read_records
from segprep.train.engine import evaluate
from segprep.train.loop import main
from tests.test_train import make_dataset, tiny_config


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, cfg, queue) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(world),
                      RANK=str(rank), LOCAL_RANK=str(rank))
    out = main(cfg)
    weights = {k: v.detach().numpy().copy() for k, v in out["model"].state_dict().items()}
    queue.put((rank, out["scores"].gt_pixels.tolist(), out["scores"].iou.tolist(), weights))


def test_ddp_gloo_two_processes(tmp_path):
    if not torch.distributed.is_available():
        pytest.skip("torch.distributed not available")
    train = make_dataset(tmp_path / "data", n=6)
    val = make_dataset(tmp_path / "data", n=5, seed=4, name="val")
    cfg = tiny_config(tmp_path, train, val, epochs=1, deterministic=False)
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    port = _free_port()
    procs = [ctx.Process(target=_worker, args=(r, 2, port, cfg, queue)) for r in range(2)]
    for p in procs:
        p.start()
    results = [queue.get(timeout=240) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    results.sort(key=lambda r: r[0])
    # both ranks report the same reduced scores and hold the same weights (gradients all-reduced)
    assert results[0][1] == results[1][1] and results[0][2] == results[1][2]
    for key, value in results[0][3].items():
        if key.endswith("num_batches_tracked") or "running_" in key:
            continue  # BatchNorm statistics are per rank without SyncBatchNorm (CPU)
        np.testing.assert_allclose(value, results[1][3][key], rtol=1e-6, atol=1e-7, err_msg=key)
    # the reduced validation matrix equals one process evaluating every val frame
    model, _ = load_model(tmp_path / "run" / "last.pt")
    ds = SegDataset(read_records(val), 3, augment=False)
    loader = torch.utils.data.DataLoader(ds, batch_size=2, collate_fn=pad_collate)
    cm = evaluate(model, loader, 3, torch.device("cpu"))
    assert cm.scores().gt_pixels.tolist() == results[0][1]
    assert cm.matrix.sum() > 0
