"""``segprep bdd100k convert`` on the real BDD100K frames in ../shared/data.

* official 2018 color maps (RGB and RGBA, colored by trainId) → masks equal to the official 2018
  ``*_train_id.png`` bit for bit, every frame;
* 2020+ palette-mode colormaps → their indices; the same maps expanded to RGB → the same masks;
* id-level palette: unambiguous colors exact, shared colors resolved by shape; ``--emit ids``;
* bad input: unknown color (error / ignore), wrong mode, truncated file, unreadable file and
  directory; resume and --overwrite.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import segprep.io
from segprep import class_maps
from segprep.cli.main import cli
from segprep.convert import bdd100k as bdd
from segprep.convert.colors import encode_colors
from segprep.datasets import bdd100k as bdd_data
from segprep.io import read_label, read_png, write_png


def run(*args) -> CliRunner.Result:
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def official_pairs(root: Path) -> list[tuple[Path, Path]]:
    colors = sorted((root / "seg" / "color_labels").rglob("*_train_color.png"))
    return [(c, root / "seg" / "labels" / c.parent.name / c.name.replace("_train_color",
                                                                          "_train_id"))
            for c in colors]


def copy_frames(pairs, dest: Path, n: int) -> list[Path]:
    dest.mkdir(parents=True, exist_ok=True)
    out = []
    for c, _ in pairs[:n]:
        shutil.copy(c, dest / c.name)
        out.append(dest / c.name)
    return out


def test_official_2018_color_maps_equal_official_masks(bdd_root, tmp_path):
    pairs = official_pairs(bdd_root)
    assert len(pairs) == 400
    modes = {read_png(c).shape[2] for c, _ in pairs[:60]}
    assert modes == {3, 4}  # both RGB and RGBA files are in the release
    res = run("bdd100k", "convert", bdd_root / "seg" / "color_labels", tmp_path, "-j", "2", "-q")
    assert res.exit_code == 0, res.output
    assert "400 done, 0 skipped, 0 failed" in res.output
    for color, official in pairs:
        out = tmp_path / color.parent.name / official.name
        assert np.array_equal(read_png(out), read_png(official)), out
    # a single file as SRC
    one = pairs[0][0]
    res = run("bdd100k", "convert", one, tmp_path / "single", "-q")
    assert res.exit_code == 0 and "1 done" in res.output
    assert np.array_equal(read_png(tmp_path / "single" / pairs[0][1].name), read_png(pairs[0][1]))


def test_2020_colormaps_palette_indices_and_rgb_copies(bdd_root, tmp_path):
    src = bdd_root / "10k" / "colormaps"
    res = run("bdd100k", "convert", src, tmp_path / "o", "-q")
    assert res.exit_code == 0, res.output
    assert "24 done" in res.output and "palette indices used directly 24" in res.output
    rgb_dir = tmp_path / "rgb" / "colormaps"
    for f in sorted(src.rglob("*.png")):
        idx, pal = read_label(f)
        out = tmp_path / "o" / f.parent.name / f"{f.stem}_train_id.png"
        assert np.array_equal(read_png(out), idx)
        write_png(rgb_dir / f.parent.name / f.name, pal[idx])  # the same map as plain RGB
    res = run("bdd100k", "convert", rgb_dir, tmp_path / "o2", "-q")
    assert res.exit_code == 0 and "24 done" in res.output
    assert "palette indices" not in res.output
    for f in sorted((tmp_path / "o").rglob("*.png")):
        assert np.array_equal(read_png(f), read_png(tmp_path / "o2" / f.relative_to(tmp_path / "o")))


def test_id_palette_resolves_shared_colors(bdd_root, tmp_path):
    """Official masks painted with the id-level palette (trainId → first id: pole, person,
    unlabeled…) and converted back with --palette id --emit ids."""
    cm = class_maps.load("bdd100k")
    pairs = official_pairs(bdd_root)[300:340]  # val frames
    src = tmp_path / "src"
    ids_truth = {}
    for _, official in pairs:
        ids = cm.train_id_to_id[read_png(official)]
        fid = official.name[: -len("_train_id.png")]
        write_png(src / f"{fid}_color.png", encode_colors(ids, cm, "id"))
        ids_truth[fid] = ids
    res = run("bdd100k", "convert", src, tmp_path / "o", "--palette", "id", "--emit", "ids",
              "-j", "2", "-q")
    assert res.exit_code == 0, res.output
    assert "40 done" in res.output and ", shared-color regions " in res.output
    shared = [cm.ids[cm.index_of(n)] for n in ("pole", "person", "unlabeled")]
    hits = {"pole": [0, 0], "person": [0, 0]}
    for fid, ids in ids_truth.items():
        train = read_png(tmp_path / "o" / f"{fid}_train_id.png")
        got_ids = read_png(tmp_path / "o" / f"{fid}_id.png")
        assert np.array_equal(cm.id_to_train_id[got_ids], train)
        plain = ~np.isin(ids, shared)
        assert np.array_equal(got_ids[plain], ids[plain])  # unambiguous colors: exact
        for name in hits:
            m = ids == cm.ids[cm.index_of(name)]
            hits[name][0] += np.count_nonzero(got_ids[m] == cm.ids[cm.index_of(name)])
            hits[name][1] += np.count_nonzero(m)
    assert hits["pole"][0] / hits["pole"][1] >= 0.85
    assert hits["person"][0] / hits["person"][1] >= 0.85


def test_usage_errors(bdd_root, tmp_path):
    src = bdd_root / "seg" / "color_labels" / "val"
    res = run("bdd100k", "convert", src, tmp_path, "--emit", "ids")
    assert res.exit_code == 2 and "ids need --palette id" in res.output
    res = run("bdd100k", "convert", src, tmp_path, "--emit", "colors")
    assert res.exit_code == 2 and "choose from train_ids, ids" in res.output
    res = run("bdd100k", "convert", tmp_path / "missing", tmp_path / "o")
    assert res.exit_code == 2
    assert f"segprep: error: {tmp_path / 'missing'}: no such file or directory" in res.output
    (tmp_path / "empty").mkdir()
    res = run("bdd100k", "convert", tmp_path / "empty", tmp_path / "o")
    assert res.exit_code == 2 and "no BDD100K color maps found" in res.output


def test_bad_files_fail_alone(bdd_root, tmp_path):
    pairs = official_pairs(bdd_root)
    src = tmp_path / "src"
    files = copy_frames(pairs, src, 5)
    img = read_png(files[0])
    img[:10, :12, :3] = (1, 2, 3)  # 120 px of a color no class has
    write_png(files[0], img)
    write_png(files[1], read_png(files[1])[..., 0])  # gray: wrong mode
    data = files[2].read_bytes()
    files[2].write_bytes(data[: len(data) // 2])  # truncated
    res = run("bdd100k", "convert", src, tmp_path / "o", "-q")
    assert res.exit_code == 1
    lines = [ln for ln in res.output.splitlines() if ln.startswith("segprep: error:")]
    assert len(lines) == 3
    assert any(f"{files[0]}: 1 color(s) not in the bdd100k train-level palette: (1, 2, 3) × 120 px"
               in ln for ln in lines)
    assert any(str(files[1]) in ln and "single-channel" in ln for ln in lines)
    assert any(str(files[2]) in ln and "truncated" in ln for ln in lines)
    assert "2 done, 0 skipped, 3 failed" in res.output
    # --unknown ignore: the unknown pixels become 255, the rest is the official mask
    res = run("bdd100k", "convert", files[0], tmp_path / "i", "--unknown", "ignore", "-q")
    assert res.exit_code == 0 and "unknown-color px → 255 120" in res.output
    out = read_png(tmp_path / "i" / pairs[0][1].name)
    ref = read_png(pairs[0][1])
    assert (out[:10, :12] == 255).all()
    keep = np.ones_like(ref, bool)
    keep[:10, :12] = False
    assert np.array_equal(out[keep], ref[keep])


def test_unreadable_file_and_directory(bdd_root, tmp_path, monkeypatch):
    """Permission errors (simulated: the tests may run as root, which bypasses chmod)."""
    src = tmp_path / "src"
    files = copy_frames(official_pairs(bdd_root), src, 3)
    real_open = open

    def guarded_open(path, *a, **k):
        if str(path) == str(files[1]):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *a, **k)

    monkeypatch.setattr(segprep.io.read, "open", guarded_open, raising=False)
    res = run("bdd100k", "convert", src, tmp_path / "o", "-j", "1", "-q")
    assert res.exit_code == 1
    assert f"segprep: error: {files[1]}: cannot read: Permission denied" in res.output
    assert "2 done, 0 skipped, 1 failed" in res.output
    monkeypatch.setattr(segprep.io.files.os, "access", lambda p, mode: str(p) != str(src))
    res = run("bdd100k", "convert", src, tmp_path / "o2", "-q")
    assert res.exit_code == 2 and f"segprep: error: {src}: directory is not readable" in res.output


def test_resume_and_overwrite(bdd_root, tmp_path):
    pairs = official_pairs(bdd_root)
    src = tmp_path / "src"
    copy_frames(pairs, src, 3)
    assert run("bdd100k", "convert", src, tmp_path / "o", "-q").exit_code == 0
    target = tmp_path / "o" / pairs[0][1].name
    target.write_bytes(b"stale")
    res = run("bdd100k", "convert", src, tmp_path / "o", "-q")
    assert res.exit_code == 0 and "0 done, 3 skipped" in res.output
    assert target.read_bytes() == b"stale"
    res = run("bdd100k", "convert", src, tmp_path / "o", "--overwrite", "-q")
    assert res.exit_code == 0 and "3 done, 0 skipped" in res.output
    assert np.array_equal(read_png(target), read_png(pairs[0][1]))
    assert not [p for p in (tmp_path / "o").iterdir() if p.name.endswith(".tmp")]


def test_discovery_rules(tmp_path):
    names = ["0004a4c0-d4dff0ad_train_color.png", "00a360bd-27ccb1dd.png", "x_color.png",
             "0004a4c0-d4dff0ad_train_id.png", "readme.png"]
    for n in names:
        (tmp_path / n).write_bytes(b"")
    (tmp_path / "colormaps").mkdir()
    (tmp_path / "colormaps" / "frame.png").write_bytes(b"")
    _, files = bdd_data.color_maps(tmp_path)
    assert sorted(f.name for f in files) == ["0004a4c0-d4dff0ad_train_color.png",
                                             "00a360bd-27ccb1dd.png", "frame.png", "x_color.png"]
    assert bdd_data.frame_id("0004a4c0-d4dff0ad_train_color.png") == "0004a4c0-d4dff0ad"
    assert bdd_data.frame_id("00a360bd-27ccb1dd.png") == "00a360bd-27ccb1dd"
    # two inputs of one frame would write the same mask
    (tmp_path / "0004a4c0-d4dff0ad_color.png").write_bytes(b"")
    from segprep.errors import SegprepError
    with pytest.raises(SegprepError, match="writes the same output"):
        bdd.make_jobs(tmp_path, tmp_path / "o")
    assert os.path.exists(tmp_path / "readme.png")
