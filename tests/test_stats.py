"""``segprep odgt stats`` against a direct numpy count of the real masks, and the class weights."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from segprep import class_maps
from segprep import stats as st
from segprep.cli.main import cli
from segprep.errors import SegprepError

STATS_KEYS = ["odgt", "num_classes", "ignore_index", "num_images", "num_pixels",
              "num_labelled_pixels", "num_ignored_pixels", "pixel_count", "image_count",
              "frequency", "median_frequency_freq", "class_weights", "absent_classes"]


def run(*args: object) -> CliRunner.Result:
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def camvid_train(camvid_root, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cv") / "train.odgt"
    res = run("odgt", "create", "--dataset", "camvid-segnet", camvid_root / "segnet", "--split",
              "train", "-o", out, "-j", "1")
    assert res.exit_code == 0, res.output
    return out


def direct_counts(mask_paths: list[Path], k: int, ignore: int) -> dict:
    """Plain numpy reference: PIL decode + np.bincount, every formula written out per class."""
    hists = np.stack([np.bincount(np.asarray(Image.open(p)).ravel(), minlength=256)
                      for p in mask_paths]).astype(np.int64)
    cls = hists[:, :k]
    pixels = cls.sum(0)
    images = (cls > 0).sum(0)
    labelled_per_image = cls.sum(1)
    freq_mf = np.zeros(k)
    for c in range(k):
        denom = sum(int(labelled_per_image[i]) for i in range(len(mask_paths)) if cls[i, c] > 0)
        freq_mf[c] = pixels[c] / denom if denom else 0.0
    present = [c for c in range(k) if pixels[c] > 0]
    med = float(np.median([freq_mf[c] for c in present]))
    w_mf = [med / freq_mf[c] if pixels[c] > 0 else 0.0 for c in range(k)]
    p = pixels / pixels.sum()
    w_il = [1.0 / np.log(1.02 + p[c]) if pixels[c] > 0 else 0.0 for c in range(k)]
    return {"pixel_count": pixels, "image_count": images, "ignored": int(hists[:, ignore].sum()),
            "total": int(hists.sum()), "median_frequency": np.array(w_mf),
            "inverse_log": np.array(w_il), "freq": p,
            "classes": [np.flatnonzero(row).tolist() for row in cls]}


def test_stats_equal_direct_numpy_count(camvid_train, camvid_root, tmp_path):
    out = tmp_path / "stats.json"
    res = run("odgt", "stats", camvid_train, "--num-classes", "11", "--ignore-index", "11",
              "-o", out, "-j", "2", "-q")
    assert res.exit_code == 0, res.output
    d = json.loads(out.read_text())
    assert list(d) == STATS_KEYS + ["image_classes"]
    masks = sorted((camvid_root / "segnet" / "trainannot").glob("*.png"))
    assert len(masks) == d["num_images"] == 367
    ref = direct_counts(masks, 11, 11)
    assert d["pixel_count"] == ref["pixel_count"].tolist()
    assert d["image_count"] == ref["image_count"].tolist()
    assert d["num_ignored_pixels"] == ref["ignored"] and d["num_pixels"] == ref["total"]
    assert d["num_pixels"] == 367 * 480 * 360
    assert np.allclose(d["frequency"], ref["freq"], rtol=1e-12)
    assert np.allclose(d["class_weights"]["median_frequency"], ref["median_frequency"],
                       rtol=1e-12)
    assert np.allclose(d["class_weights"]["inverse_log"], ref["inverse_log"], rtol=1e-12)
    assert d["absent_classes"] == []
    by_name = {Path(k).name: v for k, v in d["image_classes"].items()}
    assert [by_name[p.name] for p in masks] == ref["classes"]
    # the trainer's reader
    w = st.load_class_weights(out)
    assert w.dtype == np.float32 and w.shape == (11,)
    assert np.allclose(w, ref["median_frequency"], rtol=1e-6)
    assert np.allclose(st.load_class_weights(out, "inverse_log"), ref["inverse_log"], rtol=1e-6)
    # the bar chart next to the JSON
    with Image.open(out.with_suffix(".png")) as im:
        assert im.format == "PNG" and im.size[0] > 300
    # the table on stdout has one row per class
    assert sum(1 for ln in res.output.splitlines() if ln[:3].strip().isdigit()) == 11
    # same numbers in-process (-j 1): byte-identical JSON
    out1 = tmp_path / "stats1.json"
    assert run("odgt", "stats", camvid_train, "--num-classes", "11", "--ignore-index", "11",
               "-o", out1, "-j", "1", "--no-plot").exit_code == 0
    assert out1.read_bytes() == out.read_bytes()
    assert not out1.with_suffix(".png").exists()


def test_stats_with_class_map(bdd_root, tmp_path):
    """BDD100K's 19 trainIds are Cityscapes' 19 train classes: names from the class map."""
    odgt = tmp_path / "bdd_val.odgt"
    seg = bdd_root / "seg"
    assert run("odgt", "create", "--images", seg / "color_labels" / "val", "--masks",
               seg / "labels" / "val", "--image-suffix", "_train_color.png", "--mask-suffix",
               "_train_id.png", "-o", odgt, "-j", "1").exit_code == 0
    out = tmp_path / "s.json"
    res = run("odgt", "stats", odgt, "--class-map", "cityscapes", "-o", out, "-j", "1")
    assert res.exit_code == 0, res.output
    d = json.loads(out.read_text())
    cm = class_maps.load("cityscapes")
    assert d["num_classes"] == 19 and d["class_names"] == list(cm.train_names)
    ref = direct_counts(sorted((seg / "labels" / "val").glob("*.png")), 19, 255)
    assert d["pixel_count"] == ref["pixel_count"].tolist()
    absent = [c for c in range(19) if ref["pixel_count"][c] == 0]
    assert d["absent_classes"] == absent
    for kind in st.WEIGHT_KINDS:
        w = np.array(d["class_weights"][kind])
        assert np.all(np.isfinite(w)) and np.all(w[absent] == 0)
        assert np.all(np.delete(w, absent) > 0)
    res = run("odgt", "stats", odgt, "--class-map", "cityscapes", "--num-classes", "20")
    assert res.exit_code == 2


def test_stats_out_of_range_mask_fails_and_writes_nothing(camvid_root, tmp_path):
    segnet = camvid_root / "segnet"
    (tmp_path / "m").mkdir()
    names = sorted(p.name for p in (segnet / "trainannot").glob("*.png"))[:3]
    for n in names:
        m = np.asarray(Image.open(segnet / "trainannot" / n)).copy()
        if n == names[1]:
            m[0, :7] = 40
        Image.fromarray(m).save(tmp_path / "m" / n)
    odgt = tmp_path / "x.odgt"
    lines = [json.dumps({"fpath_img": str(segnet / "train" / n), "fpath_segm": f"m/{n}",
                         "width": 480, "height": 360}) for n in names]
    odgt.write_text("\n".join(lines) + "\n")
    res = run("odgt", "stats", odgt, "--num-classes", "11", "--ignore-index", "11",
              "-o", tmp_path / "s.json", "-j", "1")
    assert res.exit_code == 1
    errs = [ln for ln in res.output.splitlines() if ln.startswith("segprep: error:")]
    assert str(tmp_path / "m" / names[1]) in errs[0] and "40 (7 px)" in errs[0]
    assert not (tmp_path / "s.json").exists()


def test_weight_formulas_and_absent_classes():
    pixel_count = np.array([100, 0, 10, 30])
    present_pixels = np.array([200, 0, 100, 120])
    w = st.median_frequency_weights(pixel_count, present_pixels)
    freq = np.array([0.5, 0, 0.1, 0.25])
    assert np.allclose(w, [0.25 / 0.5, 0, 0.25 / 0.1, 1.0])
    il = st.inverse_log_weights(pixel_count)
    p = pixel_count / 140
    assert il[1] == 0 and np.allclose(il[[0, 2, 3]], 1 / np.log(1.02 + p[[0, 2, 3]]))
    assert np.all(il <= 1 / np.log(1.02))
    assert freq[1] == 0
    assert np.all(st.median_frequency_weights(np.zeros(3), np.zeros(3)) == 0)


def test_load_class_weights_errors(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"a": 1}')
    with pytest.raises(SegprepError, match="not a stats file"):
        st.load_class_weights(bad)
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"num_classes": 2, "class_weights": {"median_frequency": [1, 2]}}))
    assert st.load_class_weights(good).tolist() == [1.0, 2.0]
    with pytest.raises(SegprepError, match="no class weights 'inverse_log'"):
        st.load_class_weights(good, "inverse_log")
    good.write_text(json.dumps({"num_classes": 3, "class_weights": {"median_frequency": [1, 2]}}))
    with pytest.raises(SegprepError, match="shape"):
        st.load_class_weights(good)
    with pytest.raises(SegprepError, match="no such file"):
        st.load_class_weights(tmp_path / "none.json")
