"""``scripts/train_camvid.sh``: the held-out-drive fold is leak-free and the run reports on it
(real SegNet CamVid frames; a tiny model and a few seconds of budget)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent


def _names(odgt: Path) -> list[str]:
    return [Path(json.loads(line)["fpath_img"]).name for line in odgt.read_text().splitlines()]


def test_holdout_fold_is_leak_free_and_reports_on_the_held_out_drive(camvid_root, tmp_path):
    run = tmp_path / "fold"
    env = dict(os.environ, HOLDOUT="0006R0", RUN=str(run), BUDGET="0.15",
               DATA=str(camvid_root / "segnet"), SEGPREP=str(Path(sys.executable).parent / "segprep"))
    res = subprocess.run(["bash", str(PROJECT / "scripts" / "train_camvid.sh"),
                          "--base-channels", "4", "--depth", "2", "--threads", "1", "-q"],
                         env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    lists = run / "lists"
    train, val = _names(lists / "without-0006R0.odgt"), _names(lists / "0006R0.odgt")
    assert len(train) == 367 and len(val) == 101  # 468 shared frames, drive 0006R0 whole
    assert all(n.startswith("0006R0_") for n in val)
    assert not any(n.startswith("0006R0_") for n in train)
    assert set(train).isdisjoint(val)
    # the run validated on the held-out drive and kept best.pt by that score
    scores = json.loads((run / "best_scores.json").read_text())
    assert (run / "best.pt").is_file()
    assert 0.0 <= scores["mIoU"] <= 1.0 and len(scores["classIoU"]) == 11
    args = json.loads((run / "args.json").read_text())
    assert args["val"].endswith("0006R0.odgt") and args["ema"] == 0.995
    assert args["encoder"] == "efficientnet-lite0" and args["encoder_lr_scale"] == 0.1
