"""``segprep submit``: the validator accepts a correct submission and rejects each defect kind,
listing every violation and writing no zip; the zip it writes holds exactly what the server
expects.

Cityscapes runs on the real ``gtFine/test/bonn`` layout (46 frames, no leftImg8bit for test, as the
shared data has it), with the official labelIds of those frames standing in for predictions.
"""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from segprep import class_maps
from segprep.cli.main import cli
from segprep.datasets.cityscapes import frame_key as frame_prefix
from segprep.datasets.cityscapes import split_frames as cityscapes_frames
from segprep.io import read_png, write_png
from segprep.submit import submit_bdd100k, submit_cityscapes

N_TEST = 46


def run(*args) -> CliRunner.Result:
    """``segprep ARGS``; Cityscapes submissions of the labelIds fixtures name ``--pred-ids
    labelIds`` (the official test annotations hold only void labelIds, which ``auto`` rightly
    refuses to classify: see test_pred_ids.py)."""
    argv = [str(a) for a in args]
    if argv[:2] == ["submit", "cityscapes"] and "--pred-ids" not in argv:
        argv += ["--pred-ids", "labelIds"]
    return CliRunner().invoke(cli, argv, catch_exceptions=False)


def errors(res) -> list[str]:
    return [ln for ln in res.output.splitlines() if ln.startswith("segprep: error:")]


@pytest.fixture(scope="module")
def template(cityscapes_root, tmp_path_factory) -> Path:
    """Predictions for the 46 test frames: their official labelIds, named <frame>_leftImg8bit.png
    under <city>/ (a results tree)."""
    out = tmp_path_factory.mktemp("preds")
    for g in sorted((cityscapes_root / "gtFine" / "test").glob("*/*_gtFine_labelIds.png")):
        dst = out / g.parent.name / f"{frame_prefix(g)}_leftImg8bit.png"
        dst.parent.mkdir(exist_ok=True)
        shutil.copy(g, dst)
    assert len(list(out.rglob("*.png"))) == N_TEST
    return out


@pytest.fixture()
def preds(template, tmp_path) -> Path:
    dst = tmp_path / "preds"
    shutil.copytree(template, dst)
    return dst


def test_frames_listed_from_images_else_gtfine(cityscapes_root):
    assert len(cityscapes_frames(cityscapes_root, "test")) == N_TEST  # gtFine/test: no images
    assert len(cityscapes_frames(cityscapes_root, "train")) == 4  # leftImg8bit/train has 4


def test_valid_submission_zip(cityscapes_root, preds, tmp_path):
    out = tmp_path / "sub" / "submission.zip"
    res = run("submit", "cityscapes", preds, "--root", cityscapes_root, "--split", "test", "-o",
              out, "-q")
    assert res.exit_code == 0, res.output
    assert "46 of 46 expected predictions matched, 0 violation(s)" in res.output
    with zipfile.ZipFile(out) as zf:
        names = zf.namelist()
        assert len(names) == N_TEST and all("/" not in n for n in names)
        for f in sorted(preds.rglob("*.png"))[:5]:  # valid labelIds files go in byte for byte
            assert zf.read(f.name) == f.read_bytes()
    assert not list(out.parent.glob(".*.tmp"))


def test_trainids_converted_in_zip_not_in_pred_dir(cityscapes_root, preds, tmp_path):
    cmap = class_maps.load("cityscapes")
    originals = {}
    for f in preds.rglob("*.png"):
        originals[f.name] = read_png(f)
        write_png(f, cmap.id_to_train_id[originals[f.name]])
    before = {f: f.read_bytes() for f in preds.rglob("*.png")}
    out = tmp_path / "s.zip"
    rep = submit_cityscapes(preds, cityscapes_root, out, pred_ids="trainIds", quiet=True)
    assert rep.ok, rep.violations
    assert any("converted to labelIds" in n for n in rep.notes)
    assert {f: f.read_bytes() for f in preds.rglob("*.png")} == before  # untouched
    with zipfile.ZipFile(out) as zf:
        for name in list(originals)[:6]:
            import io

            got = np.asarray(Image.open(io.BytesIO(zf.read(name))))
            want = cmap.train_id_to_id[cmap.id_to_train_id[originals[name]]]
            np.testing.assert_array_equal(got, want)
            assert Image.open(io.BytesIO(zf.read(name))).mode == "L"


def _defect(preds: Path, kind: str) -> Path:
    """Introduce one defect of ``kind``; returns the file concerned."""
    files = sorted(preds.rglob("*.png"))
    f = files[7]
    a = read_png(f)
    if kind == "missing":
        f.unlink()
    elif kind == "duplicate":
        f = f.with_name(f.name.replace("_leftImg8bit", "_copy"))
        shutil.copy(files[7], f)
    elif kind == "extra":
        f = preds / "bonn" / "bonn_999999_000019_leftImg8bit.png"
        shutil.copy(files[7], f)
    elif kind == "size":
        write_png(f, a[:512, :1024])
    elif kind == "rgb":
        Image.fromarray(np.stack([a] * 3, -1)).save(f)
    elif kind == "16bit":
        write_png(f, a.astype(np.uint16))
    elif kind == "palette":
        im = Image.fromarray(a).convert("P")
        im.putpalette(class_maps.load("cityscapes").id_colors.reshape(-1).tolist())
        im.save(f)
    elif kind == "value255":
        a = a.copy()
        a[:2, :5] = 255
        write_png(f, a)
    elif kind == "value34":
        a = a.copy()
        a[5, :3] = 34
        write_png(f, a)
    elif kind == "jpeg":
        f.unlink()
        f = f.with_suffix(".jpg")
        Image.fromarray(a).save(f, quality=95)
    elif kind == "truncated":
        f.write_bytes(f.read_bytes()[:4000])
    return f


EXPECT = {
    "missing": "no prediction for this test image",
    "duplicate": "2 predictions",
    "extra": "matches no test image of the split",
    "size": "size 1024x512, expected 2048x1024",
    "rgb": "RGB image; expected single-channel 8-bit (mode L)",
    "16bit": "16-bit gray; expected 8-bit single-channel (mode L)",
    "palette": "palette PNG: the server reads its indices",
    "value255": "invalid labelIds value(s) 255 (10 px); valid: labelIds 0-33",
    "value34": "invalid labelIds value(s) 34 (3 px)",
    "jpeg": "not a PNG file",
    "truncated": "truncated",
}


@pytest.mark.parametrize("kind", list(EXPECT))
def test_each_defect_is_listed_and_no_zip(cityscapes_root, preds, tmp_path, kind):
    f = _defect(preds, kind)
    out = tmp_path / "submission.zip"
    res = run("submit", "cityscapes", preds, "--root", cityscapes_root, "-o", out, "-q")
    assert res.exit_code == 1, res.output
    errs = errors(res)
    assert len(errs) == 1, errs
    assert any(EXPECT[kind] in e for e in errs), errs
    key = frame_prefix(f) if kind in ("missing", "duplicate") else str(f)
    assert any(key in e for e in errs), errs
    assert "submission refused" in res.output
    assert not out.exists()


def test_all_violations_listed_at_once(cityscapes_root, preds, tmp_path):
    files = sorted(preds.rglob("*.png"))
    Image.fromarray(np.stack([read_png(files[0])] * 3, -1)).save(files[0])
    write_png(files[1], read_png(files[1])[:100, :100])
    files[2].unlink()
    rep = submit_cityscapes(preds, cityscapes_root, tmp_path / "s.zip", pred_ids="labelIds", quiet=True)
    assert len(rep.violations) == 3 and rep.written is None
    assert not (tmp_path / "s.zip").exists()


def test_allow_palette_submits_indices(cityscapes_root, preds, tmp_path):
    f = _defect(preds, "palette")
    out = tmp_path / "s.zip"
    res = run("submit", "cityscapes", preds, "--root", cityscapes_root, "-o", out,
              "--allow-palette", "-q")
    assert res.exit_code == 0, res.output
    assert "indices are submitted as 8-bit gray" in res.output
    import io

    with zipfile.ZipFile(out) as zf:
        im = Image.open(io.BytesIO(zf.read(f.name)))
        assert im.mode == "L"
        np.testing.assert_array_equal(np.asarray(im), np.asarray(Image.open(f)))


def test_size_option_and_check_only(cityscapes_root, preds, tmp_path):
    res = run("submit", "cityscapes", preds, "--root", cityscapes_root, "--size", "1024x512",
              "--check", "-q")
    assert res.exit_code == 1 and len(errors(res)) == N_TEST
    res = run("submit", "cityscapes", preds, "--root", cityscapes_root, "--check", "-q")
    assert res.exit_code == 0 and "no zip written" in res.output
    res = run("submit", "cityscapes", preds, "--root", cityscapes_root, "-q")
    assert res.exit_code == 2  # neither -o nor --check


# ----------------------------------------------------------------------------- BDD100K
@pytest.fixture()
def bdd_preds(bdd_root, tmp_path) -> tuple[Path, Path]:
    images = bdd_root / "10k" / "images" / "val"
    pred = tmp_path / "bdd"
    pred.mkdir()
    for f in sorted((bdd_root / "10k" / "colormaps" / "val").glob("*.png")):
        write_png(pred / f.name, np.asarray(Image.open(f)))  # palette indices -> 8-bit trainIds
    return images, pred


def test_bdd100k_valid_and_defects(bdd_preds, tmp_path):
    images, pred = bdd_preds
    out = tmp_path / "bdd.zip"
    rep = submit_bdd100k(pred, images, out, quiet=True)
    assert rep.ok, rep.violations
    with zipfile.ZipFile(out) as zf:
        assert sorted(zf.namelist()) == sorted(f"{p.stem}.png" for p in images.glob("*.jpg"))
    files = sorted(pred.glob("*.png"))
    a = read_png(files[0]).copy()
    a[0, :6] = 19
    write_png(files[0], a)
    write_png(files[1], read_png(files[1])[:360])
    files[2].unlink()
    res = run("submit", "bdd100k", pred, "--images", images, "-o", tmp_path / "b2.zip", "-q")
    assert res.exit_code == 1
    errs = errors(res)
    assert len(errs) == 3
    assert any("invalid trainIds value(s) 19 (6 px); valid: trainIds 0-18, 255" in e for e in errs)
    assert any("size 1280x360, expected 1280x720" in e for e in errs)
    assert any(files[2].stem in e and "no prediction" in e for e in errs)
    assert not (tmp_path / "b2.zip").exists()
