"""Color decoding (segprep.convert.colors) and the shape rules of shared colors
(segprep.convert.shape): exact lookups, palette-mode PNGs, unknown colors, bad inputs, and the
shape rules — on synthetic shapes and on real frames."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from segprep import class_maps
from segprep.convert import colors
from segprep.convert.colors import decode_colors, encode_colors, palette
from segprep.convert.shape import features, resolve, rules
from segprep.convert.shape.features import model_inputs, neighbour_groups, region_features
from segprep.convert.shape.net import SHAPE_NET, AveragedRule, RegionNet
from segprep.convert.shape.rules import (
    HAND_RULES,
    ForestRule,
    PersonSignRule,
    PoleGroupRule,
    VoidRule,
    load_shape_model,
)
from segprep.errors import SegprepError
from segprep.io import read_label, read_png

BDD = "bdd100k"


def bdd_id(name: str) -> int:
    cm = class_maps.load(BDD)
    return int(cm.ids[cm.index_of(name)])


# ----------------------------------------------------------------------------------- palettes
def test_palettes_follow_the_class_map():
    cm = class_maps.load(BDD)
    pid = palette(BDD, "id")
    shared = {pid.names[i] for i in pid.shared}
    assert shared == {("unlabeled", "ego vehicle", "static"), ("parking sign", "person"),
                      ("pole", "polegroup")}
    assert len(pid.colors) == len({tuple(c) for c in cm.colors.tolist()})
    ptr = palette(BDD, "train")
    assert ptr.shared == ()
    assert len(ptr.colors) == cm.num_classes + 1  # 19 trainIds + the ignore color
    assert tuple(ptr.value_colors[255]) == (0, 0, 0)
    for t in range(19):
        assert tuple(ptr.value_colors[t]) == tuple(cm.train_colors[t])
    with pytest.raises(SegprepError, match="unknown palette level"):
        palette(BDD, "category")


@settings(max_examples=25, deadline=None)
@given(st.data())
def test_unambiguous_colors_decode_exactly(data):
    """Any mask of unambiguous ids → its colors → decode gives the mask back, RGB or RGBA."""
    pid = palette(BDD, "id")
    ids = [c[0] for c in pid.candidates if len(c) == 1]
    h, w = data.draw(st.integers(1, 40)), data.draw(st.integers(1, 40))
    seed = data.draw(st.integers(0, 2**31 - 1))
    mask = np.random.default_rng(seed).choice(ids, size=(h, w)).astype(np.uint8)
    rgb = encode_colors(mask, BDD, "id")
    out, stats = decode_colors(rgb, BDD)
    assert np.array_equal(out, mask) and stats.unknown_pixels == 0
    rgba = np.dstack([rgb, np.random.default_rng(seed).integers(0, 256, (h, w), np.uint8)])
    out4, _ = decode_colors(rgba, BDD)  # alpha ignored, whatever its value
    assert np.array_equal(out4, mask)


def test_train_level_roundtrip_all_train_ids():
    vals = np.array([list(range(19)) + [255]], np.uint8)
    out, _ = decode_colors(encode_colors(vals, BDD, "train", rgba=True), BDD, level="train")
    assert np.array_equal(out, vals)


# ----------------------------------------------------------------------------------- unknown
def test_unknown_color_error_names_color_count_and_file():
    img = encode_colors(np.full((10, 10), bdd_id("road"), np.uint8), BDD)
    img[0, :7] = (1, 2, 3)
    img[5:7, 5:7] = (9, 9, 9)
    with pytest.raises(SegprepError) as exc:
        decode_colors(img, BDD, where="frame_color.png")
    msg = str(exc.value)
    assert msg.startswith("frame_color.png: 2 color(s) not in the bdd100k id-level palette")
    assert "(1, 2, 3) × 7 px" in msg and "(9, 9, 9) × 4 px" in msg
    assert msg.index("(1, 2, 3)") < msg.index("(9, 9, 9)")  # most frequent first
    out, stats = decode_colors(img, BDD, unknown="ignore")
    assert stats.unknown_pixels == 11
    assert stats.unknown_colors == {(1, 2, 3): 7, (9, 9, 9): 4}
    assert (out[0, :7] == 255).all() and (out[5:7, 5:7] == 255).all()
    assert (out[out != 255] == bdd_id("road")).all()


def test_id_colors_are_unknown_at_train_level():
    img = encode_colors(np.full((4, 4), bdd_id("dynamic"), np.uint8), BDD)  # (111, 74, 0)
    with pytest.raises(SegprepError, match=r"\(111, 74, 0\) × 16 px"):
        decode_colors(img, BDD, level="train")


@pytest.mark.parametrize("image, what", [
    (np.zeros((4, 4), np.uint8), "single-channel"),
    (np.zeros((4, 4, 2), np.uint8), "shape"),
    (np.zeros((4, 4, 3), np.uint16), "8-bit"),
])
def test_wrong_image_kind(image, what):
    with pytest.raises(SegprepError, match=what):
        decode_colors(image, BDD, where="x.png")


# ----------------------------------------------------------------------------------- palette mode
def test_palette_indices_used_directly_or_decoded_by_color():
    cm = class_maps.load(BDD)
    pal = palette(BDD, "train").value_colors.copy()
    idx = np.array([[0, 5, 11], [255, 13, 18]], np.uint8)
    out, stats = decode_colors(idx, BDD, level="train", palette_colors=pal)
    assert stats.palette_indices and np.array_equal(out, idx)
    # a permuted palette: index i painted with trainId perm[i]'s color → decoded by color
    perm = np.arange(256)
    perm[[0, 5]] = [5, 0]
    out2, stats2 = decode_colors(idx, BDD, level="train", palette_colors=pal[perm])
    assert not stats2.palette_indices
    assert np.array_equal(out2, perm[idx].astype(np.uint8))
    # id-level palette indices disambiguate shared colors: no shape rule involved
    ids = np.array([[bdd_id("person"), bdd_id("parking sign"), bdd_id("polegroup")]], np.uint8)
    out3, stats3 = decode_colors(ids, BDD, level="id", palette_colors=cm.id_colors)
    assert stats3.palette_indices and np.array_equal(out3, ids) and not stats3.regions
    # an entry beyond the file's palette is an unknown color
    with pytest.raises(SegprepError, match="not in the"):
        decode_colors(np.array([[0, 7]], np.uint8), BDD, level="train",
                      palette_colors=np.array([[1, 1, 1]], np.uint8))


def test_real_2020_colormaps_are_their_indices(bdd_root):
    files = sorted((bdd_root / "10k" / "colormaps").rglob("*.png"))
    assert len(files) == 24
    for f in files:
        idx, pal = read_label(f)
        assert pal is not None
        out, stats = decode_colors(idx, BDD, level="train", palette_colors=pal, where=str(f))
        assert stats.palette_indices and np.array_equal(out, idx)
        # the same map expanded to RGB decodes identically through the color path
        rgb, _ = decode_colors(pal[idx], BDD, level="train")
        assert np.array_equal(rgb, idx)


# ----------------------------------------------------------------------------------- shapes
def frame(h: int = 720, w: int = 1280) -> np.ndarray:
    return np.zeros((h, w), np.uint8)


@pytest.mark.parametrize("cv2_threads", [1, 2, 4])
def test_regions_are_numbered_in_raster_order_whatever_opencv_threads(cv2_threads):
    """Region k + 1 is the k-th region met scanning rows top to bottom, each left to right
    (OpenCV numbers them by blocks of two rows, and by stripes when multi-threaded)."""
    rng = np.random.default_rng(3)
    m = rng.random((400, 300)) < 0.08
    m[11:15, 49:52] = m[11:15, 199:202] = False
    m[12, 200] = m[13, 50] = True  # first pixels in rows 12 (right) and 13 (left): 12 first
    before = cv2.getNumThreads()
    cv2.setNumThreads(cv2_threads)
    try:
        labels, f = region_features(m)
    finally:
        cv2.setNumThreads(before)
    flat = labels.ravel()
    first = np.unique(flat, return_index=True)[1][1:]  # first pixel of labels 1..N
    assert len(first) == len(f) > 1000 and (np.diff(first) > 0).all()
    assert labels[12, 200] < labels[13, 50]
    assert (f.area == np.bincount(flat)[1:]).all()


def test_region_features_on_known_shapes():
    m = frame(100, 200)
    m[10:30, 20:60] = 1  # rectangle 40 x 20
    cv2.circle(m, (150, 50), 20, 1, -1)  # disc
    m[60:100, 0:6] = 1  # thin bar touching bottom and left edges
    labels, f = region_features(m)
    assert len(f) == 3 and labels.max() == 3
    rect = int(np.flatnonzero(f.area == 800)[0])
    assert f.extent[rect] == 1.0 and f.fit[rect] > 0.99 and f.solidity[rect] > 0.99
    assert f.bottom[rect] == pytest.approx(0.30) and f.multirun[rect] == 0
    disc = int(np.argmax(f.x))
    assert 0.9 < f.fit[disc] <= 1.0 and 0.7 < f.extent[disc] < np.pi / 4 + 0.02
    bar = int(np.argmin(f.x))
    assert f.touches[bar].tolist() == [False, True, True, False]
    assert f.slender[bar] == pytest.approx(40 * 40 / 240)
    assert f.foot[rect] == 1.0 and f.foot[bar] == 1.0 and f.foot[disc] < 1.0


def test_foot_is_the_solid_base_width_over_the_body_width():
    m = frame(200, 300)
    m[20:160, 40:60] = 1  # post 20 px wide, 140 rows ...
    m[160:180, 20:80] = 1  # ... on a plate 60 px wide, 20 rows: the bottom 15 % (24 rows)
    m[20:180, 150:190] = 1  # torso and legs 40 px wide ...
    m[150:180, 168:172] = 0  # ... apart at the bottom: every base row crosses it twice
    m[20:170, 240:260] = 1  # body 20 px wide ...
    m[170:180, 236:264] = 1  # ... on feet 28 px wide
    m[0:1, 100:130] = 1  # one row: no base to compare
    _, f = region_features(m)
    order = np.argsort(f.x)
    beacon, legs, feet, line = (float(v) for v in f.foot[order[[0, 2, 3, 1]]])
    assert beacon == pytest.approx(60 / 20)
    assert legs == 0.0  # legs apart are two runs, not one wide row
    assert feet == pytest.approx(28 / 20)
    assert line == 1.0
    _, f0 = region_features(m, contours=False)
    assert (f0.foot == 1.0).all()


def test_row_profile_features():
    """head, spread, strokes, tall_cols, base and corners on shapes whose values are known."""
    m = frame(300, 400)
    m[20:220, 20:60] = 1  # a board: 40 × 200, constant width, 4 corners
    m[20:40, 110:120] = 1  # a person: head 10 px wide (top 15 % = 30 of 200 rows ...)
    m[40:220, 100:130] = 1  # ... on a body 30 px wide
    m[150:220, 114:116] = 0  # legs apart over the lower 70 rows
    m[20:220, 200:204] = 1  # three poles joined at the top: three strokes
    m[20:220, 220:224] = 1
    m[20:220, 240:244] = 1
    m[20:24, 200:244] = 1
    m[20:220, 300:304] = 1  # one pole with an arm 40 px long at its top
    m[20:24, 304:344] = 1
    _, f = region_features(m)
    board, person, poles, arm = np.argsort(f.x)
    assert f.head[board] == 1.0 and f.spread[board] == 0.0 and f.base[board] == 1.0
    assert f.strokes[board] == 1 and f.tall_cols[board] == 1.0
    assert f.corners[board] == pytest.approx(100 * 4 / (2 * (39 + 199)))
    assert f.head[person] == pytest.approx(10 / 30)
    assert f.strokes[person] == 2 and f.spread[person] > 0.0
    assert f.base[person] == pytest.approx(30 / 30)  # the span of the legs, gap included
    assert f.strokes[poles] == 3 and f.tall_cols[poles] == pytest.approx(12 / 44)
    assert f.tall_cols[arm] == pytest.approx(4 / 44)
    _, f0 = region_features(m, contours=False)
    for k, v in features.CONTOUR_DEFAULTS.items():
        assert (getattr(f0, k) == v).all(), k


def test_person_sign_rule_on_synthetic_shapes():
    m = frame()
    cv2.circle(m, (300, 150), 30, 1, -1)  # round sign high in the frame → sign
    cv2.rectangle(m, (500, 100), (560, 150), 1, -1)  # rectangular sign → sign
    # a walking person standing on the road: head, torso, two legs apart
    cv2.circle(m, (900, 330), 12, 1, -1)
    cv2.rectangle(m, (885, 342), (915, 420), 1, -1)
    cv2.line(m, (892, 420), (875, 500), 1, 9)
    cv2.line(m, (908, 420), (925, 500), 1, 9)
    # a mobile roadwork sign standing on the road: a post on a wide foot plate → sign
    cv2.rectangle(m, (1100, 300), (1115, 470), 1, -1)
    cv2.rectangle(m, (1080, 470), (1135, 485), 1, -1)
    # a person standing still, legs together, feet no wider than the legs → person
    cv2.circle(m, (700, 330), 11, 1, -1)
    cv2.rectangle(m, (680, 341), (720, 420), 1, -1)
    cv2.rectangle(m, (692, 420), (708, 500), 1, -1)
    _, f = region_features(m)
    got = PersonSignRule().classify(f)
    order = np.argsort(f.x)  # disc, rectangle, standing person, walking person, beacon
    assert got[order].tolist() == [1, 1, 0, 0, 1]
    rule = PersonSignRule()
    beacon, standing = order[4], order[2]
    assert f.fit[beacon] < rule.min_fit and f.bottom[beacon] > rule.sign_bottom
    assert f.foot[beacon] >= rule.min_foot > f.foot[standing]
    # without the foot exception the beacon is taken for a person
    assert PersonSignRule(min_foot=np.inf).classify(f)[beacon] == 0


def test_pole_group_rule_on_synthetic_shapes():
    m = frame(1024, 2048)
    m[150:520, 300:312] = 1  # a tall thin pole, base near the horizon → pole
    m[330:470, 900:960] = 1  # a stubby block based in the horizon band → polegroup
    for x in (1500, 1530, 1560):  # three thin poles joined at the top, far away → polegroup
        m[300:480, x:x + 4] = 1
    m[300:306, 1500:1564] = 1
    m[600:1000, 1800:1830] = 1  # a near pole, base far below the horizon → pole
    _, f = region_features(m)
    got = PoleGroupRule().classify(f)
    assert got[np.argsort(f.x)].tolist() == [0, 1, 1, 0]


def test_void_rule_and_resolution_modes():
    cm = class_maps.load(BDD)
    ids = np.full((90, 160), bdd_id("road"), np.uint8)
    ids[75:, 30:130] = bdd_id("ego vehicle")  # hood at the bottom edge
    ids[20:30, 60:70] = bdd_id("static")  # object inside the frame
    ids[:5, :] = bdd_id("unlabeled")  # band along the top edge
    ids[40:80, 10:13] = bdd_id("pole")
    img = encode_colors(ids, BDD)
    out, stats = decode_colors(img, BDD, rules=HAND_RULES)
    assert np.array_equal(out, ids)
    assert stats.regions == {"ego vehicle": 1, "static": 1, "unlabeled": 1, "pole": 1}
    # "none": the first label of each shared color; "train_ids": only colors whose labels differ
    # in trainId are resolved (black → unlabeled, all trainId 255 anyway)
    first, _ = decode_colors(img, BDD, resolve_shared=False)
    assert set(np.unique(first[ids == bdd_id("static")])) == {bdd_id("unlabeled")}
    part, st2 = decode_colors(img, BDD, resolve_shared="train_ids", rules=HAND_RULES)
    assert set(st2.regions) == {"pole"}
    assert np.array_equal(cm.id_to_train_id[part], cm.id_to_train_id[ids])


def test_unresolved_group_keeps_first_label():
    cm = class_maps.load(BDD)
    _, stats = decode_colors(encode_colors(np.full((5, 5), bdd_id("pole"), np.uint8), BDD), BDD,
                             rules=())
    assert stats.unresolved == ["pole/polegroup"] and not stats.regions
    # the shipped learned rules come first, for both palettes' shared colors
    pole = resolve.rule_for(("pole", "polegroup"))
    assert isinstance(pole, AveragedRule) and pole.labels == ("pole", "polegroup")
    assert isinstance(pole.members[0], RegionNet)
    void = resolve.rule_for(class_maps.load("cityscapes").shared_colors[(0, 0, 0)])
    assert isinstance(void, ForestRule) and not void.contours
    assert resolve.rule_for(cm.shared_colors[(0, 0, 0)]) is void
    assert resolve.rule_for(("pole", "polegroup"), HAND_RULES) == PoleGroupRule()
    assert resolve.rule_for(cm.shared_colors[(0, 0, 0)], HAND_RULES) == VoidRule()


# ----------------------------------------------------------------------------------- real frames
def _balanced(truth: np.ndarray, pred: np.ndarray, a: int, b: int) -> tuple[float, float, float]:
    ta, tb = truth == a, truth == b
    ra = np.count_nonzero(pred[ta] == a) / max(np.count_nonzero(ta), 1)
    rb = np.count_nonzero(pred[tb] == b) / max(np.count_nonzero(tb), 1)
    return (ra + rb) / 2, ra, rb


def _cs_to_bdd() -> np.ndarray:
    """docs/shape-rule.md's measurement: the Cityscapes label id → BDD100K id LUT
    (``scripts/measure_shape_resolution.py``: one protocol for the script and these floors)."""
    import sys

    scripts = str(Path(__file__).resolve().parent.parent / "scripts")
    if scripts not in sys.path:
        sys.path.insert(0, scripts)
    from measure_shape_resolution import cs_to_bdd_lut

    return cs_to_bdd_lut()


def test_cityscapes_color_pngs_exact_and_pole_groups_resolved(cityscapes_root):
    """Official *_gtFine_color.png of val/lindau → label ids: every pixel of an unambiguous color
    equals the official labelIds; pole vs polegroup on this held-out city (3 frames of 59 hold
    polegroup) at its measured level: balanced 68.5 %, pole recall 91.6 % (the shipped forest +
    network; the previous forest 59.9 / 92.7 %)."""
    cs = class_maps.load("cityscapes")
    shared_ids = {int(cs.ids[cs.index_of(n)]) for names in cs.shared_colors.values() for n in names}
    files = sorted((cityscapes_root / "gtFine" / "val").rglob("*_gtFine_labelIds.png"))
    assert len(files) == 59
    truth_all, pred_all = [], []
    for f in files:
        truth = read_png(f)
        color = read_png(str(f).replace("_labelIds.png", "_color.png"))
        pred, stats = decode_colors(color, "cityscapes", where=str(f))
        plain = ~np.isin(truth, list(shared_ids))
        assert np.array_equal(pred[plain], truth[plain]), f.name
        assert stats.unknown_pixels == 0
        pole = np.isin(truth, (17, 18))
        truth_all.append(truth[pole])
        pred_all.append(pred[pole])
    bal, r_pole, r_group = _balanced(np.concatenate(truth_all), np.concatenate(pred_all), 17, 18)
    assert bal >= 0.66 and r_pole >= 0.90


# --------------------------------------------------------------------------- learned shape rules
def test_neighbour_groups_of_regions():
    groups = neighbour_groups(BDD)
    g = {n: features.NEIGHBOUR_GROUPS.index(n) for n in features.NEIGHBOUR_GROUPS}
    assert groups[bdd_id("person")] == groups[bdd_id("parking sign")] == g["human"]
    assert groups[bdd_id("pole")] == groups[bdd_id("polegroup")] == g["pole"]
    assert groups[bdd_id("road")] == g["flat"] and groups[bdd_id("sky")] == g["sky"]
    assert groups[bdd_id("static")] == g["void"] and groups[250] == g["void"]
    assert neighbour_groups("cityscapes")[17] == g["pole"]
    ids = np.full((40, 60), bdd_id("sky"), np.uint8)
    ids[20:, :] = bdd_id("road")
    ids[5:15, 10:20] = bdd_id("parking sign")  # a sign in the sky: ring of 44 sky pixels
    ids[15:30, 10:20] = bdd_id("pole")  # ... on a pole below it
    ids[30:38, 40:44] = bdd_id("person")  # a person on the road
    mask = np.isin(ids, (bdd_id("person"), bdd_id("parking sign")))
    _, f = region_features(mask, values=ids, value_groups=groups)
    assert f.neighbours.shape == (2, len(features.NEIGHBOUR_GROUPS))
    assert np.allclose(f.neighbours.sum(axis=1), 1)
    sign, person = np.argsort(f.x)
    # ring of the 10 × 10 sign: 44 pixels, the 10 under it pole, the rest sky
    assert f.neighbours[sign, g["sky"]] == pytest.approx(34 / 44)
    assert f.neighbours[sign, g["pole"]] == pytest.approx(10 / 44)
    assert f.neighbours[person, g["flat"]] == 1.0
    assert region_features(mask)[1].neighbours is None
    x = model_inputs(f)
    assert x.shape == (2, len(features.MODEL_INPUTS)) and np.isfinite(x).all()


def test_forest_rule_walks_its_trees():
    """Two trees by hand: tree 0 splits on bottom (<= 0.5 → class 0), tree 1 is a single leaf
    voting 30/70; the forest answers the class of highest mean probability."""
    bottom = features.MODEL_INPUTS.index("bottom")
    rule = ForestRule.from_dict({
        "labels": ["a", "b"], "depth": 1, "contours": False,
        "trees": [{"feature": [bottom, -1, -1], "threshold": [0.5, 0, 0], "left": [1, -1, -1],
                   "right": [2, -1, -1], "value": [[], [1.0, 0.0], [0.0, 1.0]]},
                  {"feature": [-1], "threshold": [0], "left": [-1], "right": [-1],
                   "value": [[0.3, 0.7]]}]})
    m = frame(100, 100)
    m[10:50, 10:20] = 1  # bottom exactly 0.5 → left (<=) → (1 + 0.3) / 2 = 0.65 for "a"
    m[60:90, 50:60] = 1  # bottom 0.9 → (0 + 0.3) / 2 for "a"
    _, f = region_features(m, contours=False, values=m, value_groups=neighbour_groups(BDD))
    order = np.argsort(f.x)
    assert np.allclose(rule.proba(f)[order], [[0.65, 0.35], [0.15, 0.85]])
    assert rule.classify(f)[order].tolist() == [0, 1]
    with pytest.raises(SegprepError, match="inputs"):
        ForestRule.from_dict({"labels": ["a"], "depth": 0, "inputs": ["x"], "trees": []})


def test_regions_larger_than_any_training_region_get_the_hand_rule():
    """A frame that is all void but a patch (as the Cityscapes test split's annotations): one black
    region far larger than any the forest was trained on → the hand rule's answer (a region on
    the frame edges covering half the frame or more: unlabeled)."""
    ids = np.full((90, 160), bdd_id("ego vehicle"), np.uint8)
    ids[30:50, 60:100] = bdd_id("road")
    void = resolve.rule_for(("unlabeled", "ego vehicle", "static"))
    assert void.max_rel_area < 0.5 and isinstance(void.fallback, VoidRule)
    out, stats = decode_colors(encode_colors(ids, BDD), BDD)
    assert stats.regions == {"unlabeled": 1}
    assert (out[ids != bdd_id("road")] == bdd_id("unlabeled")).all()


def test_shipped_model_names_its_trainer_and_data(tmp_path):
    model = json.loads((Path(colors.__file__).with_name(rules.SHAPE_MODEL)).read_text())
    with np.load(Path(colors.__file__).with_name(SHAPE_NET)) as z:
        nets = json.loads(str(z["meta"]))
    for m in (model, nets):
        assert m["trained_by"].startswith("scripts/train_shape_rule.py fit")
        assert "labelIds" in m["trained_on"]
        assert set(m["test_cities"]) == set(TEST_CITY_FLOORS)
        assert not set(m["train_cities"]) & set(m["test_cities"])
    assert model["train_cities"] == nets["train_cities"]
    assert set(model["rules"]) == {"person/sign", "pole/polegroup", "void"}
    assert set(nets["rules"]) == {"person/sign", "pole/polegroup"}
    bad = tmp_path / "m.json"
    bad.write_text("{}")
    with pytest.raises(SegprepError, match="not a readable shape model"):
        load_shape_model(str(bad))


#: frames of the test cities holding polegroup (few per city; every other frame has none), so
#: that the subset below measures both labels of that pair.
POLEGROUP_FRAMES = {
    "jena": ("000025_000019", "000043_000019", "000050_000019", "000076_000019", "000086_000019",
             "000106_000019"),
    "krefeld": ("000000_009926", "000000_015868", "000000_017489", "000000_018004",
                "000000_018514", "000000_022162", "000000_034156"),
    "monchengladbach": ("000000_007098", "000000_013228", "000000_014685", "000000_018445",
                        "000000_018575", "000000_018720", "000000_029240", "000000_030662"),
    "lindau": ("000004_000019", "000013_000019", "000054_000019"),
}
#: balanced accuracy floors (person/sign, pole/polegroup, void trio) on the subset below, a
#: little under what the shipped models measure on the same frames (runs of this test's
#: subset: jena 97.8 / 75.5 / 63.8, krefeld 98.8 / 71.7 / 60.1, monchengladbach 96.4 / 71.1 / 56.4,
#: lindau 100.0 / 67.9 / 62.2 %; every frame of the city: docs/shape-rule.md). Pole / polegroup rests
#: on 3-8 polegroup frames per city: retraining the same spec on the same regions in another
#: order moved it by -3.0 (krefeld) to +9.1 (lindau) points.
TEST_CITY_FLOORS = {
    "jena": (0.96, 0.73, 0.62),
    "krefeld": (0.97, 0.69, 0.58),
    "monchengladbach": (0.95, 0.69, 0.55),
    "lindau": (0.98, 0.65, 0.61),
}


@pytest.mark.parametrize("city", sorted(TEST_CITY_FLOORS))
def test_shape_rules_on_cities_never_trained_on(data_dir, city):
    """Cityscapes labelIds of a city the shipped model never saw (nor chose its settings on),
    painted with the BDD100K id palette (traffic sign → parking sign, the color of person),
    decoded back by the default rules: every 24th frame plus the city's polegroup frames."""
    if city == "lindau":
        files = sorted((data_dir / "cityscapes" / "gtFine" / "val" / city).glob(
            "*_gtFine_labelIds.png"))
    else:
        files = sorted((data_dir / "cityscapes-train-labelids" / city).glob(
            "*_gtFine_labelIds.png"))
    assert len(files) >= 59
    keep = set(files[::24]) | {f for f in files
                               if f.name[len(city) + 1:-20] in POLEGROUP_FRAMES[city]}
    assert len(keep) >= 6
    lut = _cs_to_bdd()
    pairs = (("person", "parking sign"), ("pole", "polegroup"),
             ("unlabeled", "ego vehicle", "static"))
    hits = np.zeros((3, 3), np.int64)
    totals = np.zeros((3, 3), np.int64)
    for f in sorted(keep):
        truth = lut[read_png(f)]
        pred, _ = decode_colors(encode_colors(truth, BDD), BDD, where=str(f))
        for p, names in enumerate(pairs):
            for j, n in enumerate(names):
                t = truth == bdd_id(n)
                totals[p, j] += np.count_nonzero(t)
                hits[p, j] += np.count_nonzero(pred[t] == bdd_id(n))
    for p, names in enumerate(pairs):
        present = totals[p, :len(names)] > 0
        assert present.all(), (city, names)
        bal = float(np.mean(hits[p, :len(names)] / totals[p, :len(names)]))
        assert bal >= TEST_CITY_FLOORS[city][p], (city, names, bal)
