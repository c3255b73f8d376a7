"""``segprep evaluate cityscapes`` against cityscapesScripts' own evaluator on the real val frames.

Every number of cityscapesScripts' JSON (class IoU, class iIoU, category IoU and iIoU, the four
averages, priors, the confusion matrix) must equal segprep's to 1e-9, for predictions that are:
the ground truth itself; the ground truth perturbed (shifted, classes swapped, instances dropped,
ignored ids and noise painted in); today's Pillow rasterisation of the polygons (an imperfect,
realistic prediction); and trainIds predictions. Then the invalid-input cases: one line naming the
file, the value and its pixel count, never a crash.

The reference needs ``np.in1d``, which numpy 2.4 removed: the test puts ``np.isin`` in its place
(in the test only; segprep never calls it).
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from segprep import class_maps
from segprep.cli.main import cli
from segprep.datasets.cityscapes import frame_key as frame_prefix
from segprep.errors import SegprepError
from segprep.evaluation import evaluate_cityscapes
from segprep.evaluation.gt_cache import GtCache, build_codes
from segprep.io import read_png, write_png

SCORE_KEYS = ("classScores", "classInstScores", "categoryScores", "categoryInstScores")
AVG_KEYS = ("averageScoreClasses", "averageScoreInstClasses", "averageScoreCategories",
            "averageScoreInstCategories")


def run(*args) -> CliRunner.Result:
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


# ----------------------------------------------------------------------------- the reference
def reference(preds: list[Path], gts: list[Path]) -> dict:
    """cityscapesScripts 2.3.0 ``evaluateImgLists`` on the given pairs (quiet, no JSON file)."""
    if not hasattr(np, "in1d"):
        np.in1d = np.isin  # numpy 2.4 removed in1d; the reference still calls it
    from cityscapesscripts.evaluation import evalPixelLevelSemanticLabeling as ev

    ev.args.quiet = True
    ev.args.JSONOutput = False
    ev.args.evalPixelAccuracy = False
    ev.args.evalInstLevelScore = True
    return ev.evaluateImgLists([str(p) for p in preds], [str(g) for g in gts], ev.args)


def assert_same(ours: dict, ref: dict, tol: float = 1e-9, ordered: bool = True) -> None:
    for key in SCORE_KEYS:
        if ordered:
            assert list(ours[key]) == list(ref[key]), key
        assert sorted(ours[key]) == sorted(ref[key]), key
        for name, v in ref[key].items():
            o = ours[key][name]
            if math.isnan(v):
                assert math.isnan(o), (key, name, o)
            else:
                assert o == pytest.approx(v, abs=tol, rel=0), (key, name, o, v)
    for key in AVG_KEYS:
        if math.isnan(ref[key]):
            assert math.isnan(ours[key])
        else:
            assert ours[key] == pytest.approx(ref[key], abs=tol, rel=0), key
    np.testing.assert_array_equal(np.array(ours["confMatrix"]), np.array(ref["confMatrix"]))
    assert ours["labels"] == ref["labels"]
    for name, v in ref["priors"].items():
        assert ours["priors"][name] == pytest.approx(v, abs=1e-12)


# ----------------------------------------------------------------------------- predictions
@pytest.fixture(scope="module")
def val_gt(cityscapes_root) -> list[Path]:
    files = sorted((cityscapes_root / "gtFine" / "val").glob("*/*_gtFine_labelIds.png"))
    assert len(files) == 59
    return files


def perturb(label: np.ndarray, inst: np.ndarray, i: int) -> np.ndarray:
    """A deterministic imperfect labelIds prediction made from frame ``i``'s ground truth."""
    rng = np.random.default_rng(i)
    p = label.copy()
    kind = i % 5
    if kind == 0:  # shifted
        p = np.roll(p, (int(rng.integers(-9, 10)), int(rng.integers(-25, 26))), axis=(0, 1))
    elif kind == 1:  # classes swapped in the left half, road -> sidewalk in a box
        left = p[:, : p.shape[1] // 2]
        for a, b in ((26, 27), (24, 25), (21, 22), (17, 20)):
            ma, mb = left == a, left == b
            left[ma], left[mb] = b, a
        p[500:700, 900:1400][p[500:700, 900:1400] == 7] = 8
    elif kind == 2:  # instances dropped (painted road or unlabeled), others half-eroded
        ids = np.unique(inst[inst > 1000])
        for k, iid in enumerate(ids):
            m = inst == iid
            if k % 3 == 0:
                p[m] = 7 if k % 2 else 0
            elif k % 3 == 1:
                ys, xs = np.nonzero(m)
                p[ys[xs < np.median(xs)], xs[xs < np.median(xs)]] = 11
    elif kind == 3:  # blocks of ignored ids, caravan/trailer, and of every evaluated id
        for _ in range(40):
            y, x = int(rng.integers(0, 1000)), int(rng.integers(0, 2000))
            p[y:y + 40, x:x + 60] = int(rng.choice([0, 1, 3, 5, 6, 9, 10, 14, 29, 30, 26, 24, 33,
                                                    7, 8, 11, 21, 23]))
    else:  # salt noise over every valid id
        m = rng.random(p.shape) < 0.02
        p[m] = rng.integers(0, 34, int(m.sum()))
    return p


@pytest.fixture(scope="module")
def perturbed(val_gt, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("perturbed")
    for i, g in enumerate(val_gt):
        lab = read_png(g)
        inst = read_png(str(g).replace("labelIds", "instanceIds"))
        # predictions in sub folders, as a results tree; names as the benchmark expects
        sub = out / g.parent.name
        write_png(sub / f"{frame_prefix(g)}_leftImg8bit.png", perturb(lab, inst, i))
    return out


@pytest.fixture(scope="module")
def perturbed_ref(val_gt, perturbed) -> dict:
    """cityscapesScripts' results for the perturbed predictions (computed once)."""
    return reference(pred_list(perturbed, val_gt), val_gt)


def pred_list(pred_dir: Path, gts: list[Path]) -> list[Path]:
    by_prefix = {frame_prefix(p): p for p in pred_dir.rglob("*.png")}
    return [by_prefix[frame_prefix(g)] for g in gts]


# ----------------------------------------------------------------------------- parity
def make_root(gts: list[Path], root: Path) -> Path:
    """A Cityscapes root holding only ``gts`` (labelIds + instanceIds, symlinked)."""
    for g in gts:
        for kind in ("labelIds", "instanceIds"):
            src = Path(str(g).replace("labelIds", kind))
            dst = root / "gtFine" / "val" / g.parent.name / src.name
            dst.parent.mkdir(parents=True, exist_ok=True)
            dst.symlink_to(src)
    return root


def test_ground_truth_as_prediction(val_gt, tmp_path):
    gts = val_gt[:12]
    root = make_root(gts, tmp_path / "root")
    pred = tmp_path / "pred"
    pred.mkdir()
    for g in gts:
        shutil.copy(g, pred / g.name)
    rep = evaluate_cityscapes(pred, root, "val", cache=tmp_path / "c", quiet=True)
    assert rep.ok, rep.errors
    assert rep.frames == 12
    assert_same(rep.result, reference(pred_list(pred, gts), gts))
    defined = [v for v in rep.result["classScores"].values() if not math.isnan(v)]
    assert len(defined) >= 15 and all(v == 1.0 for v in defined)


def test_parity_perturbed_all_val_frames(cityscapes_root, perturbed, perturbed_ref, tmp_path):
    ref = perturbed_ref
    for cache in (tmp_path / "cache", tmp_path / "cache", False):  # cold, warm, none
        rep = evaluate_cityscapes(perturbed, cityscapes_root, "val", cache=cache, quiet=True,
                                  jobs=2)
        assert rep.ok, rep.errors
        assert rep.frames == 59
        assert_same(rep.result, ref)
        assert rep.result["averageScoreClasses"] < 0.95  # the perturbations do hurt
    assert rep.cache["folder"] is None


def test_parity_gen_gt_pillow_rasterisation(cityscapes_root, val_gt, tmp_path):
    out = tmp_path / "poly"
    res = run("cityscapes", "gen-gt", cityscapes_root, "--split", "val", "--out", out,
              "--targets", "labelIds", "--source", "polygons", "--raster", "pillow", "-q")
    assert res.exit_code == 0, res.output
    preds = pred_list(out, val_gt)
    ref = reference(preds, val_gt)
    rep = evaluate_cityscapes(out, cityscapes_root, "val", cache=False, quiet=True)
    assert rep.ok, rep.errors
    assert_same(rep.result, ref)
    assert 0.9 < rep.result["averageScoreClasses"] < 1.0


def test_trainids_predictions_equal_their_labelids(cityscapes_root, val_gt, perturbed, tmp_path):
    cmap = class_maps.load("cityscapes")
    tdir = tmp_path / "train"
    gts = val_gt[::4]
    for g in gts:
        p = read_png(next(perturbed.rglob(f"{frame_prefix(g)}_*.png")))
        write_png(tdir / f"{frame_prefix(g)}_pred.png", cmap.id_to_train_id[p])
    # the reference evaluates the same trainIds converted back to labelIds (255 -> 0)
    ldir = tmp_path / "label"
    for f in tdir.glob("*.png"):
        write_png(ldir / f.name, cmap.train_id_to_id[read_png(f)])
    root = make_root(gts, tmp_path / "root")
    ref = reference(pred_list(ldir, gts), gts)
    rep = evaluate_cityscapes(tdir, root, "val", pred_ids="trainIds", cache=False, quiet=True)
    assert rep.ok, rep.errors
    assert_same(rep.result, ref)


def test_cli_json_has_cityscapesscripts_keys(cityscapes_root, perturbed, perturbed_ref, tmp_path):
    out = tmp_path / "r.json"
    plot = tmp_path / "cm.png"
    res = run("evaluate", "cityscapes", "--pred", perturbed, "--gt", cityscapes_root, "--split",
              "val", "--json", out, "--plot", plot, "--cache", tmp_path / "c", "-q")
    assert res.exit_code == 0, res.output
    doc = json.loads(out.read_text())
    for key in SCORE_KEYS + AVG_KEYS + ("confMatrix", "priors", "labels"):
        assert key in doc
    assert_same(doc, perturbed_ref, ordered=False)  # sorted JSON keys, as cityscapesScripts
    assert "road" in res.output and "iIoU" in res.output
    assert read_png(plot).ndim == 3


# ----------------------------------------------------------------------------- pairing
def test_missing_and_duplicate_predictions_are_clear_errors(cityscapes_root, val_gt, tmp_path):
    pred = tmp_path / "pred"
    for g in val_gt:
        (pred).mkdir(exist_ok=True)
        shutil.copy(g, pred / g.name)
    (pred / val_gt[3].name).unlink()
    shutil.copy(val_gt[5], pred / f"{frame_prefix(val_gt[5])}_other.png")
    with pytest.raises(SegprepError) as exc:
        evaluate_cityscapes(pred, cityscapes_root, "val", cache=False, quiet=True)
    msg = str(exc.value)
    assert "no prediction for 1 of 59 frames" in msg and frame_prefix(val_gt[3]) in msg
    assert "several predictions for 1 frames" in msg and frame_prefix(val_gt[5]) in msg
    res = run("evaluate", "cityscapes", "--pred", pred, "--gt", cityscapes_root, "--no-cache",
              "-q")
    assert res.exit_code == 2
    assert "segprep: error:" in res.output and "\n" not in res.output.strip()


# ----------------------------------------------------------------------------- invalid input
@pytest.fixture()
def one_frame_root(val_gt, tmp_path) -> tuple[Path, Path]:
    """A Cityscapes root with the first two val frames (symlinked), and a folder of predictions."""
    root = make_root(val_gt[:2], tmp_path / "root")
    pred = tmp_path / "pred"
    pred.mkdir()
    for g in val_gt[:2]:
        shutil.copy(g, pred / g.name)
    return root, pred


@pytest.mark.parametrize("value", [255, 34, 200])
def test_invalid_label_id_is_one_line_naming_file_value_count(one_frame_root, val_gt, value):
    root, pred = one_frame_root
    f = pred / val_gt[1].name
    a = read_png(f)
    a[10:20, 10:30] = value  # 200 pixels
    write_png(f, a)
    res = run("evaluate", "cityscapes", "--pred", pred, "--gt", root, "--no-cache", "-q")
    assert res.exit_code == 1
    errs = [ln for ln in res.output.splitlines() if ln.startswith("segprep: error:")]
    assert len(errs) == 1
    assert str(f) in errs[0] and f"{value} (200 px)" in errs[0] and "valid: labelIds 0-33" in \
        errs[0]


def test_rgb_16bit_palette_and_size(one_frame_root, val_gt, tmp_path):
    from PIL import Image

    root, pred = one_frame_root
    f0, f1 = pred / val_gt[0].name, pred / val_gt[1].name
    a = read_png(f0)
    Image.fromarray(np.stack([a] * 3, -1)).save(f0)  # RGB
    res = run("evaluate", "cityscapes", "--pred", pred, "--gt", root, "--no-cache", "-q")
    assert res.exit_code == 1 and "is a RGB image (3 channels)" in res.output
    assert str(f0) in res.output
    # 16-bit with a value > 255: named with its count
    b = read_png(f1).astype(np.uint16)
    b[0, :7] = 300
    write_png(f1, b)
    shutil.copy(val_gt[0], f0)
    res = run("evaluate", "cityscapes", "--pred", pred, "--gt", root, "--no-cache", "-q")
    assert res.exit_code == 1 and "300 (7 px)" in res.output
    # 16-bit with valid values only, and a palette PNG: read as their values / indices
    write_png(f1, read_png(val_gt[1]).astype(np.uint16))
    im = Image.fromarray(read_png(val_gt[0])).convert("P")
    im.putpalette([(i * 7) % 256 for i in range(768)])
    im.save(f0)
    rep = evaluate_cityscapes(pred, root, "val", cache=False, quiet=True)
    assert rep.ok and rep.result["averageScoreClasses"] == 1.0
    # a different size
    write_png(f1, read_png(val_gt[1])[:512, :1024])
    res = run("evaluate", "cityscapes", "--pred", pred, "--gt", root, "--no-cache", "-q")
    assert res.exit_code == 1 and "size 1024x512 differs from the ground truth" in res.output


def test_truncated_and_non_png_predictions(one_frame_root, val_gt):
    root, pred = one_frame_root
    f0, f1 = pred / val_gt[0].name, pred / val_gt[1].name
    f0.write_bytes(f0.read_bytes()[:3000])
    f1.write_bytes(b"not an image at all")
    res = run("evaluate", "cityscapes", "--pred", pred, "--gt", root, "--no-cache", "-q")
    assert res.exit_code == 1
    errs = [ln for ln in res.output.splitlines() if ln.startswith("segprep: error:")]
    assert len(errs) == 2
    assert any(str(f0) in e and "truncated" in e for e in errs)
    assert any(str(f1) in e and "not a PNG" in e for e in errs)


def test_trainids_invalid_values(one_frame_root, val_gt):
    root, pred = one_frame_root
    cmap = class_maps.load("cityscapes")
    for g in val_gt[:2]:
        t = cmap.id_to_train_id[read_png(g)]
        if g == val_gt[1]:
            t[:3, :5] = 19
        write_png(pred / g.name, t)
    res = run("evaluate", "cityscapes", "--pred", pred, "--gt", root, "--pred-ids", "trainIds",
              "--no-cache", "-q")
    assert res.exit_code == 1
    assert "invalid trainIds value(s) 19 (15 px); valid: trainIds 0-18, 255" in res.output


# ----------------------------------------------------------------------------- cache
def test_cache_is_keyed_by_file_state(val_gt, tmp_path):
    g = val_gt[0]
    lab = tmp_path / g.name
    inst = tmp_path / g.name.replace("labelIds", "instanceIds")
    shutil.copy(g, lab)
    shutil.copy(str(g).replace("labelIds", "instanceIds"), inst)
    cache = GtCache(tmp_path / "c")

    def build():
        return build_codes(read_png(lab), read_png(inst))

    a = cache.get("cityscapes", [lab, inst], build)
    b = cache.get("cityscapes", [lab, inst], build)
    assert (cache.hits, cache.misses) == (1, 1)
    np.testing.assert_array_equal(a.codes, b.codes)
    np.testing.assert_array_equal(b.values[b.codes], read_png(lab))
    # a changed ground truth is a miss
    arr = read_png(lab)
    arr[0, 0] = 7 if arr[0, 0] != 7 else 8
    write_png(lab, arr)
    c = cache.get("cityscapes", [lab, inst], build)
    assert cache.misses == 2 and c.values[c.codes][0, 0] == arr[0, 0]
    # a damaged cache file is a miss and is rewritten
    for f in (tmp_path / "c").glob("*.gt"):
        f.write_bytes(f.read_bytes()[:200])
    cache.get("cityscapes", [lab, inst], build)
    assert cache.misses == 3


def test_extra_prediction_files_are_a_warning(one_frame_root, val_gt):
    root, pred = one_frame_root
    shutil.copy(val_gt[5], pred / val_gt[5].name)  # a frame that is not in this root
    res = run("evaluate", "cityscapes", "--pred", pred, "--gt", root, "--no-cache", "-q")
    assert res.exit_code == 0, res.output
    assert "segprep: warning: 1 .png file(s)" in res.output and "match no ground-truth" in \
        res.output
