"""``segprep odgt split``: grouped (no leakage), seeded (deterministic), stratified, on the real
BDD100K 2018 (400 frames, grouped by video id) and SegNet CamVid (grouped by sequence) data."""

from __future__ import annotations

import json
import os
import random
import re
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from segprep import manifest as mf
from segprep import splits as sp
from segprep.cli.main import cli
from segprep.errors import SegprepError

BDD_VIDEO = r"([0-9a-f]{8})-[0-9a-f]{8}"
CAMVID_SEQ = r"([0-9A-Za-z]+)_f?[0-9]+\.png$"  # 0001TP_006690, 0006R0_f00930


def run(*args: object) -> "CliRunner.Result":
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def bdd_all(bdd_root, tmp_path_factory) -> Path:
    """All 400 BDD100K 2018 frames (train + val); the color labels stand in for the images."""
    out = tmp_path_factory.mktemp("bdd") / "all.odgt"
    seg = bdd_root / "seg"
    res = run("odgt", "create", "--images", seg / "color_labels", "--masks", seg / "labels",
              "--image-suffix", "_train_color.png", "--mask-suffix", "_train_id.png", "-o", out,
              "-j", "1")
    assert res.exit_code == 0, res.output
    return out


@pytest.fixture(scope="module")
def bdd_stats(bdd_all) -> Path:
    out = bdd_all.parent / "stats.json"
    res = run("odgt", "stats", bdd_all, "--num-classes", "19", "-o", out, "--no-plot", "-q")
    assert res.exit_code == 0, res.output
    return out


def groups_of(path: Path, pattern: str) -> set[str]:
    rx = re.compile(pattern)
    lines = path.read_text().splitlines()
    return {sp.group_key(rx, r["fpath_img"]) for r in map(json.loads, lines)}


def test_grouped_split_has_no_leakage(bdd_all, tmp_path):
    prefix = tmp_path / "sub" / "bdd"
    res = run("odgt", "split", bdd_all, "--val", "0.1", "--test", "0.1", "--seed", "3",
              "--group-by", BDD_VIDEO, "-o", prefix)
    assert res.exit_code == 0, res.output
    files = {s: Path(f"{prefix}_{s}.odgt") for s in sp.SPLITS}
    recs = {s: [json.loads(x) for x in files[s].read_text().splitlines()] for s in sp.SPLITS}
    # every frame exactly once; the paths were rebased onto the outputs' folder and resolve
    src = {os.path.normpath(bdd_all.parent / r.fpath_img) for r in mf.read_odgt(bdd_all)}
    got = [os.path.normpath(files[s].parent / r["fpath_img"]) for s in sp.SPLITS for r in recs[s]]
    assert sorted(got) == sorted(src) and len(got) == 400
    for s in sp.SPLITS:
        assert all((files[s].parent / r["fpath_segm"]).is_file() for r in recs[s])
    # no video id in two splits
    g = {s: groups_of(files[s], BDD_VIDEO) for s in sp.SPLITS}
    assert not (g["train"] & g["val"]) and not (g["train"] & g["test"])
    assert not (g["val"] & g["test"])
    assert sum(map(len, g.values())) == len(groups_of(bdd_all, BDD_VIDEO))
    # sizes: round(0.1 * N) each, train the rest (these groups allow it)
    n_val = int(np.floor(0.1 * 400 + 0.5))
    assert [len(recs[s]) for s in sp.SPLITS] == [400 - 2 * n_val, n_val, n_val]
    # a split without grouping would leak: many video ids hold several frames
    assert len(groups_of(bdd_all, BDD_VIDEO)) < 400


def test_split_is_deterministic(bdd_all, tmp_path):
    args = ("--val", "0.15", "--test", "0.05", "--group-by", BDD_VIDEO)
    assert run("odgt", "split", bdd_all, *args, "--seed", "7", "-o", tmp_path / "a").exit_code == 0
    assert run("odgt", "split", bdd_all, *args, "--seed", "7", "-o", tmp_path / "b").exit_code == 0
    # the same manifest with its lines shuffled
    lines = bdd_all.read_text().splitlines()
    random.Random(1).shuffle(lines)
    shuffled = bdd_all.parent / "shuffled.odgt"
    shuffled.write_text("\n".join(lines) + "\n")
    assert run("odgt", "split", shuffled, *args, "--seed", "7", "-o", tmp_path / "c").exit_code == 0
    assert run("odgt", "split", bdd_all, *args, "--seed", "8", "-o", tmp_path / "d").exit_code == 0
    for s in sp.SPLITS:
        a = (tmp_path / f"a_{s}.odgt").read_bytes()
        assert a == (tmp_path / f"b_{s}.odgt").read_bytes()
        assert a == (tmp_path / f"c_{s}.odgt").read_bytes()
    assert (tmp_path / "a_val.odgt").read_bytes() != (tmp_path / "d_val.odgt").read_bytes()
    # the same split again onto the same prefix: kept, exit 0
    before = {s: (tmp_path / f"a_{s}.odgt").stat().st_mtime_ns for s in sp.SPLITS}
    res = run("odgt", "split", bdd_all, *args, "--seed", "7", "-o", tmp_path / "a")
    assert res.exit_code == 0 and res.output.count("identical to this split, kept") == 3
    assert before == {s: (tmp_path / f"a_{s}.odgt").stat().st_mtime_ns for s in sp.SPLITS}
    # a different split onto it: refused in one line naming --overwrite, files untouched
    res = run("odgt", "split", bdd_all, *args, "--seed", "8", "-o", tmp_path / "a")
    errors = [ln for ln in res.output.splitlines() if ln.startswith("segprep: error:")]
    assert res.exit_code == 2 and len(errors) == 1 and "--overwrite" in errors[0], res.output
    assert "a_train.odgt: exists and differs" in errors[0] and "Traceback" not in res.output
    for s in sp.SPLITS:
        assert (tmp_path / f"a_{s}.odgt").read_bytes() == (tmp_path / f"b_{s}.odgt").read_bytes()
    res = run("odgt", "split", bdd_all, *args, "--seed", "8", "-o", tmp_path / "a", "--overwrite")
    assert res.exit_code == 0, res.output
    for s in sp.SPLITS:
        assert (tmp_path / f"a_{s}.odgt").read_bytes() == (tmp_path / f"d_{s}.odgt").read_bytes()


def _deviation(result: sp.SplitResult, image_classes: dict, k: int) -> float:
    """Mean over classes and val/test of |share of images with the class - share overall|."""
    shares = sp.presence_balance(result.records, image_classes, k)
    overall = sp.presence_balance({"all": [r for v in result.records.values() for r in v]},
                                  image_classes, k)[0]
    return float(np.nanmean(np.abs(shares[1:] - overall)))


def test_stratify_balances_class_presence(bdd_all, bdd_stats, tmp_path):
    stats = json.loads(bdd_stats.read_text())
    ic = stats["image_classes"]
    records = mf.read_odgt(bdd_all)
    plain, strat = [], []
    for seed in range(6):
        a = sp.split_records(records, 0.1, 0.1, seed, BDD_VIDEO)
        b = sp.split_records(records, 0.1, 0.1, seed, BDD_VIDEO, image_classes=ic, num_classes=19)
        for res in (a, b):  # stratification keeps the groups whole too
            g = [{sp.group_key(re.compile(BDD_VIDEO), r.fpath_img) for r in res.records[s]}
                 for s in sp.SPLITS]
            assert not (g[0] & g[1]) and not (g[0] & g[2]) and not (g[1] & g[2])
        plain.append(_deviation(a, ic, 19))
        strat.append(_deviation(b, ic, 19))
    assert np.mean(strat) < 0.75 * np.mean(plain), (strat, plain)
    # CLI: counting the masks (--num-classes) and reusing stats.json give the same files
    r1 = run("odgt", "split", bdd_all, "--stratify", "--stats", bdd_stats, "--group-by", BDD_VIDEO,
             "-o", tmp_path / "s1")
    r2 = run("odgt", "split", bdd_all, "--stratify", "--num-classes", "19", "--group-by",
             BDD_VIDEO, "-o", tmp_path / "s2", "-j", "1")
    assert r1.exit_code == 0 and r2.exit_code == 0, r1.output + r2.output
    for s in sp.SPLITS:
        assert (tmp_path / f"s1_{s}.odgt").read_bytes() == (tmp_path / f"s2_{s}.odgt").read_bytes()
    assert run("odgt", "split", bdd_all, "--stratify", "-o", tmp_path / "x").exit_code == 2


def test_camvid_sequences(camvid_root, tmp_path):
    """SegNet's own train/val share sequence 0016E5; --group-by keeps each sequence whole."""
    segnet = camvid_root / "segnet"
    parts = []
    for split in ("train", "val"):
        out = tmp_path / f"{split}.odgt"
        assert run("odgt", "create", "--dataset", "camvid-segnet", segnet, "--split", split,
                   "-o", out, "-j", "1").exit_code == 0
        parts.append(out.read_text())
    assert groups_of(tmp_path / "train.odgt", CAMVID_SEQ) & groups_of(tmp_path / "val.odgt",
                                                                       CAMVID_SEQ) == {"0016E5"}
    both = tmp_path / "both.odgt"
    both.write_text("".join(parts))
    res = run("odgt", "split", both, "--val", "0.2", "--test", "0", "--group-by", CAMVID_SEQ,
              "--seed", "0", "-o", tmp_path / "cv")
    assert res.exit_code == 0, res.output
    assert not (tmp_path / "cv_test.odgt").exists()  # fraction 0: not written
    g_train = groups_of(tmp_path / "cv_train.odgt", CAMVID_SEQ)
    g_val = groups_of(tmp_path / "cv_val.odgt", CAMVID_SEQ)
    assert g_train and g_val and not (g_train & g_val)
    assert g_train | g_val == {"0001TP", "0006R0", "0016E5"}


def test_group_by_must_match_every_path(bdd_all, tmp_path):
    res = run("odgt", "split", bdd_all, "--group-by", r"/(0[0-9a-f]{7})-", "-o", tmp_path / "x")
    assert res.exit_code == 2 and "does not match" in res.output
    res = run("odgt", "split", bdd_all, "--group-by", "([", "-o", tmp_path / "x")
    assert res.exit_code == 2 and "invalid regex" in res.output
    res = run("odgt", "split", bdd_all, "--val", "0.6", "--test", "0.5", "-o", tmp_path / "x")
    assert res.exit_code == 2


def test_group_key_and_targets():
    assert sp.group_key(re.compile(r"leftImg8bit/[^/]+/([^/]+)/"),
                        "leftImg8bit/train/aachen/aachen_000001_000019_leftImg8bit.png") == "aachen"
    assert sp.group_key(re.compile(r"[0-9A-Za-z]+(?=_)"), "train/0001TP_006690.png") == "0001TP"
    assert sp.group_key(re.compile("x"), "abc") is None
    assert sp.target_sizes(10, 0.15, 0.25).tolist() == [5, 2, 3]  # round half up
    assert sp.target_sizes(7, 0.0, 0.5).tolist() == [3, 0, 4]
    with pytest.raises(SegprepError):
        sp.target_sizes(10, -0.1, 0.1)
    sizes = np.array([3, 1, 2, 5, 1, 1, 4, 2, 1])
    a = sp.assign_groups(sizes, np.array([14, 3, 3]), seed=5)
    assert np.array_equal(a, sp.assign_groups(sizes, np.array([14, 3, 3]), seed=5))
    assert [int(sizes[a == s].sum()) for s in range(3)] == [14, 3, 3]
