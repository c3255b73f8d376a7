"""``segprep evaluate bdd100k`` and ``segprep evaluate odgt``.

* the bdd100k toolkit's own evaluation fixtures (``bdd100k/eval-fixtures``) give exactly the
  numbers its test expects, including the missing-prediction case;
* on the 100 real 2018 val masks, segprep equals a line-by-line transcription of the toolkit's
  ``fast_hist`` / ``per_class_iou`` / ``per_class_acc`` / ``whole_acc`` / ``freq_iou``
  (bdd100k/bdd100k ``bdd100k/eval/seg.py``), for predictions holding misses (19, 254, 255);
* palette-mode masks (the 2020 colormaps) are read as their indices;
* the odgt path equals a direct ``np.bincount`` count;
* bad input is one line naming the file.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from segprep.cli.main import cli
from segprep.errors import SegprepError
from segprep.evaluation import evaluate_bdd100k, evaluate_odgt
from segprep.io import read_png, write_png
from segprep.metrics import scores

# the toolkit's test (tests/eval/seg_test.py) and shared/data/README.md
EXPECTED = {
    "gt": {"mIoU": 61.73469387755102, "mAcc": 81.27147766323024, "fIoU": 90.91836734693878,
           "pAcc": 95.0},
    "gt+": {"mIoU": 31.911057692307693, "mAcc": 81.27147766323024, "fIoU": 46.45432692307692,
            "pAcc": 47.5},
}
PER_CLASS = {"gt": {"road": 94.89795918, "sidewalk": 28.57142857, "wall": 0.0},
             "gt+": {"road": 48.4375, "sidewalk": 15.3846153846, "wall": 0.0}}


def run(*args) -> CliRunner.Result:
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


@pytest.mark.parametrize("gt", ["gt", "gt+"])
def test_toolkit_fixtures_exact(bdd_root, gt, tmp_path):
    fx = bdd_root / "eval-fixtures"
    rep = evaluate_bdd100k(fx / "pred", fx / gt, cache=tmp_path / "c", quiet=True)
    assert rep.ok, rep.errors
    for key, value in EXPECTED[gt].items():
        assert rep.result[key] == pytest.approx(value, rel=1e-15, abs=1e-12), key
    for name, value in PER_CLASS[gt].items():
        assert rep.result["IoU"][name] == pytest.approx(value, abs=1e-7)
    assert bool(rep.warnings) == (gt == "gt+")  # b.png has no prediction: counted as misses


def test_toolkit_fixtures_cli_json_and_missing_error(bdd_root, tmp_path):
    fx = bdd_root / "eval-fixtures"
    out = tmp_path / "r.json"
    res = run("evaluate", "bdd100k", "--pred", fx / "pred", "--gt", fx / "gt+", "--json", out,
              "--no-cache", "-q")
    assert res.exit_code == 0, res.output
    assert "1 of 2 frames have no prediction" in res.output
    doc = json.loads(out.read_text())
    for key, value in EXPECTED["gt+"].items():
        assert doc[key] == pytest.approx(value, rel=1e-15)
    assert set(doc["IoU"]) >= {"road", "sidewalk", "bicycle"} and len(doc["IoU"]) == 19
    res = run("evaluate", "bdd100k", "--pred", fx / "pred", "--gt", fx / "gt+", "--missing",
              "error", "--no-cache", "-q")
    assert res.exit_code == 2 and "no prediction for 1 of 2 frames: b.png" in res.output


# ----------------------------------------------------------------------------- the toolkit
def toolkit(gt_paths: list[Path], pred_paths: list[Path | None]) -> dict:
    """Transcription of bdd100k/bdd100k ``bdd100k/eval/seg.py`` (sem_seg mode, 19 + 1 classes)."""
    size = 20

    def fast_hist(groundtruth, prediction):
        prediction = prediction.copy()
        prediction[prediction >= size] = size - 1
        k = np.logical_and(np.greater_equal(groundtruth, 0), np.less(groundtruth, size - 1))
        return np.bincount(size * groundtruth[k].astype(int) + prediction[k],
                           minlength=size ** 2).reshape(size, size)

    hist = np.zeros((size, size))
    ids: set[int] = set()
    for g, p in zip(gt_paths, pred_paths):
        gt = np.asarray(Image.open(g), dtype=np.uint8).copy()
        gt[gt == 255] = size - 1
        s = set(np.unique(gt).tolist())
        s.discard(size - 1)
        pred = (np.full_like(gt, size - 1) if p is None
                else np.asarray(Image.open(p), dtype=np.uint8))
        hist += fast_hist(gt.flatten(), pred.flatten())
        ids |= s
    with np.errstate(divide="ignore", invalid="ignore"):
        ious = np.diag(hist) / (hist.sum(1) + hist.sum(0) - np.diag(hist))
        ious[np.isnan(ious)] = 0
        ious = ious[:-1]
        accs = np.diag(hist) / hist.sum(axis=0)
        accs[np.isnan(accs)] = 0
        accs = accs[:-1]
    h = hist[:-1]
    return {"ious": ious * 100, "accs": accs * 100,
            "mIoU": np.multiply(np.mean(ious[list(ids)]), 100),
            "mAcc": np.multiply(np.mean(accs[list(ids)]), 100),
            "fIoU": np.multiply((ious * (h.sum(axis=1) / h.sum())).sum(), 100),
            "pAcc": np.multiply(np.diag(h).sum() / h.sum(), 100)}


@pytest.fixture(scope="module")
def bdd_val(bdd_root) -> list[Path]:
    files = sorted((bdd_root / "seg" / "labels" / "val").glob("*_train_id.png"))
    assert len(files) == 100
    return files


def test_real_val_masks_equal_toolkit(bdd_val, tmp_path):
    pred = tmp_path / "pred"
    preds: list[Path | None] = []
    for i, g in enumerate(bdd_val):
        if i % 10 == 9:  # no prediction: all misses
            preds.append(None)
            continue
        rng = np.random.default_rng(i)
        a = read_png(g).copy()
        a = np.roll(a, int(rng.integers(-20, 20)), axis=1)
        m = rng.random(a.shape) < 0.01
        a[m] = rng.choice([0, 2, 13, 19, 200, 254, 255], int(m.sum()))
        name = g.name.replace("_train_id", "")  # predictions are named after the image
        f = pred / name
        write_png(f, a) if i % 2 else (f.parent.mkdir(exist_ok=True), Image.fromarray(a).save(f))
        preds.append(f)
    ref = toolkit(bdd_val, preds)
    rep = evaluate_bdd100k(pred, bdd_val[0].parent, cache=tmp_path / "c", quiet=True, jobs=2)
    assert rep.ok, rep.errors
    assert "10 of 100 frames have no prediction" in rep.warnings[0]
    for key in ("mIoU", "mAcc", "fIoU", "pAcc"):
        assert rep.result[key] == pytest.approx(float(ref[key]), rel=1e-12), key
    np.testing.assert_allclose(list(rep.result["IoU"].values()), ref["ious"], rtol=1e-12)
    np.testing.assert_allclose(list(rep.result["Acc"].values()), ref["accs"], rtol=1e-12)
    # warm cache: same numbers
    rep2 = evaluate_bdd100k(pred, bdd_val[0].parent, cache=tmp_path / "c", quiet=True)
    assert rep2.cache["hits"] == 100 and rep2.result == rep.result


def test_palette_masks_are_read_as_indices(bdd_root, tmp_path):
    cm = bdd_root / "10k" / "colormaps" / "val"
    files = sorted(cm.glob("*.png"))
    assert Image.open(files[0]).mode == "P"
    pred = tmp_path / "pred"
    pred.mkdir()
    for f in files:  # predictions as plain 8-bit trainIds
        write_png(pred / f.name, np.asarray(Image.open(f)))
    rep = evaluate_bdd100k(pred, cm, cache=False, quiet=True)
    assert rep.ok, rep.errors
    assert rep.result["mIoU"] == 100.0 and rep.result["pAcc"] == 100.0


def test_bad_input_one_line_each(bdd_val, tmp_path):
    gt = tmp_path / "gt"
    pred = tmp_path / "pred"
    pred.mkdir()
    gt.mkdir()
    for g in bdd_val[:3]:
        shutil.copy(g, gt / g.name)
        shutil.copy(g, pred / g.name.replace("_train_id", ""))
    a = read_png(bdd_val[0])
    Image.fromarray(np.stack([a] * 3, -1)).save(pred / bdd_val[0].name.replace("_train_id", ""))
    b = read_png(gt / bdd_val[1].name)
    b[0, :4] = 30
    write_png(gt / bdd_val[1].name, b)
    res = run("evaluate", "bdd100k", "--pred", pred, "--gt", gt, "--no-cache", "-q")
    assert res.exit_code == 1
    errs = [ln for ln in res.output.splitlines() if ln.startswith("segprep: error:")]
    assert len(errs) == 2
    assert any("is a RGB image" in e and bdd_val[0].name.replace("_train_id", "") in e
               for e in errs)
    assert any("ground-truth value(s) 30 are neither a class (0-18) nor ignore (255)" in e
               for e in errs)
    assert "no scores" in res.output


# ----------------------------------------------------------------------------- odgt
def test_odgt_equals_direct_count(bdd_val, tmp_path):
    recs = []
    pred = tmp_path / "pred"
    gts = bdd_val[:20]
    direct = np.zeros((19, 20), np.int64)
    for i, g in enumerate(gts):
        stem = g.name.replace("_train_id.png", "")
        recs.append({"fpath_img": f"images/{stem}.jpg", "fpath_segm": str(g), "width": 1280,
                     "height": 720})
        gt = read_png(g)
        p = np.roll(gt, 7 * i, axis=0)
        write_png(pred / "sub" / f"{stem}.png", p)
        keep = gt != 255
        direct += np.bincount(gt[keep].astype(np.int64) * 20 + np.minimum(p[keep], 19),
                              minlength=19 * 20).reshape(19, 20)
    odgt = tmp_path / "val.odgt"
    odgt.write_text("".join(json.dumps(r) + "\n" for r in recs))
    rep = evaluate_odgt(odgt, pred, 19, cache=tmp_path / "c", quiet=True)
    assert rep.ok, rep.errors
    np.testing.assert_array_equal(rep.confusion, direct)
    s = scores(direct)
    assert rep.result["mIoU"] == pytest.approx(s.miou, rel=1e-12)
    assert rep.result["pixelAccuracy"] == pytest.approx(s.pixel_accuracy, rel=1e-12)
    # CLI with class names, table and plot
    out = tmp_path / "r.json"
    res = run("evaluate", "odgt", odgt, "--pred", pred, "--num-classes", "19", "--class-map",
              "bdd100k", "--json", out, "--plot", tmp_path / "cm.png", "--no-cache", "-q")
    assert res.exit_code == 0, res.output
    assert "traffic light" in res.output and "mIoU" in res.output
    assert json.loads(out.read_text())["mIoU"] == pytest.approx(s.miou, rel=1e-12)
    assert read_png(tmp_path / "cm.png").ndim == 3
    # a record without prediction: error by default, misses on request
    (pred / "sub" / f"{gts[0].name.replace('_train_id.png', '')}.png").unlink()
    with pytest.raises(SegprepError, match="no prediction for 1 of 20 frames"):
        evaluate_odgt(odgt, pred, 19, cache=False, quiet=True)
    rep = evaluate_odgt(odgt, pred, 19, cache=False, quiet=True, missing="miss")
    assert rep.ok and rep.confusion[:, 19].sum() > direct[:, 19].sum()
