"""How much do the class weights decide a fold model's held-out score? Logit adjustment
(Menon et al. 2021): a model trained with class weights ``w`` scores ``logits - tau * log(w)``;
``tau = 1`` undoes the weighting's prior shift, ``tau = 0`` is the model as trained. Prints the
held-out mIoU and per-class IoU (%) for each tau, for the run's own weights and for ENet's
inverse-log weights, at native size in float32 (no TTA).

    python scripts/camvid_logit_adjust.py RUN_DIR HOLDOUT   # e.g. runs/f2-0006R0 0006R0

RUN_DIR is a ``HOLDOUT=SEQ scripts/train_camvid.sh`` run: its ``last.pt``, ``lists/SEQ.odgt``
and ``lists/without-SEQ.stats.json`` are read.
"""
import sys

import numpy as np
import torch

from segprep.metrics import ConfusionMatrix, confusion_matrix_torch
from segprep.stats import load_class_weights
from segprep.train.checkpoint import load_model
from segprep.train.data import IGNORE, read_records, to_model_input, validation_loader

TAUS = (0.0, 0.25, 0.5, 0.75, 1.0)
run, seq = sys.argv[1], sys.argv[2]
torch.set_num_threads(1)
dev = torch.device("cpu")
model, meta = load_model(f"{run}/last.pt", dev)
model.eval()
K, mean, std = meta["num_classes"], meta["mean"], meta["std"]
loader = validation_loader(read_records(f"{run}/lists/{seq}.odgt"), K, meta["ignore_index"], mean,
                           batch_size=4)
stats = f"{run}/lists/without-{seq}.stats.json"
log_w = {kind: torch.tensor(np.log(load_class_weights(stats, kind)), dtype=torch.float32
                            ).view(1, K, 1, 1)
         for kind in (meta["args"]["class_weight_kind"], "inverse_log")}
counts = {(kind, t): torch.zeros((K, K + 1), dtype=torch.int64) for kind in log_w for t in TAUS}
with torch.no_grad():
    for imgs, masks in loader:
        logits = model(to_model_input(imgs, dev, False, mean, std)).float()
        for (kind, t), acc in counts.items():
            acc += confusion_matrix_torch(masks, (logits - t * log_w[kind]).argmax(1), K, IGNORE)
for (kind, t), acc in counts.items():
    cm = ConfusionMatrix(K, IGNORE)
    cm.merge(acc.numpy())
    s = cm.scores()
    print(seq, kind, f"tau={t}", f"mIoU={100 * float(s.miou):.2f}",
          " ".join(f"{100 * float(x):.1f}" for x in s.iou))
