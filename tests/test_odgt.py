"""``segprep odgt create / validate / export-csail`` and the manifest library, on the real data in
../shared/data (SegNet CamVid, Cityscapes aachen, BDD100K 2018 and 10k).

Layouts that the shared data does not hold as released (BDD100K ``images/10k`` +
``labels/sem_seg/masks``, the 2018 ``seg/images``, Cityscapes trainIds) are rebuilt in tmp_path from
symlinks to the real files (or, for Cityscapes trainIds, by ``segprep cityscapes gen-gt``).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from segprep import class_maps
from segprep import manifest as mf
from segprep.cli.main import cli
from segprep.datasets import generic
from segprep.errors import SegprepError


def run(*args: object) -> CliRunner.Result:
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def lines_of(path: Path) -> list[dict]:
    text = path.read_text()
    assert text.endswith("\n")
    return [json.loads(x) for x in text.splitlines()]


def error_lines(output: str) -> list[str]:
    return [ln for ln in output.splitlines() if ln.startswith("segprep: error:")]


def assert_resolves(odgt: Path, root: Path | None = None) -> list[dict]:
    """Every line is CSAIL's exact format and both files exist at the recorded size."""
    root = root or odgt.parent
    recs = lines_of(odgt)
    for line, rec in zip(odgt.read_text().splitlines(), recs):
        assert list(rec) == ["fpath_img", "fpath_segm", "width", "height"]
        assert line == json.dumps(rec)  # CSAIL's json.dumps layout
        for key in ("fpath_img", "fpath_segm"):
            path = root / rec[key]
            assert path.is_file(), path
            with Image.open(path) as im:
                assert im.size == (rec["width"], rec["height"]), path
    keys = [(r["fpath_img"], r["fpath_segm"]) for r in recs]
    assert keys == sorted(keys)
    return recs


# ----------------------------------------------------------------------------- SegNet CamVid
@pytest.fixture(scope="module")
def segnet(camvid_root) -> Path:
    return camvid_root / "segnet"


@pytest.fixture(scope="module")
def camvid_train(segnet, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cv") / "lists" / "train.odgt"
    res = run("odgt", "create", "--dataset", "camvid-segnet", segnet, "--split", "train",
              "-o", out, "-j", "1")
    assert res.exit_code == 0, res.output
    return out


def test_create_camvid_preset(camvid_train, segnet):
    recs = assert_resolves(camvid_train)
    assert len(recs) == 367
    assert {(r["width"], r["height"]) for r in recs} == {(480, 360)}
    # the list file's frames, re-rooted by their last two components
    listed = [ln.split() for ln in (segnet / "train.txt").read_text().splitlines()]
    expect = sorted((segnet / Path(a).parent.name / Path(a).name,
                     segnet / Path(b).parent.name / Path(b).name) for a, b in listed)
    got = [(Path(os.path.normpath(camvid_train.parent / r["fpath_img"])),
            Path(os.path.normpath(camvid_train.parent / r["fpath_segm"]))) for r in recs]
    assert got == expect
    assert all(not os.path.isabs(r["fpath_img"]) for r in recs)


def test_create_is_deterministic_and_folder_pairing_agrees(camvid_train, segnet, tmp_path):
    """Same bytes with 2 workers, and pairing the folders by stem gives the list file's pairs."""
    out = tmp_path / "lists" / "train.odgt"
    res = run("odgt", "create", "--images", segnet / "train", "--masks", segnet / "trainannot",
              "-o", out, "-j", "2")
    assert res.exit_code == 0, res.output
    assert out.read_bytes() == camvid_train.read_bytes()
    # rerun: existing output skipped; --overwrite rewrites the same bytes
    res = run("odgt", "create", "--images", segnet / "train", "--masks", segnet / "trainannot",
              "-o", out)
    assert res.exit_code == 0 and "skipped" in res.output
    res = run("odgt", "create", "--images", segnet / "train", "--masks", segnet / "trainannot",
              "-o", out, "--overwrite", "-j", "1")
    assert res.exit_code == 0 and out.read_bytes() == camvid_train.read_bytes()


def test_create_root_and_absolute(segnet, tmp_path):
    out = tmp_path / "a.odgt"
    res = run("odgt", "create", "--dataset", "camvid-segnet", segnet, "--split", "val",
              "--root", segnet, "-o", out, "-j", "1")
    assert res.exit_code == 0, res.output
    recs = assert_resolves(out, root=segnet)
    assert len(recs) == 101 and recs[0]["fpath_img"].startswith("val/")
    assert recs[0]["fpath_segm"].startswith("valannot/")
    res = run("odgt", "create", "--dataset", "camvid-segnet", segnet, "--split", "val",
              "--absolute", "-o", tmp_path / "b.odgt", "-j", "1")
    assert res.exit_code == 0, res.output
    recs_abs = lines_of(tmp_path / "b.odgt")
    assert all(os.path.isabs(r["fpath_img"]) and os.path.isfile(r["fpath_segm"])
               for r in recs_abs)
    assert [os.path.relpath(r["fpath_img"], segnet) for r in recs_abs] == \
        [r["fpath_img"] for r in recs]


def _small_camvid(segnet: Path, tmp_path: Path, n: int = 6) -> Path:
    """A tmp copy of ``n`` real SegNet train frames: images/ + masks/."""
    root = tmp_path / "small"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for p in sorted((segnet / "train").glob("*.png"))[:n]:
        shutil.copy(p, root / "images" / p.name)
        shutil.copy(segnet / "trainannot" / p.name, root / "masks" / p.name)
    return root


def test_create_unpaired_is_an_error_unless_allowed(segnet, tmp_path):
    root = _small_camvid(segnet, tmp_path)
    lone_mask = sorted((root / "masks").glob("*.png"))[1]
    lone_img = sorted((root / "images").glob("*.png"))[4]
    (root / "images" / lone_mask.name).unlink()
    (root / "masks" / lone_img.name).unlink()
    out = root / "x.odgt"
    res = run("odgt", "create", "--images", root / "images", "--masks", root / "masks", "-o", out)
    assert res.exit_code == 1, res.output
    errs = error_lines(res.output)
    assert any(str(lone_mask) in e and "mask without image" in e for e in errs), errs
    assert any(str(lone_img) in e and "image without mask" in e for e in errs), errs
    assert not out.exists()
    res = run("odgt", "create", "--images", root / "images", "--masks", root / "masks", "-o", out,
              "--allow-missing")
    assert res.exit_code == 0, res.output
    recs = assert_resolves(out)
    assert len(recs) == 4
    assert not any(lone_img.name in r["fpath_img"] or lone_mask.name in r["fpath_segm"]
                   for r in recs)


def test_bad_usage(segnet, tmp_path):
    res = run("odgt", "create", "-o", tmp_path / "x.odgt")
    assert res.exit_code == 2
    res = run("odgt", "create", "--dataset", "camvid-segnet", segnet, "-o", tmp_path / "x.odgt")
    assert res.exit_code == 2 and "--split" in res.output
    res = run("odgt", "create", "--dataset", "bdd100k", segnet, "--split", "train",
              "-o", tmp_path / "x.odgt")
    assert res.exit_code == 2 and "no BDD100K layout" in res.output


# ----------------------------------------------------------------------------- Cityscapes
@pytest.fixture(scope="module")
def cityscapes_trainids(cityscapes_root, tmp_path_factory) -> Path:
    """A Cityscapes root: real leftImg8bit (symlink) + trainIds written by `cityscapes gen-gt`."""
    root = tmp_path_factory.mktemp("csroot")
    res = run("cityscapes", "gen-gt", cityscapes_root, "--split", "train", "-o", root, "-q",
              "-j", "2")
    assert res.exit_code == 0, res.output
    (root / "leftImg8bit").symlink_to(cityscapes_root / "leftImg8bit")
    return root


def test_cityscapes_preset_trainids(cityscapes_trainids, cityscapes_root, tmp_path):
    out = tmp_path / "cs_train.odgt"
    args = ("odgt", "create", "--dataset", "cityscapes", cityscapes_trainids, "--split", "train",
            "-o", out, "-j", "1")
    res = run(*args)
    assert res.exit_code == 1  # 100 masks, 4 images: 96 masks without image
    errs = error_lines(res.output)
    assert "96 unpaired" in errs[-1] and "mask without image" in errs[0]
    assert not out.exists()
    res = run(*args, "--allow-missing")
    assert res.exit_code == 0, res.output
    recs = assert_resolves(out)
    assert len(recs) == 4 and {(r["width"], r["height"]) for r in recs} == {(2048, 1024)}
    assert all(r["fpath_segm"].endswith("_gtFine_labelTrainIds.png") for r in recs)
    assert all("/leftImg8bit/train/aachen/" in r["fpath_img"] for r in recs)
    for r in recs:  # stems agree
        assert Path(r["fpath_img"]).name.replace("_leftImg8bit.png", "") == \
            Path(r["fpath_segm"]).name.replace("_gtFine_labelTrainIds.png", "")
    res = run("odgt", "validate", out, "--class-map", "cityscapes", "-j", "1")
    assert res.exit_code == 0, res.output


def test_cityscapes_preset_label_ids(cityscapes_root, tmp_path):
    out = tmp_path / "cs_ids.odgt"
    res = run("odgt", "create", "--dataset", "cityscapes", cityscapes_root, "--split", "train",
              "--mask-suffix", "_gtFine_labelIds.png", "--allow-missing", "-o", out, "-j", "1")
    assert res.exit_code == 0, res.output
    assert len(assert_resolves(out)) == 4
    # label ids are valid label ids but not trainIds
    assert run("odgt", "validate", out, "--class-map", "cityscapes", "--ids", "label",
               "-j", "1").exit_code == 0
    res = run("odgt", "validate", out, "--class-map", "cityscapes", "-j", "1")
    assert res.exit_code == 1 and len(error_lines(res.output)) == 4
    # the val split has masks but no images in the shared data
    res = run("odgt", "create", "--dataset", "cityscapes", cityscapes_root, "--split", "val",
              "--mask-suffix", "_gtFine_labelIds.png", "-o", tmp_path / "v.odgt")
    assert res.exit_code == 1 and "59 unpaired" in res.output and "folder missing" in res.output
    res = run("odgt", "create", "--dataset", "cityscapes", cityscapes_root, "--split", "val",
              "--mask-suffix", "_gtFine_labelIds.png", "-o", tmp_path / "v.odgt",
              "--allow-missing")
    assert res.exit_code == 2 and "no image/mask pairs" in res.output


# ----------------------------------------------------------------------------- BDD100K
def _link_tree(pairs: list[tuple[Path, Path]]) -> None:
    for link, target in pairs:
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(target)


def test_bdd_official_10k_layout(bdd_root, tmp_path):
    """images/10k/S + labels/sem_seg/masks/S (2020+ release), from symlinks to the real files."""
    root = tmp_path / "bdd100k"
    _link_tree([(root / "images" / "10k" / s, bdd_root / "10k" / "images" / s)
                for s in ("train", "val")]
               + [(root / "labels" / "sem_seg" / "masks" / s, bdd_root / "10k" / "colormaps" / s)
                  for s in ("train", "val")])
    for split, n in (("train", 16), ("val", 8)):
        out = root / f"{split}.odgt"
        res = run("odgt", "create", "--dataset", "bdd100k", root, "--split", split, "-o", out,
                  "-j", "1")
        assert res.exit_code == 0, res.output
        recs = assert_resolves(out)
        assert len(recs) == n
        assert all(r["fpath_img"].startswith(f"images/10k/{split}/") and
                   r["fpath_img"].endswith(".jpg") for r in recs)
        assert all(r["fpath_segm"].startswith(f"labels/sem_seg/masks/{split}/") for r in recs)
        # palette masks whose indices are trainIds
        res = run("odgt", "validate", out, "--num-classes", "19", "-j", "1")
        assert res.exit_code == 0, res.output


def test_bdd_2018_layout(bdd_root, tmp_path):
    """seg/images/S/*.jpg + seg/labels/S/*_train_id.png; the shared data has no 2018 images, so
    the color labels stand in for them (same frames, same 1280x720 size)."""
    root = tmp_path / "bdd100k"
    links = []
    for s in ("train", "val"):
        for p in sorted((bdd_root / "seg" / "color_labels" / s).glob("*_train_color.png")):
            stem = p.name[: -len("_train_color.png")]
            links.append((root / "seg" / "images" / s / f"{stem}.jpg", p))
        links.append((root / "seg" / "labels" / s, bdd_root / "seg" / "labels" / s))
    _link_tree(links)
    out = root / "train.odgt"
    res = run("odgt", "create", "--dataset", "bdd100k", root, "--split", "train", "-o", out,
              "-j", "1")
    assert res.exit_code == 0, res.output
    recs = assert_resolves(out)
    assert len(recs) == 300 and {(r["width"], r["height"]) for r in recs} == {(1280, 720)}
    assert all(r["fpath_segm"].startswith("seg/labels/train/") and
               r["fpath_segm"].endswith("_train_id.png") for r in recs)
    # ROOT may also be the seg folder itself
    res = run("odgt", "create", "--dataset", "bdd100k", root / "seg", "--split", "val",
              "-o", root / "val.odgt", "-j", "1")
    assert res.exit_code == 0, res.output
    assert len(assert_resolves(root / "val.odgt")) == 100


# ----------------------------------------------------------------------------- validate
def _write_lines(path: Path, lines: list[str]) -> None:
    path.write_text("".join(ln + "\n" for ln in lines))


def problems_by_line(output: str, odgt: Path) -> dict[int, list[str]]:
    """``segprep: error: FILE:LINE: message`` lines, by line number."""
    out: dict[int, list[str]] = {}
    for e in error_lines(output):
        loc, msg = e[len("segprep: error: "):].split(": ", 1)
        assert loc.startswith(f"{odgt}:"), e
        out.setdefault(int(loc.rsplit(":", 1)[1]), []).append(msg)
    return out


def test_validate_catches_each_defect(segnet, tmp_path):
    root = _small_camvid(segnet, tmp_path, n=8)
    out = root / "all.odgt"
    assert run("odgt", "create", "--images", root / "images", "--masks", root / "masks",
               "-o", out, "-j", "1").exit_code == 0
    assert run("odgt", "validate", out, "--num-classes", "11", "--ignore-index", "11",
               "-j", "1").exit_code == 0
    lines = out.read_text().splitlines()
    recs = [json.loads(x) for x in lines]
    # line 1: fine. line 2: missing image file
    (root / recs[1]["fpath_img"]).unlink()
    # line 3: recorded size differs from the files
    lines[2] = json.dumps({**recs[2], "width": 481})
    # line 4: RGB mask (the camera frame saved as the mask)
    shutil.copy(root / recs[3]["fpath_img"], root / recs[3]["fpath_segm"])
    # line 5: out-of-range value (12 with K=11, ignore 11)
    m = np.asarray(Image.open(root / recs[4]["fpath_segm"])).copy()
    m[:3, :5] = 12
    Image.fromarray(m).save(root / recs[4]["fpath_segm"])
    # line 6: broken JSON
    lines[5] = lines[5][:40]
    # line 7: missing key; line 8: fine
    lines[6] = json.dumps({k: v for k, v in recs[6].items() if k != "height"})
    # line 9: duplicate of line 1; line 10: empty; line 11: two objects on one line
    lines += [lines[0], "", lines[7] + lines[7]]
    _write_lines(out, lines)
    report_path = tmp_path / "report.json"
    res = run("odgt", "validate", out, "--num-classes", "11", "--ignore-index", "11",
              "--json", report_path, "-j", "2")
    assert res.exit_code == 1, res.output
    errs = error_lines(res.output)
    by_line = problems_by_line(res.output, out)
    assert sorted(by_line) == [2, 3, 4, 5, 6, 7, 9, 10, 11], errs
    assert "no such file" in by_line[2][0] and "image" in by_line[2][0]
    assert any("481x360" in m for m in by_line[3]) and len(by_line[3]) == 2  # image and mask
    assert "mode RGB" in by_line[4][0] and "single-channel" in by_line[4][0]
    assert "12 (15 px)" in by_line[5][0]
    assert "broken JSON" in by_line[6][0]
    assert "missing key(s) height" in by_line[7][0]
    assert "duplicate" in by_line[9][0] and "line 1" in by_line[9][0]
    assert "empty line" in by_line[10][0]
    assert "missing newline" in by_line[11][0]
    report = json.loads(report_path.read_text())
    assert report["lines"] == 11 and report["ok_lines"] == 2
    assert {p["line"] for p in report["problems"]} == set(by_line)
    # the value check needs a class set; without one the bad value passes but the rest do not
    res = run("odgt", "validate", out, "-j", "1")
    assert sorted(problems_by_line(res.output, out)) == [2, 3, 4, 6, 7, 9, 10, 11]


def test_validate_class_map_train_vs_label_ids():
    cm = class_maps.load("cityscapes")
    train = mf.allowed_values(class_map="cityscapes")
    assert np.flatnonzero(train).tolist() == list(range(19)) + [255]
    label = mf.allowed_values(class_map="cityscapes", ids="label")
    assert np.flatnonzero(label).tolist() == cm.valid_ids.tolist()
    assert np.flatnonzero(mf.allowed_values(num_classes=11, ignore_index=11)).tolist() == \
        list(range(12))
    assert mf.allowed_values() is None
    with pytest.raises(SegprepError):
        mf.allowed_values(num_classes=19, class_map="cityscapes")


def test_read_odgt_rejects_a_file_without_newlines(tmp_path):
    """The BDD100K seed script's output: all JSON objects on one line."""
    rec = mf.Record("a.jpg", "a.png", 4, 3)
    path = tmp_path / "x.odgt"
    path.write_text(rec.to_line() + rec.to_line())
    with pytest.raises(SegprepError, match=r"x.odgt:1: several JSON objects"):
        mf.read_odgt(path)
    mf.write_odgt(path, [mf.Record("b.jpg", "b.png", 4, 3), rec])
    assert path.read_text() == rec.to_line() + "\n" + \
        '{"fpath_img": "b.jpg", "fpath_segm": "b.png", "width": 4, "height": 3}\n'
    assert mf.read_odgt(path) == [rec, mf.Record("b.jpg", "b.png", 4, 3)]


# ----------------------------------------------------------------------------- export-csail
def test_export_csail(segnet, tmp_path):
    root = _small_camvid(segnet, tmp_path, n=5)
    src = root / "train.odgt"
    assert run("odgt", "create", "--images", root / "images", "--masks", root / "masks",
               "-o", src, "-j", "1").exit_code == 0
    outdir = tmp_path / "csail"
    res = run("odgt", "export-csail", src, outdir, "--ignore-index", "11", "--num-classes", "11",
              "-j", "2", "-q")
    assert res.exit_code == 0, res.output
    assert "5 done" in res.output
    out_odgt = outdir / "train.odgt"
    recs = assert_resolves(out_odgt)
    assert len(recs) == 5
    for r, s in zip(recs, lines_of(src)):
        exported = outdir / r["fpath_segm"]
        assert exported == outdir / s["fpath_segm"]  # OUTDIR/<relative mask path>
        with Image.open(exported) as im:
            assert im.mode == "L"
            got = np.asarray(im)
        orig = np.asarray(Image.open(root / s["fpath_segm"])).astype(np.int64)
        expect = np.where(orig == 11, 0, orig + 1)
        assert np.array_equal(got, expect)
        assert os.path.samefile(outdir / r["fpath_img"], root / s["fpath_img"])
        # CSAIL's loader: value - 1, ignore -> -1
        assert np.array_equal(got.astype(np.int64) - 1, np.where(orig == 11, -1, orig))
    # rerun skips; exporting onto the source masks is refused
    res = run("odgt", "export-csail", src, outdir, "--ignore-index", "11", "-j", "1")
    assert res.exit_code == 0 and "5 skipped" in res.output
    res = run("odgt", "export-csail", src, root, "--ignore-index", "11", "-j", "1")
    assert res.exit_code == 2 and "overwrite a source mask" in res.output


def test_export_csail_paths_never_leave_outdir(camvid_train, tmp_path):
    """camvid_train's paths climb with '..': masks go under OUTDIR by their common folder."""
    recs = mf.read_odgt(camvid_train)[:3]
    pairs = mf.csail_targets(recs, camvid_train.parent, tmp_path / "o")
    for s, d in pairs:
        assert d.parent == tmp_path / "o" and d.name == s.name


def test_csail_lut():
    lut = mf.csail_lut(255, 19)
    assert lut[0] == 1 and lut[18] == 19 and lut[255] == 0 and lut[19] == -1
    lut = mf.csail_lut(11)
    assert lut[11] == 0 and lut[12] == 13 and lut[255] == -1


def test_pairing_in_one_folder_and_duplicate_stems(segnet, tmp_path):
    """Images and masks side by side (the longer suffix wins), and stems that are not unique."""
    flat = tmp_path / "flat"
    flat.mkdir()
    names = sorted(p.name for p in (segnet / "train").glob("*.png"))[:3]
    for n in names:
        shutil.copy(segnet / "train" / n, flat / n)
        shutil.copy(segnet / "trainannot" / n, flat / n.replace(".png", "_L.png"))
    pairing = generic.pair_by_stem(flat, flat, ".png", "_L.png")
    assert [(i.name, m.name) for i, m in pairing.pairs] == \
        [(n, n.replace(".png", "_L.png")) for n in names]
    assert pairing.unpaired == []
    (flat / "sub").mkdir()
    shutil.copy(segnet / "train" / names[0], flat / "sub" / names[0])
    with pytest.raises(SegprepError, match="more than once"):
        generic.pair_by_stem(flat, flat, ".png", "_L.png")
