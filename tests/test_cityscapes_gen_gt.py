"""``segprep cityscapes gen-gt`` on the real Cityscapes frames in ../shared/data.

* auto source == the official released PNGs (and their LUT images), every frame, every target;
* polygons source with ``--raster pillow`` == cityscapesScripts' own output (same Pillow);
* bad input: one line naming the file, the other frames still convert, exit status 1;
* resume: existing outputs are skipped, --overwrite replaces them; writes are atomic.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from segprep import class_maps
from segprep.cli.main import cli
from segprep.convert import cityscapes as cs
from segprep.errors import SegprepError
from segprep.io import read_png

ALL_TARGETS = "labelIds,trainIds,color,instanceIds,instanceTrainIds"


def run(*args: str) -> CliRunner.Result:
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def reference_tables():
    """id → trainId and id → color from cityscapesScripts' own labels.py (independent of our CSV)."""
    from cityscapesscripts.helpers.labels import labels

    train = np.full(256, 255, np.uint8)
    color = np.zeros((256, 3), np.uint8)
    for lab in labels:
        if lab.id >= 0:
            train[lab.id] = lab.trainId if lab.trainId >= 0 else 255
            color[lab.id] = lab.color
    return train, color


@pytest.fixture(scope="module")
def auto_out(cityscapes_root, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("auto")
    res = run("cityscapes", "gen-gt", cityscapes_root, "--out", out, "--targets", ALL_TARGETS,
              "-j", "2", "-q")
    assert res.exit_code == 0, res.output
    assert "205 done" in res.output
    return out


@pytest.fixture(scope="module")
def official_raster_out(cityscapes_root, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("poly")
    res = run("cityscapes", "gen-gt", cityscapes_root, "--out", out, "--targets", ALL_TARGETS,
              "--source", "polygons", "--raster", "official", "-j", "2", "-q")
    assert res.exit_code == 0, res.output
    assert "rasterised (official) 205" in res.output
    return out


def test_official_raster_from_json_alone_equals_official_pngs(cityscapes_root, auto_out,
                                                              official_raster_out):
    """Issue 8: every target rasterised from the JSON alone == the official release, every frame."""
    suffixes = ("labelIds", "labelTrainIds", "color", "instanceIds", "instanceTrainIds")
    n = 0
    for j in sorted(cityscapes_root.glob("gtFine/*/*/*_gtFine_polygons.json")):
        rel = j.parent.relative_to(cityscapes_root)
        base = j.name[: -len("_polygons.json")]
        for s in suffixes:
            a = read_png(auto_out / rel / f"{base}_{s}.png")  # == official (test below)
            b = read_png(official_raster_out / rel / f"{base}_{s}.png")
            assert a.dtype == b.dtype and np.array_equal(a, b), f"{j.name} {s}"
        n += 1
    assert n == 205


def test_class_map_equals_cityscapesscripts_labels():
    from cityscapesscripts.helpers.labels import labels

    cm = class_maps.load("cityscapes")
    assert len(cm) == len(labels) == 35
    for lab, row in zip(labels, range(len(cm))):
        assert cm.names[row] == lab.name
        assert cm.ids[row] == lab.id and cm.train_ids[row] == lab.trainId
        assert cm.categories[row] == lab.category and cm.category_ids[row] == lab.categoryId
        assert bool(cm.has_instances[row]) == lab.hasInstances
        assert bool(cm.ignore_in_eval[row]) == lab.ignoreInEval
        assert tuple(cm.colors[row]) == tuple(lab.color)
    assert cm.train_id_to_id[255] == 0 and cm.train_id_to_id[0] == 7
    assert cm.id_to_train_id[7] == 0 and cm.id_to_train_id[0] == 255
    assert cm.color_to_id[(153, 153, 153)] == 17  # pole before polegroup: first row wins


def test_auto_source_equals_official_pngs(cityscapes_root, auto_out):
    train_ref, _ = reference_tables()
    # instanceIds value -> instanceTrainIds value, from cityscapesScripts' table
    v = np.arange(65536)
    t = train_ref[np.where(v >= 1000, v // 1000, v) % 256].astype(np.int64)
    inst_train_ref = np.where((v >= 1000) & (t != 255), t * 1000 + v % 1000, t)
    jsons = sorted(cityscapes_root.glob("gtFine/*/*/*_gtFine_polygons.json"))
    assert len(jsons) == 205
    for j in jsons:
        rel = j.parent.relative_to(cityscapes_root)
        base = j.name[: -len("_polygons.json")]
        off = {s: read_png(j.parent / f"{base}_{s}.png") for s in ("labelIds", "instanceIds", "color")}
        got = {s: read_png(auto_out / rel / f"{base}_{s}.png")
               for s in ("labelIds", "labelTrainIds", "color", "instanceIds", "instanceTrainIds")}
        assert got["labelTrainIds"].dtype == np.uint8 and got["instanceIds"].dtype == np.uint16
        assert np.array_equal(got["labelIds"], off["labelIds"]), j.name
        assert np.array_equal(got["instanceIds"], off["instanceIds"]), j.name
        assert np.array_equal(got["color"], off["color"]), j.name
        assert np.array_equal(got["labelTrainIds"], train_ref[off["labelIds"]]), j.name
        assert np.array_equal(got["instanceTrainIds"], inst_train_ref[off["instanceIds"]]), j.name


def _cityscapesscripts_images(json_path: Path) -> dict[str, np.ndarray]:
    from cityscapesscripts.helpers.annotation import Annotation
    from cityscapesscripts.preparation.json2instanceImg import createInstanceImage
    from cityscapesscripts.preparation.json2labelImg import createLabelImage

    ann = Annotation()
    ann.fromJsonFile(str(json_path))
    return {
        "labelIds": np.asarray(createLabelImage(ann, "ids")),
        "labelTrainIds": np.asarray(createLabelImage(ann, "trainIds")),
        "color": np.asarray(createLabelImage(ann, "color")),
        "instanceIds": np.asarray(createInstanceImage(ann, "ids")),
        "instanceTrainIds": np.asarray(createInstanceImage(ann, "trainIds")),
    }


def _pillow_parity(cityscapes_root: Path, out: Path, split: str) -> int:
    res = run("cityscapes", "gen-gt", cityscapes_root, "--out", out, "--split", split,
              "--source", "polygons", "--raster", "pillow", "--targets", ALL_TARGETS, "-j", "2",
              "-q")
    assert res.exit_code == 0, res.output
    jsons = sorted(cityscapes_root.glob(f"gtFine/{split}/*/*_gtFine_polygons.json"))
    for j in jsons:
        ref = _cityscapesscripts_images(j)
        base = j.name[: -len("_polygons.json")]
        rel = j.parent.relative_to(cityscapes_root)
        for suffix, expect in ref.items():
            got = read_png(out / rel / f"{base}_{suffix}.png")
            assert np.array_equal(got, expect), f"{j.name} {suffix}"
    return len(jsons)


def test_polygons_pillow_equals_cityscapesscripts(cityscapes_root, tmp_path):
    assert _pillow_parity(cityscapes_root, tmp_path, "val") == 59


@pytest.mark.slow
def test_polygons_pillow_equals_cityscapesscripts_all_splits(cityscapes_root, tmp_path):
    n = sum(_pillow_parity(cityscapes_root, tmp_path, s) for s in ("train", "test"))
    assert n == 146


def test_cityscapesscripts_does_not_reproduce_official(cityscapes_root):
    """The known fact behind --source auto: today's rasterisation is not the released PNG."""
    j = next(iter(sorted(cityscapes_root.glob("gtFine/val/*/*_gtFine_polygons.json"))))
    ref = _cityscapesscripts_images(j)["labelIds"]
    official = read_png(str(j).replace("_polygons.json", "_labelIds.png"))
    agree = (ref == official).mean()
    assert 0.98 < agree < 1.0


# ----------------------------------------------------------------------------- bad input
def _small_root(cityscapes_root: Path, tmp_path: Path, n: int = 3) -> tuple[Path, list[Path]]:
    """A tmp Cityscapes root holding copies of ``n`` real val frames (JSON + official PNGs)."""
    root = tmp_path / "cs"
    city = root / "gtFine" / "val" / "lindau"
    city.mkdir(parents=True)
    jsons = sorted(cityscapes_root.glob("gtFine/val/lindau/*_gtFine_polygons.json"))[:n]
    for j in jsons:
        for f in j.parent.glob(j.name.replace("_polygons.json", "_*")):
            shutil.copy(f, city / f.name)
    return root, [city / j.name for j in jsons]


def _bad_case(cityscapes_root, tmp_path, damage) -> tuple[object, Path]:
    root, jsons = _small_root(cityscapes_root, tmp_path)
    bad = damage(jsons[1])
    res = CliRunner().invoke(cli, ["cityscapes", "gen-gt", str(root), "-o", str(tmp_path / "o"),
                                   "-j", "1", "-q", "--targets", "trainIds,instanceIds"])
    return res, bad


def _assert_one_bad(res, bad: Path, what: str, tmp_path: Path) -> None:
    assert res.exit_code == 1, res.output
    lines = [ln for ln in res.output.splitlines() if ln.startswith("segprep: error:")]
    assert len(lines) == 1, res.output
    assert str(bad) in lines[0] and what in lines[0], lines[0]
    assert "2 done" in res.output and "1 failed" in res.output
    written = sorted(p.name for p in (tmp_path / "o").rglob("*.png"))
    assert len(written) == 4  # the two good frames, two targets each
    assert not list((tmp_path / "o").rglob("*.tmp"))


def _json_of(j: Path) -> dict:
    return json.loads(j.read_text())


def test_malformed_json(cityscapes_root, tmp_path):
    def damage(j):
        j.write_text(j.read_text()[:500])
        return j
    res, bad = _bad_case(cityscapes_root, tmp_path, damage)
    _assert_one_bad(res, bad, "malformed JSON", tmp_path)


def test_unknown_label(cityscapes_root, tmp_path):
    def damage(j):
        d = _json_of(j)
        d["objects"][3]["label"] = "unicorn"
        j.write_text(json.dumps(d))
        return j
    res, bad = _bad_case(cityscapes_root, tmp_path, damage)
    _assert_one_bad(res, bad, "unknown label 'unicorn'", tmp_path)


def test_polygon_out_of_bounds(cityscapes_root, tmp_path):
    def damage(j):
        d = _json_of(j)
        d["objects"][2]["polygon"][0] = [5000, 10]
        j.write_text(json.dumps(d))
        return j
    res, bad = _bad_case(cityscapes_root, tmp_path, damage)
    _assert_one_bad(res, bad, "out of bounds", tmp_path)


def test_truncated_png(cityscapes_root, tmp_path):
    def damage(j):
        png = Path(str(j).replace("_polygons.json", "_labelIds.png"))
        png.write_bytes(png.read_bytes()[:3000])
        return png
    res, bad = _bad_case(cityscapes_root, tmp_path, damage)
    _assert_one_bad(res, bad, "truncated", tmp_path)


def test_size_mismatch(cityscapes_root, tmp_path):
    def damage(j):
        d = _json_of(j)
        d["imgWidth"] = 4096
        j.write_text(json.dumps(d))
        return Path(str(j).replace("_polygons.json", "_labelIds.png"))
    res, bad = _bad_case(cityscapes_root, tmp_path, damage)
    _assert_one_bad(res, bad, "differs from the JSON", tmp_path)


def test_missing_root_and_bad_option(tmp_path):
    res = CliRunner().invoke(cli, ["cityscapes", "gen-gt", str(tmp_path / "nope")])
    assert res.exit_code == 2 and "no gtFine/ folder" in res.output
    res = CliRunner().invoke(cli, ["cityscapes", "gen-gt", str(tmp_path), "--targets", "depth"])
    assert res.exit_code == 2 and "depth" in res.output


# ----------------------------------------------------------------------------- resume
def test_resume_skips_existing_and_overwrite_replaces(cityscapes_root, tmp_path):
    root, jsons = _small_root(cityscapes_root, tmp_path)
    out = tmp_path / "o"
    # a "killed" run: only the first frame was written
    first = cs.make_jobs(root, jsons[:1], ["trainIds"], out)[0]
    assert not cs.convert_frame(first).skipped
    stamp = Path(first.output("trainIds")).stat().st_mtime_ns
    res = run("cityscapes", "gen-gt", root, "-o", out, "-j", "1", "-q")
    assert res.exit_code == 0 and "2 done, 1 skipped" in res.output, res.output
    assert Path(first.output("trainIds")).stat().st_mtime_ns == stamp
    res = run("cityscapes", "gen-gt", root, "-o", out, "-j", "1", "-q")
    assert "0 done, 3 skipped" in res.output
    res = run("cityscapes", "gen-gt", root, "-o", out, "-j", "1", "-q", "--overwrite")
    assert "3 done, 0 skipped" in res.output
    assert Path(first.output("trainIds")).stat().st_mtime_ns != stamp


def test_in_place_default_and_polygons_fallback(cityscapes_root, tmp_path):
    """Without --out, outputs go next to the JSON; without official PNGs, auto rasterises."""
    root, jsons = _small_root(cityscapes_root, tmp_path, n=2)
    official = read_png(str(jsons[0]).replace("_polygons.json", "_labelIds.png"))
    for png in root.rglob("*_labelIds.png"):
        png.unlink()
    res = run("cityscapes", "gen-gt", root, "-j", "1", "-q", "--targets", "labelIds,trainIds")
    assert res.exit_code == 0 and "rasterised (official) 2" in res.output, res.output
    got = read_png(str(jsons[0]).replace("_polygons.json", "_labelIds.png"))
    assert got.shape == official.shape and (got == official).mean() > 0.99
    assert Path(str(jsons[0]).replace("_polygons.json", "_labelTrainIds.png")).is_file()


def test_atomic_write_leaves_nothing_on_failure(tmp_path, monkeypatch):
    from segprep import io

    target = tmp_path / "x.png"

    def boom(fh):
        fh.write(b"partial")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        io.atomic_write(target, boom)
    assert not target.exists() and list(tmp_path.iterdir()) == []


def test_atomic_write_gives_umask_permissions_and_find_files_follows_links(tmp_path):
    import os
    import stat

    from segprep import io

    io.atomic_write_text(tmp_path / "a" / "x.txt", "hi")
    mode = stat.S_IMODE((tmp_path / "a" / "x.txt").stat().st_mode)
    assert mode == 0o666 & ~io.write._UMASK
    os.symlink(tmp_path / "a", tmp_path / "link")
    (tmp_path / "b").mkdir()
    os.symlink(tmp_path / "a", tmp_path / "b" / "city")
    assert [p.name for p in io.find_files(tmp_path / "b", ".txt")] == ["x.txt"]


@pytest.mark.parametrize("polygon, what", [
    ([[1, 2], [3]], "object 2 (building): polygon is not a list of [x, y]"),
    ([[1, 2, 3], [4, 5, 6]], "object 2 (building): polygon is not a list of [x, y]"),
    ([], "object 2 (building): polygon is not a list of [x, y]"),
    ([[1, 2], ["a", 4]], "object 2 (building): polygon is not a list of [x, y]"),
    ("abc", "object 2 (building): polygon is not a list of [x, y]"),
    ([[1, 2], [3, -200]], "object 2 (building): polygon out of bounds"),
])
def test_load_annotation_names_the_first_bad_polygon(tmp_path, polygon, what):
    """All vertices are checked at once; a failure is traced back to the object it belongs to."""
    from segprep.convert.cityscapes import load_annotation

    good = [[0, 0], [10, 0], [10, 10]]
    objects = [{"label": "road", "polygon": good}, {"label": "sky", "polygon": good},
               {"label": "building", "polygon": polygon}, {"label": "car", "polygon": "junk"}]
    path = tmp_path / "f_gtFine_polygons.json"
    path.write_text(json.dumps({"imgWidth": 64, "imgHeight": 32, "objects": objects}))
    with pytest.raises(SegprepError, match=re.escape(what)):
        load_annotation(path)
    objects[2]["polygon"] = objects[3]["polygon"] = good
    objects.append({"label": "person", "polygon": [[1, 1], [2, 2], [1, 3], [0, 1]],
                    "deleted": 1})
    path.write_text(json.dumps({"imgWidth": 64, "imgHeight": 32, "objects": objects}))
    ann = load_annotation(path)
    assert [o.label for o in ann.objects] == ["road", "sky", "building", "car"]
    assert all(o.polygon.shape == (3, 2) and o.polygon.dtype == np.float64 for o in ann.objects)
    np.testing.assert_array_equal(ann.objects[2].polygon, np.array(good, float))
