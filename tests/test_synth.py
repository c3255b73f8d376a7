"""The synthetic Cityscapes-format generator (segprep.synth): layout, determinism, JSON validity
(segprep's parser and cityscapesScripts'), class coverage, and image/label alignment."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from segprep import class_maps, synth
from segprep.cli.main import cli
from segprep.convert.cityscapes import load_annotation, rasterize_annotation
from segprep.errors import SegprepError
from segprep.io import read_image, read_png

W, H = 256, 128


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> tuple[Path, synth.SynthSummary]:
    root = tmp_path_factory.mktemp("synth") / "cs"
    summary = synth.generate_cityscapes(root, n_train=8, n_val=3, n_test=2, width=W, height=H,
                                        seed=3)
    return root, summary


def _digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _image_of(json_path: Path) -> Path:
    return Path(str(json_path).replace("/gtFine/", "/leftImg8bit/")
                .replace("_gtFine_polygons.json", "_leftImg8bit.png"))


def test_layout_and_summary(small):
    root, summary = small
    assert summary.frames.keys() == {"train", "val", "test"}
    assert [len(summary.frames[s]) for s in ("train", "val", "test")] == [8, 3, 2]
    assert summary.num_frames == 13 and (summary.width, summary.height) == (W, H)
    jsons = sorted(root.glob("gtFine/*/*/*_gtFine_polygons.json"))
    images = sorted(root.glob("leftImg8bit/*/*/*_leftImg8bit.png"))
    assert len(jsons) == len(images) == 13
    for j in jsons:
        split, city = j.parent.parent.name, j.parent.name
        assert city in synth.CITIES[split]
        name = j.name[: -len("_gtFine_polygons.json")]
        c, seq, frame = name.rsplit("_", 2)
        assert c == city and len(seq) == 6 and frame == f"{synth.FRAME_NUMBER:06d}"
        assert name in summary.frames[split]
        assert _image_of(j).exists()
    assert (root / synth.MARKER).exists()
    assert summary.objects["car"] > 0 and "license plate" in summary.objects


def test_deterministic_by_seed(tmp_path):
    a = synth.generate_cityscapes(tmp_path / "a", 3, 1, 1, W, H, seed=7)
    b = synth.generate_cityscapes(tmp_path / "b", 3, 1, 1, W, H, seed=7, jobs=2)
    synth.generate_cityscapes(tmp_path / "c", 3, 1, 1, W, H, seed=8)
    da, db, dc = _digest(tmp_path / "a"), _digest(tmp_path / "b"), _digest(tmp_path / "c")
    assert da == db  # same seed, one process or two: byte-identical files
    assert a.objects == b.objects
    assert da.keys() == dc.keys()
    assert all(da[k] != dc[k] for k in da if k.endswith(".png"))  # another seed, other frames


def test_json_schema_segprep_parser(small):
    root, _ = small
    cm = class_maps.load("cityscapes")
    for j in sorted(root.glob("gtFine/*/*/*_polygons.json")):
        doc = json.loads(j.read_text())
        assert set(doc) == {"imgHeight", "imgWidth", "objects"}
        assert (doc["imgWidth"], doc["imgHeight"]) == (W, H)
        for obj in doc["objects"]:
            assert set(obj) <= {"label", "polygon", "deleted"}
            base = obj["label"].removesuffix("group")
            assert obj["label"] in cm.names or base in cm.names
            pts = np.asarray(obj["polygon"])
            assert pts.dtype.kind == "i" and pts.ndim == 2 and pts.shape[1] == 2
            assert len(pts) >= 3
            assert pts[:, 0].min() >= 0 and pts[:, 0].max() <= W - 1
            assert pts[:, 1].min() >= 0 and pts[:, 1].max() <= H - 1
        ann = load_annotation(j)  # raises SegprepError on anything invalid
        assert (ann.width, ann.height) == (W, H)
        assert len(ann.objects) > 0


def test_test_split_holds_only_void_objects(small):
    root, _ = small
    for j in root.glob("gtFine/test/*/*_polygons.json"):
        labels = {o["label"] for o in json.loads(j.read_text())["objects"]}
        assert labels and labels <= set(synth.TEST_LABELS)
        assert read_image(_image_of(j)).std() > 20  # the image itself is a full scene


def test_cityscapesscripts_reads_and_rasterises_the_same(small):
    pytest.importorskip("cityscapesscripts")
    from cityscapesscripts.helpers.annotation import Annotation
    from cityscapesscripts.preparation.json2labelImg import createLabelImage

    root, _ = small
    n_deleted = n_groups = 0
    for j in sorted(root.glob("gtFine/train/*/*_polygons.json")):
        ann = Annotation()
        ann.fromJsonFile(str(j))
        assert (ann.imgWidth, ann.imgHeight) == (W, H)
        n_deleted += sum(bool(o.deleted) for o in ann.objects)
        n_groups += sum(o.label.endswith("group") for o in ann.objects)
        ref = np.asarray(createLabelImage(ann, "ids"))
        ours = rasterize_annotation(load_annotation(j), ["labelIds"], raster="pillow")["labelIds"]
        np.testing.assert_array_equal(ours, ref)
    assert n_groups > 0  # the conversion rules are exercised


def test_class_coverage(small):
    root, _ = small
    cm = class_maps.load("cityscapes")
    seen = np.zeros(256, bool)
    for j in root.glob("gtFine/train/*/*_polygons.json"):
        lab = rasterize_annotation(load_annotation(j), ["trainIds"])["trainIds"]
        seen[np.unique(lab)] = True
    names = {cm.train_names[t] for t in np.flatnonzero(seen[: cm.num_classes])}
    must = {"road", "sidewalk", "building", "vegetation", "sky", "pole", "car", "person",
            "traffic sign", "traffic light"}
    assert must <= names, must - names
    assert len(names) >= 12


def test_deleted_and_group_rules_are_exercised(tmp_path):
    summary = synth.generate_cityscapes(tmp_path / "r", 16, 0, 0, 128, 64, seed=0)
    docs = [json.loads(p.read_text()) for p in (tmp_path / "r").rglob("*_polygons.json")]
    objs = [o for d in docs for o in d["objects"]]
    assert any(o.get("deleted") for o in objs)
    assert any(o["label"] == "cargroup" for o in objs)
    assert any(o["label"] == "license plate" for o in objs)
    assert summary.objects.get("ego vehicle") == 16


def test_image_matches_labels(small):
    """Every pixel of the image shows the object its label comes from, and image edges sit on
    label edges."""
    root, _ = small
    cm = class_maps.load("cityscapes")
    spec = synth.frame_specs(root, 8, 3, 2, W, H, seed=3)[0]
    scene, image, index = synth.make_frame(spec)
    np.testing.assert_array_equal(image, read_image(spec.image_path))  # what was written
    ann = load_annotation(spec.json_path)
    label_ids = rasterize_annotation(ann, ["labelIds"], raster="official")["labelIds"]

    def label_id(o: synth.SceneObject) -> int:
        name = o.label[:-5] if o.label not in cm.names and o.label.endswith("group") else o.label
        return int(cm.ids[cm.index_of(name)])

    obj_ids = np.array([label_id(o) for o in scene.objects] + [0])
    plate = np.array([o.label == "license plate" for o in scene.objects] + [False])
    safe = np.where(index < 0, len(scene.objects), index)
    keep = ~plate[safe]
    assert keep.mean() > 0.97
    np.testing.assert_array_equal(obj_ids[safe][keep], label_ids[keep])

    img = image.astype(np.float32).mean(axis=2)
    edge = label_ids[:, 1:] != label_ids[:, :-1]
    step = np.abs(img[:, 1:] - img[:, :-1])
    assert step[edge].mean() > 2.5 * step[~edge].mean()


def test_images_are_camera_like(small):
    root, _ = small
    img = read_image(next(root.glob("leftImg8bit/train/*/*.png")))
    assert img.shape == (H, W, 3) and img.dtype == np.uint8
    # not the label palette: road pixels are grey-ish, not Cityscapes' purple (128, 64, 128)
    j = next(root.glob("gtFine/train/*/*_polygons.json"))
    lab = rasterize_annotation(load_annotation(j), ["labelIds"])["labelIds"]
    road = img[lab == 7].astype(np.float32)
    assert road.size and np.abs(road.mean(axis=0) - (128, 64, 128)).max() > 20
    assert road.std(axis=0).mean() > 3  # textured, not flat


def test_gen_gt_runs_on_the_synthetic_dataset(small, tmp_path):
    root, summary = small
    out = tmp_path / "gt"
    res = CliRunner().invoke(cli, ["cityscapes", "gen-gt", str(root), "--out", str(out),
                                   "--targets", "labelIds,trainIds,instanceIds", "-j", "1", "-q"])
    assert res.exit_code == 0, res.output
    files = sorted(out.rglob("*_gtFine_instanceIds.png"))
    assert len(files) == summary.num_frames
    inst = np.concatenate([read_png(f).ravel() for f in files if "/train/" in str(f)])
    assert (inst // 1000 == 26).any()  # numbered car instances


def test_bad_arguments(tmp_path):
    with pytest.raises(SegprepError):
        synth.generate_cityscapes(tmp_path / "x", 1, 0, 0, width=16, height=8)
    with pytest.raises(SegprepError):
        synth.generate_cityscapes(tmp_path / "x", -1, 0, 0)
