"""Training on several machines is torchrun's job (``torchrun --nnodes N``): two local "nodes" —
two separate ``torchrun`` launches, one process each, sharing one c10d rendezvous endpoint on
127.0.0.1 — train one tiny model together on CPU (gloo), exactly as two machines would with the
endpoint on the first one (docs/several-machines.md)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest
import torch

from segprep.train.checkpoint import load_model
from tests.test_train import make_dataset


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow  # 44 s on the shared 2-core machine (four torch processes start)
def test_two_torchrun_nodes_share_one_rendezvous(tmp_path):
    if not torch.distributed.is_available():
        pytest.skip("torch.distributed not available")
    train = make_dataset(tmp_path / "data", n=6)
    val = make_dataset(tmp_path / "data", n=5, seed=4, name="val")
    port = _free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("WORLD_SIZE", None)
    procs = []
    for node in ("a", "b"):
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2",
               "--nproc-per-node", "1", "--rdzv-backend", "c10d",
               "--rdzv-endpoint", f"127.0.0.1:{port}", "--rdzv-id", "segprep-two-nodes",
               "-m", "segprep", "train", "--train", str(train), "--val", str(val),
               "--num-classes", "3", "--epochs", "1", "--batch-size", "2", "--base-channels", "4",
               "--depth", "2", "--crop", "24x24", "--device", "cpu", "--threads", "1",
               "--workers", "0", "--no-tensorboard", "--no-amp", "--seed", "3",
               "-o", str(tmp_path / f"run-{node}")]
        procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                      text=True, env=env, cwd=tmp_path))
    logs = []
    try:
        for p in procs:
            logs.append(p.communicate(timeout=300)[0])
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for p, log in zip(procs, logs):
        assert p.returncode == 0, log
    # one world of 2 ranks across the two launches; rank 0 (whichever node the rendezvous made
    # it) logs and writes the run, the other rank writes nothing
    text = "\n".join(logs)
    assert "device cpu x2" in text, text
    written = [n for n in ("a", "b") if (tmp_path / f"run-{n}" / "last.pt").exists()]
    assert len(written) == 1, written
    model, _ = load_model(tmp_path / f"run-{written[0]}" / "last.pt")
    assert sum(p.numel() for p in model.parameters()) > 0
