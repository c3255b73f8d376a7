"""``segprep demo``: the whole pipeline on the synthetic dataset, every artefact checked."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from segprep import class_maps
from segprep.cli.demo_pipeline import MARKER, DemoError, Runner, _prepare_out
from segprep.cli.main import cli
from segprep.io import read_image, read_png

W, H = 128, 64


def _check_outputs(out: Path, n_val: int, n_test: int, width: int, height: int) -> dict:
    summary = json.loads((out / "summary.json").read_text())
    assert [s["name"] for s in summary["stages"]] == [
        "synthetic data", "cityscapes gen-gt", "odgt create", "odgt split", "odgt stats",
        "train", "predict val", "evaluate", "predict overlays", "predict test",
        "submit cityscapes"]
    assert (out / MARKER).exists()
    data = out / "data" / "cityscapes"
    assert len(list(data.glob("gtFine/val/*/*_gtFine_labelIds.png"))) == n_val
    assert len(list(data.glob("gtFine/train/*/*_gtFine_labelTrainIds.png"))) > 0
    for name in ("cityscapes_train.odgt", "demo_train.odgt", "demo_val.odgt"):
        lines = (out / "odgt" / name).read_text().splitlines()
        assert lines and all(json.loads(ln)["fpath_img"] for ln in lines)
    stats = json.loads((out / "odgt" / "demo_train_stats.json").read_text())
    assert stats["num_classes"] == 19 and len(stats["class_weights"]["median_frequency"]) == 19
    for f in ("best.pt", "last.pt", "metrics.csv"):
        assert (out / "run" / f).is_file()
    assert len(list((out / "predictions" / "val").rglob("*.png"))) == n_val
    scores = json.loads((out / "eval" / "cityscapes_val.json").read_text())
    assert 0.0 <= scores["averageScoreClasses"] <= 1.0
    assert summary["scores"]["val mIoU"] == pytest.approx(scores["averageScoreClasses"])
    assert (out / "eval" / "cityscapes_val.png").is_file()
    fig = read_image(out / "overlay.png")
    assert fig.shape == (3 * height, width, 3)
    assert summary["artefacts"]["overlay"].endswith("overlay.png")
    # the submission: one valid labelIds PNG per test frame, named after it
    test_frames = sorted(p.name[: -len("_gtFine_polygons.json")]
                         for p in data.glob("gtFine/test/*/*_gtFine_polygons.json"))
    assert len(test_frames) == n_test
    valid = set(class_maps.load("cityscapes").valid_ids.tolist())
    with zipfile.ZipFile(out / "submission.zip") as zf:
        names = [i.filename for i in zf.infolist() if not i.is_dir()]
        assert sorted(Path(n).name.split("_leftImg8bit")[0] for n in names) == test_frames
        for n in names:
            tmp = out / "unzipped" / Path(n).name
            tmp.parent.mkdir(exist_ok=True)
            tmp.write_bytes(zf.read(n))
            arr = read_png(tmp)
            assert arr.shape == (height, width) and arr.dtype == np.uint8
            assert set(np.unique(arr).tolist()) <= valid
    commands = (out / "commands.sh").read_text()
    for cmd in ("segprep cityscapes gen-gt", "segprep odgt create", "segprep odgt split",
                "segprep odgt stats", "segprep train", "segprep predict",
                "segprep evaluate cityscapes", "segprep submit cityscapes"):
        assert cmd in commands
    logs = sorted((out / "logs").glob("*.log"))
    assert len(logs) == 10  # one per command (the synthetic data is a library call)
    return summary


@pytest.fixture(scope="module")
def small_demo(tmp_path_factory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("demo") / "segprep-demo"
    res = CliRunner().invoke(cli, ["demo", "--out", str(out), "--frames", "10", "--epochs", "1",
                                   "--size", f"{W}x{H}", "--crop", "64x64", "--base-channels",
                                   "4", "-j", "1"])
    assert res.exit_code == 0, res.output
    return out, res.output


def test_small_demo_end_to_end(small_demo):
    out, output = small_demo
    _check_outputs(out, n_val=2, n_test=2, width=W, height=H)
    lines = output.splitlines()
    assert sum(ln.startswith("[") for ln in lines) == 11  # one line per stage
    assert "val mIoU" in output and "overlay.png" in output
    # the printed paths exist
    assert (Path.cwd() / lines[-1].split()[-1]).exists() or Path(lines[-1].split()[-1]).exists()


def test_a_previous_demo_folder_is_reused_a_foreign_one_refused(small_demo, tmp_path):
    out, _ = small_demo
    _prepare_out(out)  # has the marker: accepted, nothing removed
    assert (out / "summary.json").exists()
    (tmp_path / "x.txt").write_text("x")
    with pytest.raises(DemoError) as err:
        _prepare_out(tmp_path)
    assert err.value.exit_code == 2
    (tmp_path / "file").write_text("")
    with pytest.raises(DemoError):
        _prepare_out(tmp_path / "file")
    _prepare_out(tmp_path / "new" / "folder")  # created
    assert (tmp_path / "new" / "folder" / MARKER).exists()


def test_refuses_a_foreign_non_empty_folder(tmp_path):
    (tmp_path / "precious.txt").write_text("keep me")
    res = CliRunner().invoke(cli, ["demo", "--out", str(tmp_path), "--frames", "10"])
    assert res.exit_code == 2
    assert "not empty" in res.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["precious.txt"]


def test_a_failing_command_stops_with_its_status_and_log(tmp_path):
    run = Runner(tmp_path, cli)
    with pytest.raises(DemoError) as err:
        run("stats", ["odgt", "stats", str(tmp_path / "missing.odgt"), "--num-classes", "3"])
    assert err.value.exit_code != 0
    assert "segprep odgt stats" in str(err.value)
    log = tmp_path / "logs" / "01_stats.log"
    assert log.is_file() and "missing.odgt" in log.read_text()
    assert "missing.odgt" in err.value.detail


def test_bad_option_values():
    res = CliRunner().invoke(cli, ["demo", "--crop", "64"])
    assert res.exit_code == 2 and "--crop" in res.output
    res = CliRunner().invoke(cli, ["demo", "--frames", "3"])
    assert res.exit_code == 2


@pytest.mark.slow
def test_full_demo_defaults(tmp_path, monkeypatch):
    """The README's first command, with its defaults (2-3 minutes on 2 CPU cores)."""
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(cli, ["demo"])
    assert res.exit_code == 0, res.output
    summary = _check_outputs(tmp_path / "segprep-demo", n_val=8, n_test=8, width=512, height=256)
    # the model learns the synthetic street scenes: an untrained net scores ~0.01 (see the small
    # demo above); the defaults reach ~0.2 in their 1.5-minute budget on an unloaded 2-core CPU
    assert summary["scores"]["val mIoU"] > 0.1
