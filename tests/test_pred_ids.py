"""``--pred-ids auto`` (issue 13.3): trainIds or labelIds, decided from the predictions' values.

The real case: a small U-Net trained for a few epochs on the four real Cityscapes camera frames
(aachen, with the official ground truth), then ``predict --format trainIds`` and ``--format
labelIds`` over them. ``submit cityscapes`` and ``evaluate cityscapes`` must decide each set
right, say so, and give the same zip contents / scores for both; mixed or unclear sets refuse with
one line naming ``--pred-ids``. Plus the rule on the official annotations themselves.
"""

from __future__ import annotations

import json
import os
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from segprep import class_maps
from segprep.cli.main import cli
from segprep.errors import SegprepError
from segprep.evaluation.pred_ids import classify, decide
from segprep.io import decode_label, read_png


def run(*args) -> CliRunner.Result:
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def cs() -> class_maps.ClassMap:
    return class_maps.load("cityscapes")


@pytest.fixture(scope="module")
def real_preds(cityscapes_root, tmp_path_factory) -> dict[str, Path]:
    """A 4-frame Cityscapes root (real images and official ground truth, linked), a checkpoint
    trained on it, and its trainIds and labelIds predictions."""
    tmp = tmp_path_factory.mktemp("predids")
    root = tmp / "root"
    for img in sorted((cityscapes_root / "leftImg8bit" / "train").glob("*/*.png")):
        key = img.name[: -len("_leftImg8bit.png")]
        city = img.parent.name
        (root / "leftImg8bit" / "train" / city).mkdir(parents=True, exist_ok=True)
        (root / "gtFine" / "train" / city).mkdir(parents=True, exist_ok=True)
        (root / "leftImg8bit" / "train" / city / img.name).symlink_to(img)
        for s in ("polygons.json", "labelIds.png", "instanceIds.png"):
            src = cityscapes_root / "gtFine" / "train" / city / f"{key}_gtFine_{s}"
            (root / "gtFine" / "train" / city / src.name).symlink_to(src)
    assert run("cityscapes", "gen-gt", root, "--targets", "trainIds", "-q").exit_code == 0
    odgt = tmp / "t.odgt"
    assert run("odgt", "create", "--dataset", "cityscapes", root, "-o", odgt,
               "--split", "train").exit_code == 0
    res = run("train", "--train", odgt, "--class-map", "cityscapes", "--out", tmp / "run",
              "--size", "256x128", "--epochs", "12", "--batch-size", "4", "--base-channels", "8",
              "--lr", "5e-3", "--threads", "2", "--quiet")
    assert res.exit_code == 0, res.output
    out = {"root": root}
    for fmt in ("trainIds", "labelIds"):
        out[fmt] = tmp / fmt
        res = run("predict", tmp / "run" / "last.pt", root / "leftImg8bit" / "train", out[fmt],
                  "--format", fmt, "-q")
        assert res.exit_code == 0, res.output
    return out


def _hists(folder: Path) -> tuple[list[np.ndarray], list[str]]:
    files = sorted(folder.rglob("*.png"))
    return [np.bincount(read_png(f).ravel(), minlength=256) for f in files], [str(f) for f in files]


def test_rule_on_real_predictions(real_preds, cs):
    for fmt in ("trainIds", "labelIds"):
        hists, names = _hists(real_preds[fmt])
        assert len(hists) == 4
        assert [classify(h, cs) for h in hists] == [fmt] * 4
        assert decide(hists, names, cs).kind == fmt


def test_submit_auto_decides_and_zips_the_same_labelids(real_preds, tmp_path):
    zips = {}
    for fmt in ("trainIds", "labelIds"):
        zips[fmt] = tmp_path / f"{fmt}.zip"
        res = run("submit", "cityscapes", real_preds[fmt], "--root", real_preds["root"],
                  "--split", "train", "-o", zips[fmt])
        assert res.exit_code == 0, res.output
        assert f"--pred-ids auto: {fmt} (4 files;" in res.output
    with zipfile.ZipFile(zips["trainIds"]) as a, zipfile.ZipFile(zips["labelIds"]) as b:
        assert sorted(a.namelist()) == sorted(b.namelist())
        for name in a.namelist():  # trainIds converted to labelIds = the labelIds predictions
            assert np.array_equal(decode_label(name, a.read(name))[0],
                                  decode_label(name, b.read(name))[0])
    umask = os.umask(0)
    os.umask(umask)
    assert (zips["trainIds"].stat().st_mode & 0o777) == (0o666 & ~umask)  # not mkstemp's 0600


def test_evaluate_auto_scores_both_kinds_alike(real_preds, tmp_path):
    scores = {}
    for fmt in ("trainIds", "labelIds"):
        js = tmp_path / f"{fmt}.json"
        res = run("evaluate", "cityscapes", "--pred", real_preds[fmt], "--gt", real_preds["root"],
                  "--split", "train", "--no-cache", "--json", js, "-q")
        assert res.exit_code == 0, res.output
        assert f"--pred-ids auto: {fmt}" in res.output
        scores[fmt] = json.loads(js.read_text())["averageScoreClasses"]
    assert scores["trainIds"] == scores["labelIds"] > 0.02
    # explicit, wrong --pred-ids: scored as asked (the user said so), far lower
    res = run("evaluate", "cityscapes", "--pred", real_preds["trainIds"], "--gt",
              real_preds["root"], "--split", "train", "--no-cache", "--pred-ids", "labelIds", "-q")
    assert res.exit_code == 0 and "--pred-ids auto" not in res.output


def test_mixed_sets_refuse_naming_the_option(real_preds, tmp_path):
    mixed = tmp_path / "mixed"
    shutil.copytree(real_preds["labelIds"], mixed)
    first = sorted(mixed.rglob("*.png"))[0]
    shutil.copy(real_preds["trainIds"] / first.relative_to(mixed), first)
    for args in (("submit", "cityscapes", mixed, "--root", real_preds["root"], "--split",
                  "train", "--check"),
                 ("evaluate", "cityscapes", "--pred", mixed, "--gt", real_preds["root"],
                  "--split", "train", "--no-cache", "-q")):
        res = run(*args)
        assert res.exit_code == 2, res.output
        lines = [ln for ln in res.output.splitlines() if ln.startswith("segprep: error:")]
        assert len(lines) == 1 and "--pred-ids" in lines[0] and "disagree" in lines[0]
        assert "Traceback" not in res.output


def test_void_only_annotations_are_not_guessed(cityscapes_root, cs, tmp_path):
    """The official test-split labelIds hold only void classes (ids 1-3): valid as trainIds
    too, but a set of predictions using 3 train classes is not evidence enough."""
    files = sorted((cityscapes_root / "gtFine" / "test").rglob("*_gtFine_labelIds.png"))[:10]
    hists = [np.bincount(read_png(f).ravel(), minlength=256) for f in files]
    with pytest.raises(SegprepError, match="cannot tell.*set --pred-ids"):
        decide(hists, [str(f) for f in files], cs)


def test_lindau_ground_truth_reads_as_labelids_and_trainids(cityscapes_root, cs):
    """Official val labelIds (lindau) are labelIds; the same frames mapped to trainIds (ignore
    written as road, as a model never predicts 255) are trainIds, frame by frame."""
    files = sorted((cityscapes_root / "gtFine" / "val").rglob("*_gtFine_labelIds.png"))
    for f in files[:20]:
        lab = read_png(f)
        tid = cs.id_to_train_id[lab]
        tid[tid == 255] = 0
        assert classify(np.bincount(lab.ravel(), minlength=256), cs) == "labelIds", f
        assert classify(np.bincount(tid.ravel(), minlength=256), cs) == "trainIds", f
