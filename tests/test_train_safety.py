"""segprep train under hostile but ordinary use (issue 14): numeric options checked at the CLI,
a run folder consistent after a kill at any write, no silent mixing of two runs, exit statuses,
JPEG images without warnings; and the EMA / checkpoint-format additions."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from PIL import Image
from test_train import make_dataset, tiny_config

from segprep.cli.main import cli
from segprep.errors import SegprepError
from segprep.train import checkpoint as ckpt_mod
from segprep.train.checkpoint import load_checkpoint, load_model, save_checkpoint
from segprep.train.config import TrainConfig
from segprep.train.data import SegDataset, read_records
from segprep.train.loop import main


def cli_args(train: Path, out: Path, *extra: str) -> list[str]:
    return ["train", "--train", str(train), "--val", str(train), "--num-classes", "3",
            "--base-channels", "4", "--depth", "2", "--epochs", "1", "--batch-size", "2",
            "--crop", "16x16", "--workers", "0", "--threads", "1", "--no-tensorboard", "-q",
            "--out", str(out), *extra]


# ----------------------------------------------------------------------------- numeric options
@pytest.mark.parametrize("option, value, message", [
    ("--time-budget", "0", "--time-budget: must be > 0, got 0"),
    ("--time-budget", "-1", "--time-budget: must be > 0, got -1"),
    ("--epochs", "0", "--epochs: must be >= 1, got 0"),
    ("--stop-after", "0", "--stop-after: must be >= 1, got 0"),
    ("--batch-size", "0", "--batch-size: must be >= 1, got 0"),
    ("--workers", "-3", "--workers: must be >= 0, got -3"),
    ("--threads", "0", "--threads: must be >= 1, got 0"),
    ("--lr", "0", "--lr: must be > 0, got 0"),
    ("--lr", "nan", "--lr: must be a finite number, got nan"),
    ("--momentum", "1", "--momentum: must be < 1, got 1"),
    ("--weight-decay", "-0.1", "--weight-decay: must be >= 0, got -0.1"),
    ("--ema", "1", "--ema: must be < 1, got 1"),
    ("--color-jitter", "-0.2", "--color-jitter: must be >= 0, got -0.2"),
    ("--seed", "-1", "--seed: must be >= 0, got -1"),
    ("--num-classes", "0", "--num-classes: must be >= 1, got 0"),
    ("--val-every", "0", "--val-every: must be >= 1, got 0"),
])
def test_numeric_options_are_checked_before_anything_runs(tmp_path, option, value, message):
    train = make_dataset(tmp_path / "data", n=2)
    res = CliRunner().invoke(cli, cli_args(train, tmp_path / "run", option, value))
    assert res.exit_code == 2, res.output
    assert res.output.strip().splitlines()[-1] == f"segprep: error: {message}"
    assert "Traceback" not in res.output and not (tmp_path / "run").exists()


def test_resume_overrides_are_checked_too(tmp_path):
    train = make_dataset(tmp_path / "data", n=2)
    assert CliRunner().invoke(cli, cli_args(train, tmp_path / "run")).exit_code == 0
    for option, value in (("--epochs", "0"), ("--time-budget", "0")):
        res = CliRunner().invoke(cli, ["train", "--resume", str(tmp_path / "run"), option, value])
        assert res.exit_code == 2 and f"{option}: must be" in res.output, res.output


def test_library_checks_the_same_rules():
    with pytest.raises(SegprepError, match="--time-budget: must be > 0"):
        TrainConfig(train="t", out="o", num_classes=3, time_budget=0).validate()
    TrainConfig(train="t", out="o", num_classes=3, time_budget=0.5, epochs=3).validate()


# ----------------------------------------------------------------------------- run folders
def test_a_folder_holding_a_run_is_refused_unless_resume_or_overwrite(tmp_path):
    train = make_dataset(tmp_path / "data", n=4)
    run = tmp_path / "run"
    runner = CliRunner()
    assert runner.invoke(cli, cli_args(train, run)).exit_code == 0
    (run / "lists").mkdir()
    (run / "lists" / "keep.odgt").write_text("kept\n")
    first = (run / "best.pt").read_bytes()
    res = runner.invoke(cli, cli_args(train, run, "--seed", "5"))
    assert res.exit_code == 2
    assert res.output.strip().splitlines()[-1] == (
        f"segprep: error: {run}: already holds a run (last.pt / best.pt); continue it with "
        "--resume, or replace it with --overwrite")
    assert (run / "best.pt").read_bytes() == first  # untouched
    # --overwrite clears the old run's files (a stale best_scores.json too), keeps the rest
    (run / "best_scores.json").write_text('{"epoch": 99}')
    res = runner.invoke(cli, cli_args(train, run, "--seed", "5", "--overwrite"))
    assert res.exit_code == 0, res.output
    assert json.loads((run / "best_scores.json").read_text())["epoch"] == 1
    assert load_checkpoint(run / "best.pt")["args"]["seed"] == 5
    assert (run / "lists" / "keep.odgt").read_text() == "kept\n"
    res = runner.invoke(cli, ["train", "--resume", str(run), "--overwrite"])
    assert res.exit_code == 2 and "--overwrite" in res.output


def test_kill_between_last_and_best_is_repaired_on_resume(tmp_path, monkeypatch, capsys):
    """A kill right after last.pt (the resume point) was written, before best.pt: only a 0-byte
    temp file of best.pt is left (the issue's case); --resume rebuilds best.pt and
    best_scores.json from last.pt, removes the temp file, and announces a best.pt that exists."""
    train = make_dataset(tmp_path / "data", n=4)
    run = tmp_path / "run"
    real_link = ckpt_mod.link_checkpoint

    def killed(source, target):
        Path(target).with_name(".best.pt.x1y2.tmp").write_bytes(b"")  # what SIGKILL leaves
        raise KeyboardInterrupt

    monkeypatch.setattr(ckpt_mod, "link_checkpoint", killed)
    with pytest.raises(KeyboardInterrupt):
        main(tiny_config(tmp_path, train, train, epochs=2))
    monkeypatch.setattr(ckpt_mod, "link_checkpoint", real_link)
    last = load_checkpoint(run / "last.pt")
    assert last["best_epoch"] == last["epoch"] == 1
    assert not (run / "best.pt").exists() and not (run / "best_scores.json").exists()
    assert (run / ".best.pt.x1y2.tmp").exists()
    capsys.readouterr()
    main(resume=str(run), overrides={"quiet": False, "epochs": 1})
    err = capsys.readouterr().err
    assert "best.pt (epoch 1) rebuilt from last.pt" in err
    assert "removed 1 temp file(s)" in err
    assert f"at epoch 1 ({run / 'best.pt'})" in err
    assert load_checkpoint(run / "best.pt")["epoch"] == 1
    assert json.loads((run / "best_scores.json").read_text()) == last["best_scores"]
    assert not list(run.glob(".*.tmp"))
    # a best model gone for good (deleted, from an earlier epoch) is forgotten with a note,
    # and the next validation writes a new one
    main(resume=str(run), overrides={"quiet": True, "epochs": 2})
    ck = load_checkpoint(run / "last.pt")
    (run / "best.pt").unlink()
    ck["best_epoch"] = 1
    save_checkpoint(run / "last.pt", ck)
    main(resume=str(run), overrides={"quiet": False, "epochs": 3})
    assert "best.pt of epoch 1 is missing and cannot be rebuilt" in capsys.readouterr().err
    assert load_checkpoint(run / "best.pt")["epoch"] == 3


def test_best_pt_shares_last_pt_until_the_next_epoch(tmp_path):
    train = make_dataset(tmp_path / "data", n=4)
    main(tiny_config(tmp_path, train, train, epochs=1))
    a, b = tmp_path / "run" / "last.pt", tmp_path / "run" / "best.pt"
    assert a.read_bytes() == b.read_bytes()
    assert load_checkpoint(b)["best_scores"]["epoch"] == 1


# ----------------------------------------------------------------------------- exit statuses
def test_ctrl_c_exits_130_and_the_run_resumes(tmp_path, monkeypatch):
    import segprep.train.loop as loop

    train = make_dataset(tmp_path / "data", n=4)
    real = loop.train_one_epoch
    seen = []

    def interrupted(*a, **k):
        seen.append(1)
        if len(seen) == 2:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(loop, "train_one_epoch", interrupted)
    run = tmp_path / "run"
    res = CliRunner().invoke(cli, cli_args(train, run)[:-2] + ["--epochs", "2", "--out", str(run)])
    assert res.exit_code == 130, res.output
    assert res.output.strip().splitlines()[-1] == (
        f"segprep: error: {run}: interrupted; continue with --resume {run}")
    monkeypatch.setattr(loop, "train_one_epoch", real)
    res = CliRunner().invoke(cli, ["train", "--resume", str(run), "-q"])
    assert res.exit_code == 0 and load_checkpoint(run / "last.pt")["epoch"] == 2


# ----------------------------------------------------------------------------- JPEG images
def test_jpeg_images_train_without_the_non_writable_warning(tmp_path):
    odgt = make_dataset(tmp_path / "data", n=3)
    lines = []
    for line in odgt.read_text().splitlines():
        rec = json.loads(line)
        png = tmp_path / "data" / rec["fpath_img"]
        jpg = png.with_suffix(".jpg")
        Image.open(png).convert("RGB").save(jpg, quality=95)
        rec["fpath_img"] = str(jpg.relative_to(tmp_path / "data"))
        lines.append(json.dumps(rec))
    odgt.write_text("\n".join(lines) + "\n")
    for augment in (False, True):
        ds = SegDataset(read_records(odgt), 3, augment=augment, flip=False)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # the warning would be an error here
            img, mask = ds[0]
        assert img.dtype == torch.uint8 and img.shape == (37, 29, 3) and mask.shape == (37, 29)
    res = CliRunner().invoke(cli, cli_args(odgt, tmp_path / "run"))
    assert res.exit_code == 0 and "not writable" not in res.output


# ----------------------------------------------------------------------------- EMA, format
def test_ema_resumes_exactly_and_is_the_served_model(tmp_path):
    train = make_dataset(tmp_path / "data", n=5)
    full = main(tiny_config(tmp_path, train, train, out=str(tmp_path / "full"), ema=0.9,
                            epochs=2))
    main(tiny_config(tmp_path, train, train, out=str(tmp_path / "part"), ema=0.9, epochs=2,
                     stop_after=1))
    main(resume=str(tmp_path / "part"), overrides={"quiet": True})
    a = load_checkpoint(tmp_path / "full" / "last.pt")
    b = load_checkpoint(tmp_path / "part" / "last.pt")
    assert a["ema"]["updates"] == b["ema"]["updates"] > 0
    for key in a["ema"]["module"]:
        assert torch.equal(a["ema"]["module"][key], b["ema"]["module"][key]), key
    model, _ = load_model(tmp_path / "full" / "last.pt")
    for key, value in model.state_dict().items():
        assert torch.equal(value, a["ema"]["module"][key]), key
    assert not torch.equal(a["model"]["head.weight"], a["ema"]["module"]["head.weight"])
    assert full["model"] is not None


def test_unknown_checkpoint_format_is_refused(tmp_path):
    train = make_dataset(tmp_path / "data", n=2)
    main(tiny_config(tmp_path, train, None, epochs=1))
    ck = load_checkpoint(tmp_path / "run" / "last.pt")
    assert ck["format"] == ckpt_mod.FORMAT
    ck["format"] = 99
    save_checkpoint(tmp_path / "future.pt", ck)
    with pytest.raises(SegprepError, match=r"checkpoint format 99 is not one this segprep reads "
                                           r"\(1, 2\)"):
        load_checkpoint(tmp_path / "future.pt")
    res = CliRunner().invoke(cli, ["train", "--resume", str(tmp_path / "future.pt")])
    assert res.exit_code == 2 and "checkpoint format 99" in res.output
