"""``segprep camvid convert`` on the real CamVid data in ../shared/data.

* 32-class color labels of CamSeq01 → SegNet's 11 classes: the default (segnet) mapping agrees
  with SegNet's released ``valannot`` on ≥ 99.9 % of pixels (full-res result at ``[1::2, 0::2]``),
  better than MSeg's and MathWorks' published tables;
* 32 classes: alphabetical index, Void → 255 (or --void-id); both palette file formats;
* SegNet index masks (--input index); --size; bad inputs; resume.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from segprep import class_maps
from segprep.cli.main import cli
from segprep.convert import camvid as cv
from segprep.datasets import camvid as cv_data
from segprep.errors import SegprepError
from segprep.io import read_png, write_png


def run(*args) -> CliRunner.Result:
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def official_palette(camvid_root: Path) -> dict[str, tuple[int, int, int]]:
    """Class name → color, straight from the release's label_colors.txt (independent parser)."""
    out = {}
    for line in (camvid_root / "label_colors.txt").read_text().splitlines():
        p = line.split()
        if p:
            out[p[3]] = (int(p[0]), int(p[1]), int(p[2]))
    return out


def labels(camvid_root: Path) -> list[Path]:
    files = sorted((camvid_root / "camseq01" / "labels").glob("*_L.png"))
    assert len(files) == 40
    return files


def agreement(out_dir: Path, camvid_root: Path, files: list[Path]) -> float:
    same = total = 0
    for f in files:
        ref = read_png(camvid_root / "segnet" / "valannot" / f"{f.name[:-6]}.png")
        ours = read_png(out_dir / f"{f.name[:-6]}.png")
        sample = ours[1::2, 0::2] if ours.shape != ref.shape else ours
        same += np.count_nonzero(sample == ref)
        total += ref.size
    return same / total


def test_class_maps_match_the_release(camvid_root):
    pal = official_palette(camvid_root)
    cm = class_maps.load("camvid32")
    assert list(cm.names) == list(pal)  # the official alphabetical order
    assert [tuple(c) for c in cm.colors.tolist()] == list(pal.values())
    assert cm.train_ids[cm.index_of("Void")] == 255 and cm.ids[cm.index_of("Wall")] == 31
    for f in ("label_colors.txt", "class_dict.csv"):
        rows = cv.read_palette_file(camvid_root / f)
        assert [n for n, _ in rows] == list(pal) and [c for _, c in rows] == list(pal.values())
    segnet11 = class_maps.load("camvid11")
    assert segnet11.train_names == ("Sky", "Building", "Pole", "Road", "Pavement", "Tree",
                                    "SignSymbol", "Fence", "Car", "Pedestrian", "Bicyclist")
    for m in cv.MAPPINGS:  # every mapping table lists the same 32 classes, ids and colors
        t = class_maps.load(f"camvid11_{m}")
        assert t.names == cm.names and np.array_equal(t.colors, cm.colors)
        assert set(t.train_ids.tolist()) <= set(range(11)) | {255}
        assert t.categories[t.index_of("Void")] == "void" and t.train_ids[t.index_of("Void")] == 255


@pytest.fixture(scope="module")
def segnet_out(camvid_root, tmp_path_factory) -> dict[str, Path]:
    outs = {}
    for m in cv.MAPPINGS:
        out = tmp_path_factory.mktemp(m)
        res = run("camvid", "convert", camvid_root / "camseq01" / "labels", out, "--classes", "11",
                  "--mapping", m, "--void-id", "11", "-j", "2", "-q")
        assert res.exit_code == 0, res.output
        assert "40 done" in res.output
        outs[m] = out
    return outs


def test_segnet_mapping_reproduces_segnet_labels(camvid_root, segnet_out):
    files = labels(camvid_root)
    scores = {m: agreement(segnet_out[m], camvid_root, files) for m in cv.MAPPINGS}
    assert scores["segnet"] >= 0.999
    assert scores["mseg"] < scores["mathworks"] < scores["segnet"]
    out = read_png(segnet_out["segnet"] / "0016E5_07959.png")
    assert out.shape == (720, 960) and set(np.unique(out).tolist()) <= set(range(12))


def test_32_classes_and_void(camvid_root, tmp_path):
    pal = official_palette(camvid_root)
    names = list(pal)
    files = labels(camvid_root)[:4]
    src = tmp_path / "src"
    src.mkdir()
    for f in files:
        shutil.copy(f, src / f.name)
    res = run("camvid", "convert", src, tmp_path / "a", "--classes", "32", "-q")
    assert res.exit_code == 0, res.output
    res = run("camvid", "convert", src, tmp_path / "b", "--classes", "32", "--void-id", "30", "-q")
    assert res.exit_code == 0, res.output
    for f in files:
        rgb = read_png(f)
        expect = np.full(rgb.shape[:2], 99, np.uint8)
        for i, n in enumerate(names):
            expect[(rgb == pal[n]).all(axis=2)] = i
        assert (expect != 99).all()
        a = read_png(tmp_path / "a" / f"{f.name[:-6]}.png")
        b = read_png(tmp_path / "b" / f"{f.name[:-6]}.png")
        assert np.array_equal(b, expect)  # --void-id 30: the plain alphabetical index
        assert np.array_equal(a, np.where(expect == 30, 255, expect))  # Void → 255


def test_palette_files_give_identical_masks(camvid_root, tmp_path):
    f = labels(camvid_root)[0]
    outs = []
    for extra in ([], ["--palette", camvid_root / "label_colors.txt"],
                  ["--palette", camvid_root / "class_dict.csv"]):
        out = tmp_path / f"o{len(outs)}"
        res = run("camvid", "convert", f, out, "--classes", "11", *extra, "-q")
        assert res.exit_code == 0, res.output
        outs.append(read_png(out / "0016E5_07959.png"))
    assert np.array_equal(outs[0], outs[1]) and np.array_equal(outs[0], outs[2])
    bad = tmp_path / "bad_dict.csv"
    bad.write_text("name,r,g,b\nSky,1,2,3\nRoad,4,5,6\n")
    res = run("camvid", "convert", f, tmp_path / "x", "--classes", "11", "--palette", bad)
    assert res.exit_code == 2 and "not a CamVid 32-class palette: missing class(es)" in res.output


def test_index_input_and_size(camvid_root, tmp_path):
    annot = camvid_root / "segnet" / "valannot"
    res = run("camvid", "convert", annot, tmp_path / "v11", "--classes", "11", "--input", "index",
              "--void-id", "11", "-j", "2", "-q")
    assert res.exit_code == 0 and "101 done" in res.output
    res = run("camvid", "convert", annot, tmp_path / "v255", "--classes", "11", "--input",
              "index", "-j", "2", "-q")
    assert res.exit_code == 0
    for f in sorted(annot.glob("*.png"))[:10]:
        ref = read_png(f)
        assert np.array_equal(read_png(tmp_path / "v11" / f.name), ref)
        assert np.array_equal(read_png(tmp_path / "v255" / f.name), np.where(ref == 11, 255, ref))
    res = run("camvid", "convert", annot, tmp_path / "x", "--classes", "32", "--input", "index")
    assert res.exit_code == 2 and "use --classes 11" in res.output
    # --size: nearest neighbour at pixel centres, shape W x H
    src = labels(camvid_root)[0]
    res = run("camvid", "convert", src, tmp_path / "s", "--classes", "11", "--size", "480x360",
              "--void-id", "11", "-q")
    assert res.exit_code == 0
    small = read_png(tmp_path / "s" / "0016E5_07959.png")
    assert small.shape == (360, 480)
    res = run("camvid", "convert", src, tmp_path / "f", "--classes", "11", "--void-id", "11", "-q")
    big = read_png(tmp_path / "f" / "0016E5_07959.png")
    assert np.array_equal(small, big[1::2, 1::2])  # floor((i + 0.5) * 2) = 2i + 1
    ref = read_png(annot / "0016E5_07959.png")
    assert np.count_nonzero(small == ref) / ref.size > 0.98
    assert cv.resize_nearest(np.arange(12, dtype=np.uint8).reshape(3, 4), (2, 3)).tolist() == \
        [[1, 3], [5, 7], [9, 11]]
    for bad in ("480", "0x360", "axb"):
        res = run("camvid", "convert", src, tmp_path / "z", "--classes", "11", "--size", bad)
        assert res.exit_code == 2 and "expected WxH" in res.output


def test_bad_inputs(camvid_root, tmp_path):
    files = labels(camvid_root)[:4]
    src = tmp_path / "src"
    src.mkdir()
    for f in files:
        shutil.copy(f, src / f.name)
    img = read_png(src / files[0].name)
    img[100:105, 200:204] = (7, 7, 7)
    write_png(src / files[0].name, img)
    write_png(src / files[1].name, img[..., 0])  # gray: wrong mode
    data = (src / files[2].name).read_bytes()
    (src / files[2].name).write_bytes(data[:2000])
    res = run("camvid", "convert", src, tmp_path / "o", "--classes", "11", "-q")
    assert res.exit_code == 1
    assert (f"{src / files[0].name}: 1 color(s) not in the camvid11_segnet id-level palette: "
            f"(7, 7, 7) × 20 px") in res.output
    assert f"{src / files[1].name}: expected an RGB, RGBA or palette-mode" in res.output
    assert f"{src / files[2].name}: corrupt or truncated PNG" in res.output
    assert "1 done, 0 skipped, 3 failed" in res.output
    res = run("camvid", "convert", src / files[0].name, tmp_path / "i", "--classes", "11",
              "--unknown", "ignore", "-q")
    assert res.exit_code == 0
    assert (read_png(tmp_path / "i" / f"{files[0].name[:-6]}.png")[100:105, 200:204] == 255).all()
    # index masks: RGB input and out-of-range indices
    idx = tmp_path / "idx"
    idx.mkdir()
    write_png(idx / "a.png", np.full((4, 4), 12, np.uint8))
    write_png(idx / "b.png", np.zeros((4, 4, 3), np.uint8))
    res = run("camvid", "convert", idx, tmp_path / "io", "--classes", "11", "--input", "index")
    assert res.exit_code == 1
    assert "a.png: index 12 (16 px) is not a SegNet class" in res.output
    assert "b.png: expected a single-channel 8-bit index mask" in res.output
    # usage: void id clashing with a class, missing SRC, folder without labels
    res = run("camvid", "convert", src, tmp_path / "o", "--classes", "11", "--void-id", "3")
    assert res.exit_code == 2 and "3 is the value of a class (Road)" in res.output
    res = run("camvid", "convert", tmp_path / "nope", tmp_path / "o", "--classes", "11")
    assert res.exit_code == 2 and "no such file or directory" in res.output
    res = run("camvid", "convert", idx, tmp_path / "o", "--classes", "11")
    assert res.exit_code == 2 and "no *_L.png color labels found" in res.output


def test_resume_and_naming(camvid_root, tmp_path):
    f = labels(camvid_root)[0]
    assert cv_data.output_name(f) == "0016E5_07959.png"
    assert cv_data.output_name("seq/0001TP_006690.png") == "0001TP_006690.png"
    assert run("camvid", "convert", f, tmp_path, "--classes", "11", "-q").exit_code == 0
    res = run("camvid", "convert", f, tmp_path, "--classes", "11", "-q")
    assert "0 done, 1 skipped" in res.output
    res = run("camvid", "convert", f, tmp_path, "--classes", "11", "--overwrite", "-q")
    assert "1 done, 0 skipped" in res.output
    with pytest.raises(SegprepError, match="must be 32 or 11"):
        cv.class_map_for(12)
