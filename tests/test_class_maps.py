"""Class-map tables: every CSV parses, names its source, and ships inside the installed package."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from segprep import class_maps
from segprep.errors import SegprepError

PROJECT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("name", class_maps.available())
def test_every_table_loads_and_names_its_source(name):
    text = (PROJECT / "class_maps" / f"{name}.csv").read_text()
    assert text.startswith("#"), "first line must be a comment naming the official source"
    cm = class_maps.load(name)
    assert len(cm) > 0 and cm.source
    assert cm.id_to_train_id.shape == (256,) and cm.id_to_train_id.dtype == np.uint8
    # every non-ignored train id maps back to a row with that train id (first row wins)
    for t in range(cm.num_classes):
        if np.any(cm.train_ids == t):
            row = cm.row_of_id(int(cm.train_id_to_id[t]))
            assert cm.train_ids[row] == t


def test_parse_errors_name_the_file():
    with pytest.raises(SegprepError, match="x.csv: the first line must be"):
        class_maps.parse_csv("name,id,r,g,b\na,1,0,0,0\n", "x", "x.csv")
    with pytest.raises(SegprepError, match="missing column"):
        class_maps.parse_csv("# src\nname,id,r\na,1,0\n", "x", "x.csv")
    with pytest.raises(SegprepError, match=r"x.csv:3: bad number"):
        class_maps.parse_csv("# src\nname,id,r,g,b\na,one,0,0,0\n", "x", "x.csv")
    with pytest.raises(SegprepError, match="unknown class map"):
        class_maps.load("no-such-map")


def test_roundtrip_dict():
    cm = class_maps.load("cityscapes")
    back = class_maps.ClassMap.from_dict(cm.to_dict())
    assert back.names == cm.names
    assert np.array_equal(back.id_to_train_id, cm.id_to_train_id)
    assert np.array_equal(back.colors, cm.colors)


def test_class_maps_ship_in_the_wheel(tmp_path):
    """class_maps/*.csv are installed as package data and found from an installed package."""
    res = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                          "-q", "-w", str(tmp_path), str(PROJECT)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    wheel = next(tmp_path.glob("segprep-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    for csv in (PROJECT / "class_maps").glob("*.csv"):
        assert f"segprep/_class_maps/{csv.name}" in names
    assert "segprep/convert/shape_model.json" in names  # the learned shared-color rules
    assert "segprep/convert/shape_net.npz" in names
    target = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(target)
    code = ("import segprep.class_maps as c; "
            "assert c._class_map_dir().parent.name == 'segprep', c._class_map_dir(); "
            "print(len(c.load('cityscapes')))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=tmp_path, env={"PYTHONPATH": str(target), "PATH": ""})
    assert res.returncode == 0 and res.stdout.strip() == "35", res.stderr


def test_train_id_to_id_of_a_grouping_table_takes_the_row_named_like_the_class():
    """camvid11_segnet groups Road <- LaneMkgsDriv, Road and SignSymbol <- Misc_Text, SignSymbol,
    TrafficLight: trainId -> id gives the Road / SignSymbol rows, not the first alphabetically;
    a group without a row of its own name (mathworks' Pavement) keeps the first row."""
    seg = class_maps.load("camvid11_segnet")
    back = seg.train_id_to_id
    named = {seg.names[seg.row_of_id(int(back[t]))] for t in range(seg.num_classes)}
    assert {"Road", "SignSymbol", "Car", "Building", "Tree"} <= named
    assert not named & {"LaneMkgsDriv", "Misc_Text"}
    for t in range(seg.num_classes):  # still an inverse of id -> trainId
        assert seg.id_to_train_id[back[t]] == t
    mw = class_maps.load("camvid11_mathworks")
    pavement = mw.train_names.index("Pavement")
    assert mw.names[mw.row_of_id(int(mw.train_id_to_id[pavement]))] == min(
        n for n, t in zip(mw.names, mw.train_ids) if t == pavement)
    cs = class_maps.load("cityscapes")  # not a grouping table: first row wins, 255 -> 0
    assert cs.train_id_to_id[255] == 0 and cs.train_id_to_id[0] == 7
