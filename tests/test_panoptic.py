"""Cityscapes panoptic: ``gen-gt --targets panoptic`` and ``evaluate cityscapes-panoptic`` against
cityscapesScripts 2.3.0 (``createPanopticImgs.convert2panoptic`` and
``evalPanopticSemanticLabeling``) on the real frames in ../shared/data.

* ground truth: PNGs pixel-identical, split JSONs equal as data (and as bytes), with and without
  ``--panoptic-train-ids``, from the official instanceIds and from the polygons;
* evaluation: PQ/SQ/RQ per class and All/Things/Stuff equal to the reference within 1e-9 for the
  ground truth itself (PQ 100) and for predictions with merged, split, dropped, relabelled and
  shifted segments, segments on crowd and void regions, other segment ids, RGBA PNGs;
* bad predictions: one line naming the file and the segment, exit status 1, no scores;
* resume, failure (JSON absent), PNG reader.
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

from segprep.cli.main import cli
from segprep.errors import SegprepError
from segprep.evaluation import panoptic as pe
from segprep.io import png_fast, read_png

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

FEW = {"val": ["lindau_000000_000019", "lindau_000005_000019", "lindau_000057_000019"],
       "train": ["aachen_000004_000019"], "test": ["bonn_000010_000019"]}
"""A handful of frames (crowd regions in lindau 0, 5 and 57; test: void only)."""


def run(*args) -> CliRunner.Result:
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def subset_root(cityscapes_root: Path, dest: Path, frames: dict[str, list[str]] | None) -> Path:
    """A Cityscapes root of symbolic links to some real frames (all when ``frames`` is None)."""
    for split_dir in sorted((cityscapes_root / "gtFine").iterdir()):
        for city in sorted(split_dir.iterdir()):
            for f in sorted(city.iterdir()):
                key = f.name.split("_gtFine_")[0]
                if frames is None or key in frames.get(split_dir.name, []):
                    target = dest / "gtFine" / split_dir.name / city.name / f.name
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.symlink_to(f)
    return dest


def reference_gt(root: Path, out: Path, splits, train_ids: bool) -> Path:
    from cityscapesscripts.preparation.createPanopticImgs import convert2panoptic

    out.mkdir(parents=True, exist_ok=True)
    convert2panoptic(str(root / "gtFine"), str(out), train_ids, list(splits))
    return out


def assert_same_panoptic(ours: Path, ref: Path, splits, train_ids: bool) -> int:
    suffix = "_trainId" if train_ids else ""
    n = 0
    for split in splits:
        base = f"cityscapes_panoptic_{split}{suffix}"
        a = json.loads((ours / f"{base}.json").read_text())
        b = json.loads((ref / f"{base}.json").read_text())
        assert a == b, split
        assert (ours / f"{base}.json").read_bytes() == (ref / f"{base}.json").read_bytes()
        for ann in b["annotations"]:
            x = read_png(ours / base / ann["file_name"])
            y = np.asarray(Image.open(ref / base / ann["file_name"]))
            assert x.dtype == np.uint8 and x.shape == y.shape and np.array_equal(x, y), \
                ann["file_name"]
            n += 1
        assert sorted(os.listdir(ours / base)) == sorted(os.listdir(ref / base))
    return n


@pytest.fixture(scope="module")
def few(cityscapes_root, tmp_path_factory):
    """Ours and the reference's ground truth of the FEW frames (ids and trainIds)."""
    tmp = tmp_path_factory.mktemp("few")
    root = subset_root(cityscapes_root, tmp / "root", FEW)
    for train_ids in (False, True):
        args = ["--panoptic-train-ids"] if train_ids else []
        res = run("cityscapes", "gen-gt", root, "-o", tmp / "ours", "--targets", "panoptic",
                  "-j", "2", "-q", *args)
        assert res.exit_code == 0, res.output
        reference_gt(root, tmp / ("ref_tid" if train_ids else "ref"), FEW, train_ids)
    return tmp


def test_gen_gt_equals_cityscapesscripts(few):
    assert assert_same_panoptic(few / "ours" / "gtFine", few / "ref", FEW, False) == 5
    assert assert_same_panoptic(few / "ours" / "gtFine", few / "ref_tid", FEW, True) == 5
    doc = json.loads((few / "ref" / "cityscapes_panoptic_val.json").read_text())
    crowd = [s for a in doc["annotations"] for s in a["segments_info"] if s["iscrowd"]]
    assert crowd, "the frames should hold crowd segments"
    test_doc = json.loads((few / "ref" / "cityscapes_panoptic_test.json").read_text())
    assert test_doc["annotations"][0]["segments_info"] == []


def test_gen_gt_from_polygons_and_with_other_targets(cityscapes_root, few, tmp_path):
    """Polygon source (official rasteriser) == the official instanceIds' panoptic; other targets
    in the same run still written; in place by default."""
    root = subset_root(cityscapes_root, tmp_path / "root", {"val": FEW["val"][:2]})
    res = run("cityscapes", "gen-gt", root, "--targets", "panoptic,trainIds", "--source",
              "polygons", "-j", "2", "-q")
    assert res.exit_code == 0, res.output
    assert "rasterised (official) 2" in res.output
    ours = json.loads((root / "gtFine" / "cityscapes_panoptic_val.json").read_text())
    ref = json.loads((few / "ref" / "cityscapes_panoptic_val.json").read_text())
    keep = set(FEW["val"][:2])
    ref["images"] = [i for i in ref["images"] if i["id"] in keep]
    ref["annotations"] = [a for a in ref["annotations"] if a["image_id"] in keep]
    assert ours == ref
    for ann in ref["annotations"]:
        assert np.array_equal(
            read_png(root / "gtFine" / "cityscapes_panoptic_val" / ann["file_name"]),
            read_png(few / "ref" / "cityscapes_panoptic_val" / ann["file_name"]))
    assert len(list(root.glob("gtFine/val/*/*_labelTrainIds.png"))) == 2


@pytest.mark.slow
def test_gen_gt_equals_cityscapesscripts_all_frames(cityscapes_root, tmp_path):
    splits = ("train", "val", "test")
    res = run("cityscapes", "gen-gt", cityscapes_root, "-o", tmp_path / "ours", "--targets",
              "panoptic", "-j", "2", "-q")
    assert res.exit_code == 0, res.output
    ref = reference_gt(cityscapes_root, tmp_path / "ref", splits, False)
    assert assert_same_panoptic(tmp_path / "ours" / "gtFine", ref, splits, False) == 205


def test_resume_and_failure(cityscapes_root, few, tmp_path):
    root = subset_root(cityscapes_root, tmp_path / "root", {"val": FEW["val"]})
    out = tmp_path / "out"
    res = run("cityscapes", "gen-gt", root, "-o", out, "--targets", "panoptic", "-q")
    assert res.exit_code == 0, res.output
    js = out / "gtFine" / "cityscapes_panoptic_val.json"
    first = js.read_bytes()
    png = out / "gtFine" / "cityscapes_panoptic_val" / f"{FEW['val'][1]}_gtFine_panoptic.png"
    png.unlink()
    js.unlink()
    res = run("cityscapes", "gen-gt", root, "-o", out, "--targets", "panoptic", "-q")
    assert res.exit_code == 0 and "1 done, 2 skipped" in res.output, res.output
    assert js.read_bytes() == first  # segments of the skipped frames read back from their PNGs
    # a PNG that is not a panoptic PNG: named, with the way out
    png.write_bytes(Path(cityscapes_root / "gtFine/val/lindau" /
                         f"{FEW['val'][1]}_gtFine_instanceIds.png").read_bytes())
    res = run("cityscapes", "gen-gt", root, "-o", out, "--targets", "panoptic", "-q")
    assert res.exit_code == 1
    assert f"{png}: not a panoptic PNG" in res.output and "--overwrite" in res.output
    res = run("cityscapes", "gen-gt", root, "-o", out, "--targets", "panoptic", "-q",
              "--overwrite")
    assert res.exit_code == 0 and "3 done" in res.output
    assert js.read_bytes() == first
    # a bad source frame: the others convert, the split JSON is not written
    bad = root / "gtFine/val/lindau" / f"{FEW['val'][0]}_gtFine_instanceIds.png"
    bad.unlink()
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    js.unlink()
    res = run("cityscapes", "gen-gt", root, "-o", out, "--targets", "panoptic", "-q",
              "--overwrite")
    assert res.exit_code == 1
    assert f"segprep: error: {bad}:" in res.output
    assert f"{js}: not written (1 frame(s) of val failed)" in res.output
    assert "Traceback" not in res.output and not js.exists()
    assert not list(js.parent.glob(".*.tmp"))


def test_panoptic_train_ids_needs_panoptic(cityscapes_root, tmp_path):
    res = CliRunner().invoke(cli, ["cityscapes", "gen-gt", str(cityscapes_root), "-o",
                                   str(tmp_path), "--panoptic-train-ids"])
    assert res.exit_code == 2 and "--panoptic-train-ids needs --targets panoptic" in res.output


# =========================================================================== evaluation
def reference_eval(gt_json: Path, gt_folder: Path, pred_json: Path, pred_folder: Path) -> dict:
    """cityscapesScripts' numbers, by its own per-core function (one core: no process pool)."""
    from cityscapesscripts.evaluation import evalPanopticSemanticLabeling as ref

    gt = json.loads(gt_json.read_text())
    pred = json.loads(pred_json.read_text())
    cats = {c["id"]: c for c in gt["categories"]}
    preds = {a["image_id"]: a for a in pred["annotations"]}
    pairs = [(a, preds[a["image_id"]]) for a in gt["annotations"]]
    stat = ref.pq_compute_single_core(0, pairs, str(gt_folder), str(pred_folder), cats)
    return ref.average_pq(stat, cats)


def assert_close(ours: dict, ref: dict) -> None:
    for name in ("All", "Things", "Stuff"):
        assert ours[name]["n"] == ref[name]["n"], name
        for k in ("pq", "sq", "rq"):
            assert abs(ours[name][k] - ref[name][k]) <= 1e-9, (name, k)
    assert set(ours["per_class"]) == set(ref["per_class"])
    for cid, v in ref["per_class"].items():
        for k in ("pq", "sq", "rq"):
            assert abs(ours["per_class"][cid][k] - v[k]) <= 1e-9, (cid, k)


def to_rgb(ids: np.ndarray) -> np.ndarray:
    return np.stack([ids % 256, ids // 256 % 256, ids // 65536], axis=-1).astype(np.uint8)


def make_prediction(gt_json: Path, gt_folder: Path, out: Path, kind: str,
                    seed: int = 0) -> tuple[Path, Path]:
    """A prediction derived from the ground truth by one perturbation (written with Pillow,
    whose filters differ from ours)."""
    rng = np.random.default_rng(seed)
    doc = json.loads(gt_json.read_text())
    cats = {c["id"]: c for c in doc["categories"]}
    folder = out / kind
    folder.mkdir(parents=True)
    anns = []
    for ann in doc["annotations"]:
        rgb = np.asarray(Image.open(gt_folder / ann["file_name"])).astype(np.int64)
        ids = rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]
        segs = {s["id"]: dict(s) for s in ann["segments_info"]}
        things: dict[int, list[int]] = {}
        for s in segs.values():
            if cats[s["category_id"]]["isthing"] and not s["iscrowd"]:
                things.setdefault(s["category_id"], []).append(s["id"])
        if kind == "merged":  # every pair of instances of a class merged
            for members in things.values():
                for a, b in zip(members[0::2], members[1::2]):
                    ids[ids == b] = a
                    del segs[b]
        elif kind == "split":  # every segment cut in two at its bbox middle column
            nxt = int(ids.max()) + 1
            for sid, s in list(segs.items()):
                x, _y, w, _h = s["bbox"]
                m = (ids == sid)
                m[:, : x + w // 2] = False
                if m.any():
                    ids[m] = nxt
                    segs[nxt] = {"id": nxt, "category_id": s["category_id"]}
                    nxt += 1
        elif kind == "dropped":  # a third of the segments left void
            for sid in list(segs):
                if rng.random() < 1 / 3:
                    ids[ids == sid] = 0
                    del segs[sid]
        elif kind == "relabelled":  # a third of the segments get another category
            for s in segs.values():
                if rng.random() < 1 / 3:
                    s["category_id"] = int(rng.choice(list(cats)))
        elif kind == "shifted":  # the whole map moved down-right, void enters at the edges
            ids = np.roll(ids, (7, 23), axis=(0, 1))
            ids[:7] = 0
            ids[:, :23] = 0
        elif kind == "crowd_void":  # segments over crowd regions and over void, fragments
            nxt = int(ids.max()) + 1
            for sid, s in list(segs.items()):
                if s.get("iscrowd"):  # predict the crowd region as one instance of its class
                    ids[ids == sid] = nxt
                    segs[nxt] = {"id": nxt, "category_id": s["category_id"]}
                    del segs[sid]
                    nxt += 1
            void = ids == 0
            if void.any():  # the void region as a segment of a thing class, and as a stuff one
                yy = np.nonzero(void.any(axis=1))[0]
                half = void & (np.arange(ids.shape[0])[:, None] < yy[len(yy) // 2])
                ids[half] = nxt
                segs[nxt] = {"id": nxt, "category_id": 26}
                ids[void & ~half] = nxt + 1
                segs[nxt + 1] = {"id": nxt + 1, "category_id": 21}
                nxt += 2
            # small fragments of other segments stolen by a new segment (FP or ignored)
            ys, xs = np.nonzero(ids > 0)
            if ys.size:
                k = rng.integers(ys.size)
                ids[max(0, ys[k] - 20): ys[k] + 20, max(0, xs[k] - 30): xs[k] + 30] = nxt
                segs[nxt] = {"id": nxt, "category_id": 24}
        elif kind == "renumbered":  # arbitrary 24-bit ids (blue channel used), RGBA PNG
            present = [int(v) for v in np.unique(ids) if v in segs]
            new = rng.choice(np.arange(1, 1 << 24), size=len(present), replace=False)
            out_ids = np.zeros_like(ids)
            for old, nv in zip(present, new.tolist()):
                out_ids[ids == old] = nv
                segs[nv] = dict(segs.pop(old), id=nv)
            ids = out_ids
            segs = {k: v for k, v in segs.items() if k in set(new.tolist())}
        else:
            raise ValueError(kind)
        present = set(np.unique(ids).tolist())
        info = [{"id": int(s["id"]), "category_id": int(s["category_id"])}
                for s in segs.values() if s["id"] in present]
        img = to_rgb(ids)
        name = ann["file_name"].replace("_gtFine_panoptic", "_pred")
        if kind == "renumbered":
            img = np.concatenate([img, np.full(img.shape[:2] + (1,), 255, np.uint8)], axis=-1)
        Image.fromarray(img).save(folder / name)
        anns.append({"image_id": ann["image_id"], "file_name": name, "segments_info": info})
    rng.shuffle(anns)  # matched by image_id, not by order
    pred_json = out / f"{kind}.json"
    pred_json.write_text(json.dumps({"annotations": anns}))
    return pred_json, folder


@pytest.fixture(scope="module")
def val_gt(few):
    gt = few / "ours" / "gtFine"
    return gt / "cityscapes_panoptic_val.json", gt / "cityscapes_panoptic_val"


def test_ground_truth_against_itself(val_gt, tmp_path):
    gt_json, gt_folder = val_gt
    report = pe.evaluate_panoptic(gt_json, gt_folder, gt_json, gt_folder, jobs=2, quiet=True)
    assert not report.errors
    assert report.results["All"]["pq"] == 1.0 and report.results["All"]["sq"] == 1.0
    assert_close(report.results, reference_eval(gt_json, gt_folder, gt_json, gt_folder))
    out = tmp_path / "r.json"
    res = run("evaluate", "cityscapes-panoptic", "--gt-json", gt_json, "--gt-folder", gt_folder,
              "--pred-json", gt_json, "--pred-folder", gt_folder, "--json", out, "-j", "2", "-q")
    assert res.exit_code == 0, res.output
    assert "PQ 100.00" in res.output and "car" in res.output
    doc = json.loads(out.read_text())
    assert {"All", "Things", "Stuff", "per_class"} <= set(doc)
    assert set(doc["All"]) == {"pq", "sq", "rq", "n"}
    # an unwritable --json is refused before the evaluation, as for the other evaluate commands
    res = run("evaluate", "cityscapes-panoptic", "--gt-json", gt_json, "--gt-folder", gt_folder,
              "--pred-json", gt_json, "--pred-folder", gt_folder, "--json", out / "x.json", "-q")
    assert res.exit_code == 2 and "--json" in res.output and "PQ" not in res.output
    assert "Traceback" not in res.output


@pytest.mark.parametrize("kind", ["merged", "split", "dropped", "relabelled", "shifted",
                                  "crowd_void", "renumbered"])
def test_perturbed_predictions_equal_reference(val_gt, tmp_path, kind):
    gt_json, gt_folder = val_gt
    pred_json, pred_folder = make_prediction(gt_json, gt_folder, tmp_path, kind)
    report = pe.evaluate_panoptic(gt_json, gt_folder, pred_json, pred_folder, jobs=2, quiet=True)
    assert not report.errors, report.errors
    ref = reference_eval(gt_json, gt_folder, pred_json, pred_folder)
    assert_close(report.results, ref)
    if kind == "renumbered":  # other ids, same segments
        assert report.results["All"]["pq"] == 1.0
    else:
        assert report.results["All"]["pq"] < 0.99


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["merged", "split", "dropped", "relabelled", "shifted",
                                  "crowd_void", "renumbered"])
def test_perturbed_predictions_equal_reference_all_val(cityscapes_root, tmp_path, kind):
    gt = tmp_path / "gt"
    res = run("cityscapes", "gen-gt", cityscapes_root, "-o", gt, "--targets", "panoptic",
              "--split", "val", "-j", "2", "-q")
    assert res.exit_code == 0, res.output
    gt_json = gt / "gtFine" / "cityscapes_panoptic_val.json"
    gt_folder = gt / "gtFine" / "cityscapes_panoptic_val"
    pred_json, pred_folder = make_prediction(gt_json, gt_folder, tmp_path, kind, seed=1)
    report = pe.evaluate_panoptic(gt_json, gt_folder, pred_json, pred_folder, jobs=2, quiet=True)
    assert not report.errors, report.errors
    assert_close(report.results, reference_eval(gt_json, gt_folder, pred_json, pred_folder))


# --------------------------------------------------------------------------- bad predictions
@pytest.fixture()
def good_pred(val_gt, tmp_path):
    gt_json, gt_folder = val_gt
    pred_folder = tmp_path / "pred"
    shutil.copytree(gt_folder, pred_folder)
    doc = json.loads(gt_json.read_text())
    pred = {"annotations": [{"image_id": a["image_id"], "file_name": a["file_name"],
                             "segments_info": [{"id": s["id"], "category_id": s["category_id"]}
                                               for s in a["segments_info"]]}
                            for a in doc["annotations"]]}
    return gt_json, gt_folder, pred, pred_folder, tmp_path / "pred.json"


def _evaluate(gt_json, gt_folder, pred, pred_folder, pred_json):
    pred_json.write_text(json.dumps(pred))
    return run("evaluate", "cityscapes-panoptic", "--gt-json", gt_json, "--gt-folder", gt_folder,
               "--pred-json", pred_json, "--pred-folder", pred_folder, "-q", "-j", "2")


def test_bad_predictions(good_pred):
    gt_json, gt_folder, pred, pred_folder, pred_json = good_pred
    a0 = pred["annotations"][0]
    png0 = pred_folder / a0["file_name"]
    iid = a0["image_id"]

    def check(expect: list[str]):
        res = _evaluate(gt_json, gt_folder, pred, pred_folder, pred_json)
        assert res.exit_code == 1, res.output
        for e in expect:
            assert e in res.output, (e, res.output)
        assert "no scores" in res.output and "PQ" not in res.output
        assert "Traceback" not in res.output

    ok = _evaluate(gt_json, gt_folder, pred, pred_folder, pred_json)
    assert ok.exit_code == 0 and "PQ 100.00" in ok.output
    seg = a0["segments_info"][-1]
    # unknown category id
    seg["category_id"] = 99
    check([f"segprep: error: {pred_json}: image_id '{iid}': segment {seg['id']} has unknown "
           "category_id 99"])
    seg["category_id"] = 26 if seg["category_id"] != 26 else 24
    # duplicate segment id
    a0["segments_info"].append(dict(a0["segments_info"][0]))
    check([f"image_id '{iid}': segment id {a0['segments_info'][0]['id']} listed twice"])
    a0["segments_info"].pop()
    # a PNG segment missing from segments_info
    gone = a0["segments_info"].pop(0)
    check([f"segprep: error: {png0}: image_id '{iid}': segment id(s) {gone['id']} (",
           "in the PNG are not in its segments_info"])
    a0["segments_info"].insert(0, gone)
    # a listed segment absent from the PNG
    a0["segments_info"].append({"id": 4242, "category_id": 26})
    check([f"{png0}: image_id '{iid}': segment 4242 of segments_info has no pixel in the PNG"])
    a0["segments_info"].pop()
    # wrong size, gray PNG, missing prediction, missing file
    rgb = np.asarray(Image.open(png0))
    Image.fromarray(rgb[:-1]).save(png0)
    check([f"{png0}: size 2048x1023 differs from the ground truth's 2048x1024"])
    Image.fromarray(rgb[..., 0]).save(png0)
    check([f"{png0}: expected an 8-bit RGB or RGBA panoptic PNG"])
    Image.fromarray(rgb).quantize(64).save(png0)
    check([f"{png0}: a palette PNG"])
    png0.unlink()
    check([f"{png0}: no such file"])
    Image.fromarray(rgb).save(png0)
    pred["annotations"].pop(0)
    check([f"{pred_json}: no prediction for image_id '{iid}'"])


def test_bad_json_and_folder(good_pred, tmp_path):
    gt_json, gt_folder, pred, pred_folder, pred_json = good_pred
    pred_json.write_text("{")
    res = run("evaluate", "cityscapes-panoptic", "--gt-json", gt_json, "--gt-folder", gt_folder,
              "--pred-json", pred_json, "--pred-folder", pred_folder, "-q")
    assert res.exit_code == 2 and f"segprep: error: {pred_json}: malformed JSON" in res.output
    pred["annotations"].append(dict(pred["annotations"][0]))
    pred_json.write_text(json.dumps(pred))
    res = run("evaluate", "cityscapes-panoptic", "--gt-json", gt_json, "--gt-folder", gt_folder,
              "--pred-json", pred_json, "--pred-folder", tmp_path / "nope", "-q")
    assert res.exit_code == 2 and "no such folder" in res.output
    with pytest.raises(SegprepError, match="has two annotations"):
        pe.load_json(pred_json, "prediction")


def test_panoptic_quality_matches_reference_average():
    """metrics.panoptic_quality == the reference's pq_average on random counts."""
    from cityscapesscripts.evaluation import evalPanopticSemanticLabeling as ref

    from segprep.metrics import panoptic_quality

    rng = np.random.default_rng(3)
    cats = {i: {"isthing": int(rng.random() < 0.4)} for i in range(7, 34)}
    stat = ref.PQStat()
    ours = {}
    for cid in cats:
        tp, fp, fn = (int(v) if rng.random() < 0.8 else 0 for v in rng.integers(0, 50, 3))
        iou = float(sum(rng.uniform(0.5, 1.0) for _ in range(tp)))
        stat[cid].tp, stat[cid].fp, stat[cid].fn, stat[cid].iou = tp, fp, fn, iou
        ours[cid] = (tp, fp, fn, iou)
    assert panoptic_quality(ours, {c: v["isthing"] == 1 for c, v in cats.items()}) == \
        ref.average_pq(stat, cats)


# --------------------------------------------------------------------------- PNG reader
def test_png_fast_equals_libpng(cityscapes_root, few, tmp_path):
    files = sorted((cityscapes_root / "gtFine" / "val" / "lindau").glob("*_instanceIds.png"))[:3]
    files += sorted((cityscapes_root / "gtFine" / "val" / "lindau").glob("*_color.png"))[:2]
    files += sorted((cityscapes_root / "gtFine" / "val" / "lindau").glob("*_labelIds.png"))[:2]
    files += sorted((few / "ref" / "cityscapes_panoptic_val").glob("*.png"))
    files += sorted((few / "ours" / "gtFine" / "cityscapes_panoptic_val").glob("*.png"))
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (37, 53, 4), dtype=np.uint8)  # every filter type, odd sizes
    for mode, arr in (("RGBA", noise), ("RGB", noise[..., :3]), ("L", noise[..., 0]),
                      ("LA", noise[..., :2])):
        p = tmp_path / f"noise_{mode}.png"
        Image.fromarray(arr, mode=mode).save(p)
        files.append(p)
    p16 = tmp_path / "noise16.png"
    Image.fromarray((noise[..., 0].astype(np.uint16) * 257 + 3).astype(np.uint16)).save(p16)
    files.append(p16)
    for f in files:
        a, b = png_fast.read(f), read_png(f)
        assert a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b), f
    data = files[0].read_bytes()
    with pytest.raises(SegprepError, match="truncated"):
        png_fast.decode(data[: len(data) // 2], "x.png")
    broken = bytearray(data)
    broken[60] ^= 0xFF  # inside the IDAT: its CRC no longer matches
    with pytest.raises(SegprepError, match="bad CRC"):
        png_fast.decode(bytes(broken), "x.png")
    with pytest.raises(SegprepError, match="not a PNG"):
        png_fast.decode(b"GIF89a", "x.gif")


def test_panoptic_quality_without_classes_is_nan():
    """No class with TP + FP + FN > 0 in a group: NaN means (the reference divides by zero)."""
    from segprep.metrics import panoptic_quality

    r = panoptic_quality({7: (2, 1, 0, 1.5)}, {7: False, 26: True})
    assert r["Stuff"]["n"] == 1 and r["Things"]["n"] == 0
    assert np.isnan(r["Things"]["pq"]) and r["per_class"][26] == {"pq": 0.0, "sq": 0.0, "rq": 0.0}
    assert r["All"]["pq"] == 1.5 / 2.5 and r["All"]["sq"] == 0.75 and r["All"]["rq"] == 2 / 2.5
