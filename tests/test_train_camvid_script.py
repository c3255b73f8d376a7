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


def _run_script(holdout: str, run: Path, budget: str, camvid_root: Path) -> None:
    """Run scripts/train_camvid.sh with a tiny model for BUDGET minutes; it must succeed."""
    env = dict(os.environ, HOLDOUT=holdout, RUN=str(run), BUDGET=budget,
               DATA=str(camvid_root / "segnet"), SEGPREP=str(Path(sys.executable).parent / "segprep"))
    res = subprocess.run(["bash", str(PROJECT / "scripts" / "train_camvid.sh"),
                          "--base-channels", "4", "--depth", "2", "--threads", "1", "-q"],
                         env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]


def test_holdout_fold_is_leak_free_and_reports_on_the_held_out_drive(camvid_root, tmp_path):
    run = tmp_path / "fold"
    _run_script("0006R0", run, "0.15", camvid_root)
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


def test_test_like_fold_mirrors_the_segnet_test_split(camvid_root, tmp_path):
    """HOLDOUT=test-like: drive 0006R0 whole plus the later half of 0001TP held out (the SegNet
    test split is a new drive plus the later frames of 0001TP); the earlier 0001TP frames train."""
    run = tmp_path / "test-like"
    _run_script("test-like", run, "0.05", camvid_root)
    lists = run / "lists"
    train, val = _names(lists / "without-test-like.odgt"), _names(lists / "test-like.odgt")
    assert len(train) == 336 and len(val) == 132 and set(train).isdisjoint(val)
    assert len(set(train) | set(val)) == 468
    assert sum(n.startswith("0006R0_") for n in val) == 101
    assert not any(n.startswith("0006R0_") for n in train)
    seen = sorted(n for n in train if n.startswith("0001TP_"))
    held = sorted(n for n in val if n.startswith("0001TP_"))
    assert len(seen) == len(held) == 31 and seen[-1] < held[0]  # every held-out frame comes later
    args = json.loads((run / "args.json").read_text())
    assert args["val"].endswith("test-like.odgt") and args["train"].endswith("without-test-like.odgt")


def test_unknown_holdout_is_refused_in_one_line(tmp_path):
    env = dict(os.environ, HOLDOUT="Seq05VD", RUN=str(tmp_path / "x"))
    res = subprocess.run(["bash", str(PROJECT / "scripts" / "train_camvid.sh")],
                         env=env, capture_output=True, text=True, timeout=60)
    assert res.returncode == 2
    assert res.stderr.strip() == ("train_camvid.sh: HOLDOUT must be 0001TP, 0006R0, 0016E5, "
                                  "test-like or segnet-val")


def test_camvid_test_estimate_carries_the_reference_shift_over(tmp_path):
    """scripts/camvid_test_estimate.py: model's test-like mIoU + (issue 19's test - reference's fold)."""
    sys.path.insert(0, str(PROJECT / "scripts"))
    try:
        from camvid_test_estimate import ISSUE19_TEST_IOU
    finally:
        sys.path.pop(0)
    ref = {name: (iou - 10.0) / 100 for name, iou in ISSUE19_TEST_IOU.items()}  # 10 points under test
    model = dict.fromkeys(ISSUE19_TEST_IOU, 0.5)
    (tmp_path / "ref.json").write_text(json.dumps({"classIoU": ref}))
    (tmp_path / "model.json").write_text(json.dumps({"classIoU": model}))
    script = str(PROJECT / "scripts" / "camvid_test_estimate.py")
    res = subprocess.run([sys.executable, script, str(tmp_path / "ref.json"), str(tmp_path / "model.json")],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    test_miou = sum(ISSUE19_TEST_IOU.values()) / 11
    assert "shift +10.00" in res.stdout
    assert res.stdout.strip().endswith("test-like mIoU 50.00 -> estimated SegNet test 60.00")
    assert f"SegNet test {test_miou:.2f}" in res.stdout
    del model["Pole"]
    (tmp_path / "model.json").write_text(json.dumps({"classIoU": model}))
    res = subprocess.run([sys.executable, script, str(tmp_path / "ref.json"), str(tmp_path / "model.json")],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 1
    assert res.stderr.strip().endswith("no IoU for ['Pole'] (evaluate with --class-map camvid11)")


def test_a_fold_whose_drive_is_missing_is_refused_in_one_line(camvid_root, tmp_path):
    """A SegNet-layout folder without drive 0006R0 (here: six 0016E5 frames): the fold is refused."""
    src, data = camvid_root / "segnet", tmp_path / "camvid"
    for split in ("train", "val"):
        (data / split).mkdir(parents=True)
        (data / f"{split}annot").mkdir()
        frames = sorted(p.name for p in (src / split).glob("0016E5_*.png"))[:3]
        for name in frames:
            (data / split / name).symlink_to(src / split / name)
            (data / f"{split}annot" / name).symlink_to(src / f"{split}annot" / name)
        (data / f"{split}.txt").write_text("".join(
            f"/SegNet/CamVid/{split}/{n} /SegNet/CamVid/{split}annot/{n}\n" for n in frames))
    for holdout, message in (("0006R0", "no frames of drive 0006R0 to hold out"),
                             ("test-like", "HOLDOUT=test-like needs frames of drives 0006R0 and 0001TP")):
        env = dict(os.environ, HOLDOUT=holdout, RUN=str(tmp_path / holdout), DATA=str(data),
                   SEGPREP=str(Path(sys.executable).parent / "segprep"))
        res = subprocess.run(["bash", str(PROJECT / "scripts" / "train_camvid.sh")],
                             env=env, capture_output=True, text=True, timeout=120)
        assert res.returncode == 2, res.stderr[-2000:]
        assert res.stderr.strip().splitlines()[-1] == f"train_camvid.sh: {data}: {message}"
        assert not (tmp_path / holdout / "last.pt").exists()
