"""Score a CamVid fold model on its held-out drive four ways: plain, flip TTA (as ``segprep
predict --tta flip``), AdaBN (BatchNorm statistics re-estimated on the held-out frames, no
labels) and AdaBN + flip; prints one JSON line of mIoU (frames at the size the trainer validated
at: its ``--size`` if the run had one, else native 480x360), with the model's own input
normalisation.

    python scripts/camvid_fold_tta.py RUN_DIR RUN_DIR/lists/0001TP.odgt

RUN_DIR is a ``HOLDOUT=SEQ scripts/train_camvid.sh`` run; its ``last.pt`` (the budget's final
weights, the EMA when the run kept one) is scored.
"""
import json
import sys

import torch
from torch import nn

from segprep.train.checkpoint import load_model
from segprep.train.data import read_records, to_model_input, validation_loader
from segprep.train.engine import evaluate

run, val = sys.argv[1], sys.argv[2]
dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
model, meta = load_model(run + "/last.pt", dev)
K = meta["num_classes"]
mean, std = meta["mean"], meta["std"]
size = meta["args"].get("size")
loader = validation_loader(read_records(val), K, meta["ignore_index"], mean,
                           size=tuple(size) if size else None)


class Flip(nn.Module):
    """The model's logits plus those of the mirrored frame, mirrored back (flip TTA)."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x) + self.inner(x.flip(-1)).flip(-1)


def score(flip: bool) -> float:
    """mIoU on the held-out frames, through the trainer's own validation (fp32)."""
    cm = evaluate(Flip(model) if flip else model, loader, K, dev, mean=mean, std=std)
    return round(float(cm.scores().miou), 4)


out = {"plain": score(False), "flip": score(True)}
# AdaBN: cumulative BatchNorm statistics over the held-out frames (train mode, no grad)
for m in model.modules():
    if isinstance(m, torch.nn.BatchNorm2d):
        m.reset_running_stats()
        m.momentum = None
model.train()
with torch.no_grad():
    for imgs, _ in loader:
        model(to_model_input(imgs, dev, mean=mean, std=std))
out["adabn"] = score(False)
out["adabn+flip"] = score(True)
print(json.dumps({"run": run, **out}))
