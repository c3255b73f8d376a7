"""The network shape rule (segprep.convert.shape.net): context thumbnails on known shapes, the
numpy network against its PyTorch twin, and the shipped network file. Its accuracy on cities it
never saw is tested with the other shape rules (tests/test_colors.py)."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np
import pytest

from segprep import class_maps
from segprep.convert import colors
from segprep.convert.colors import decode_colors, encode_colors
from segprep.convert.shape import features, resolve, rules
from segprep.convert.shape.features import neighbour_groups, region_features
from segprep.convert.shape.net import (
    CHANNEL_SETS,
    MIN_INPUT_STD,
    SHAPE_NET,
    THUMB_CHANNELS,
    AveragedRule,
    RegionNet,
    load_shape_net,
    mirror_inputs,
    region_thumbnails,
)
from segprep.errors import SegprepError

ROOT = Path(__file__).resolve().parent.parent
BDD = "bdd100k"
CH = {name: i for i, name in enumerate(THUMB_CHANNELS)}


def bdd_id(name: str) -> int:
    cm = class_maps.load(BDD)
    return int(cm.ids[cm.index_of(name)])


def test_thumbnail_of_a_square_in_the_sky():
    """A 20 × 20 sign alone in the sky, a second sign beside it: the window is 20 × 1.4 + 4 = 32
    px, centred on the square, sampled 48 × 48 → 24 × 24 cells of 4 samples each."""
    ids = np.full((100, 200), bdd_id("sky"), np.uint8)
    ids[40:60, 90:110] = bdd_id("parking sign")
    ids[45:55, 112:115] = bdd_id("parking sign")  # a second region, inside the window on the right
    mask = ids == bdd_id("parking sign")
    labels, f = region_features(mask, values=ids, value_groups=neighbour_groups(BDD))
    t = region_thumbnails(labels, f, ids, mask, neighbour_groups(BDD))
    assert t.shape == (2, len(THUMB_CHANNELS), 24, 24) and t.dtype == np.uint8
    assert (t.sum(axis=1) == 4).all()  # every cell's 4 samples fall in exactly one channel each
    big = int(np.argmax(f.area))
    region = t[big, CH["region"]]
    # the square covers 20 of the 32 window pixels per side: cells 4.5 .. 19.5 → rows 5..18 full
    assert (region[5:19, 5:19] == 4).all() and (region[:4] == 0).all() and (region[20:] == 0).all()
    assert t[big, CH["same_color"]].sum() > 0  # the small sign on its right
    assert t[big, CH["same_color"], :, :12].sum() == 0
    assert t[big, CH["near_sky"]].sum() + t[big, CH["region"]].sum() + \
        t[big, CH["same_color"]].sum() == 4 * 24 * 24
    assert t[big, CH["outside"]].sum() == 0


def test_thumbnail_outside_the_frame_and_no_regions():
    ids = np.full((50, 80), bdd_id("road"), np.uint8)
    ids[0:10, 0:6] = bdd_id("pole")  # in the top-left corner: most of its window is outside
    mask = ids == bdd_id("pole")
    labels, f = region_features(mask, values=ids, value_groups=neighbour_groups(BDD))
    t = region_thumbnails(labels, f, ids, mask, neighbour_groups(BDD))
    assert t[0, CH["outside"], 0, 0] == 4 and t[0, CH["outside"], -1, -1] == 0
    assert t[0, CH["near_flat"]].sum() > 0
    empty = np.zeros((50, 80), bool)
    labels, f = region_features(empty)
    assert region_thumbnails(labels, f, ids, empty, neighbour_groups(BDD)).shape == (
        0, len(THUMB_CHANNELS), 24, 24)


def _torch_twin(width: int, inputs: int):
    if str(ROOT / "scripts") not in sys.path:
        sys.path.insert(0, str(ROOT / "scripts"))
    from shape_rule.models import torch_net

    return torch_net(len(THUMB_CHANNELS), inputs, 2, width)


def test_numpy_network_equals_its_pytorch_twin():
    """Random weights, random thumbnails and inputs: the numpy forward pass (both the plain and
    the mirrored pass that ``proba`` averages) equals PyTorch's to float32 precision."""
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    f_in = len(features.MODEL_INPUTS)
    net = _torch_twin(8, f_in).eval()
    rng = np.random.default_rng(0)
    t = rng.integers(0, 5, (7, len(THUMB_CHANNELS), 24, 24)).astype(np.float32) / 4
    x = rng.normal(size=(7, f_in))
    mean, std = rng.normal(size=f_in), rng.uniform(0.5, 2, f_in)
    rule = RegionNet(("a", "b"), {k: v.numpy() for k, v in net.state_dict().items()}, mean, std)
    with torch.no_grad():
        want = net(torch.from_numpy(t), torch.tensor((x - mean) / std, dtype=torch.float32))
        want_m = net(torch.from_numpy(t).flip(3),
                     torch.tensor((mirror_inputs(x) - mean) / std, dtype=torch.float32))
    assert np.allclose(rule._scores(t, x), want.softmax(1).numpy(), atol=1e-5)
    assert np.allclose(rule._scores(t[..., ::-1], mirror_inputs(x)), want_m.softmax(1).numpy(),
                       atol=1e-5)


def test_a_network_reads_only_its_channels():
    """A network of the ``shape`` channel set: what the other channels hold does not change its
    answer; what its own hold does."""
    torch = pytest.importorskip("torch")
    torch.manual_seed(1)
    f_in = len(features.MODEL_INPUTS)
    net = _torch_twin(8, f_in)
    w = {k: v.detach().numpy() for k, v in net.state_dict().items()}
    keep = [THUMB_CHANNELS.index(c) for c in CHANNEL_SETS["shape"]]
    w["conv.0.weight"] = np.ascontiguousarray(w["conv.0.weight"][:, keep])
    rule = RegionNet(("a", "b"), w, np.zeros(f_in), np.ones(f_in), CHANNEL_SETS["shape"])
    ids = np.full((100, 200), bdd_id("sky"), np.uint8)
    ids[20:80, 98:102] = bdd_id("pole")
    mask = ids == bdd_id("pole")
    labels, f = region_features(mask, values=ids, value_groups=neighbour_groups(BDD))
    t = region_thumbnails(labels, f, ids, mask, neighbour_groups(BDD))
    other = t.copy()
    other[:, CH["near_sky"]], other[:, CH["near_vehicle"]] = 0, t[:, CH["near_sky"]]
    assert np.array_equal(rule.proba(f, t), rule.proba(f, other))
    moved = t.copy()
    moved[:, CH["region"]] = np.roll(t[:, CH["region"]], 5, axis=2)
    assert not np.array_equal(rule.proba(f, t), rule.proba(f, moved))


def test_inputs_constant_in_training_are_ignored():
    """An input that never varied in training (its std below MIN_INPUT_STD: Cityscapes regions
    never touch the frame edge) does not move the answer when it varies at inference; the
    shipped networks ignore the frame-edge inputs."""
    torch = pytest.importorskip("torch")
    torch.manual_seed(2)
    f_in = len(features.MODEL_INPUTS)
    net = _torch_twin(8, f_in)
    w = {k: v.detach().numpy() for k, v in net.state_dict().items()}
    edge = features.MODEL_INPUTS.index("touch_bottom")
    std = np.ones(f_in)
    std[edge] = 1e-6  # what the trainer stored before: a 0 deviation plus 1e-6
    rule = RegionNet(("a", "b"), w, np.zeros(f_in), std)
    ids = np.full((100, 200), bdd_id("sky"), np.uint8)
    ids[40:, 98:110] = bdd_id("person")  # down to the bottom edge
    mask = ids == bdd_id("person")
    labels, f = region_features(mask, values=ids, value_groups=neighbour_groups(BDD))
    t = region_thumbnails(labels, f, ids, mask, neighbour_groups(BDD))
    assert f.touches[0, 1]
    inside = dataclasses.replace(f, touches=np.zeros_like(f.touches))
    assert np.array_equal(rule.proba(f, t), rule.proba(inside, t))
    for pair, shipped in load_shape_net().items():
        ignored = {n for n, s in zip(features.MODEL_INPUTS, shipped.std) if s < MIN_INPUT_STD}
        assert {"touch_top", "touch_bottom", "touch_left", "touch_right"} <= ignored, pair


def test_averaged_rule_is_the_mean_of_its_members():
    pole = resolve.rule_for(("pole", "polegroup"))
    ids = np.full((360, 640), bdd_id("sky"), np.uint8)
    ids[200:] = bdd_id("road")
    ids[40:200, 100:106] = bdd_id("pole")
    ids[60:200, 300:304] = bdd_id("pole")
    ids[60:200, 310:314] = bdd_id("pole")
    ids[80:90, 300:314] = bdd_id("pole")  # two posts and a bar: one region
    mask = ids == bdd_id("pole")
    labels, f = region_features(mask, values=ids, value_groups=neighbour_groups(BDD))
    t = region_thumbnails(labels, f, ids, mask, neighbour_groups(BDD))
    net, forest = pole.members
    want = (net.proba(f, t) + forest.proba(f)) / 2
    assert np.allclose(pole.proba(f, t), want)
    assert pole.classify(f, t).tolist() == want.argmax(axis=1).tolist()


def _two_signs_and_a_corner_pole():
    ids = np.full((100, 200), bdd_id("sky"), np.uint8)
    ids[60:, :] = bdd_id("road")
    ids[40:60, 90:110] = bdd_id("parking sign")
    ids[45:55, 112:115] = bdd_id("parking sign")
    ids[0:10, 0:6] = bdd_id("parking sign")
    mask = ids == bdd_id("parking sign")
    labels, f = region_features(mask, values=ids, value_groups=neighbour_groups(BDD))
    return labels, f, ids, mask


def test_thumbnail_channel_subsets_are_slices_of_all_channels():
    labels, f, ids, mask = _two_signs_and_a_corner_pole()
    every = region_thumbnails(labels, f, ids, mask, neighbour_groups(BDD))
    for chans in (CHANNEL_SETS["shape"], ("near_flat", "region"), ("outside",), ()):
        t = region_thumbnails(labels, f, ids, mask, neighbour_groups(BDD), channels=chans)
        assert np.array_equal(t, every[:, [CH[c] for c in chans]]), chans
    with pytest.raises(ValueError, match="near_water"):
        region_thumbnails(labels, f, ids, mask, neighbour_groups(BDD), channels=("near_water",))


def test_averaged_rule_reads_only_its_channels():
    """The shipped pole rule reads the outline channels; given only those it answers as with
    every channel (what the decoder computes)."""
    pole = resolve.rule_for(("pole", "polegroup"))
    assert pole.channels == CHANNEL_SETS["shape"]
    ids = np.full((360, 640), bdd_id("sky"), np.uint8)
    ids[200:] = bdd_id("road")
    ids[40:200, 100:106] = bdd_id("pole")
    ids[60:200, 300:304] = bdd_id("pole")
    mask = ids == bdd_id("pole")
    labels, f = region_features(mask, values=ids, value_groups=neighbour_groups(BDD))
    every = region_thumbnails(labels, f, ids, mask, neighbour_groups(BDD))
    shape = region_thumbnails(labels, f, ids, mask, neighbour_groups(BDD), channels=pole.channels)
    assert np.array_equal(pole.proba(f, every), pole.proba(f, shape, pole.channels))


def test_mirror_inputs_swaps_left_and_right():
    x = np.zeros((1, len(features.MODEL_INPUTS)))
    x[0, features.MODEL_INPUTS.index("center_x")] = 0.2
    x[0, features.MODEL_INPUTS.index("touch_left")] = 1
    m = mirror_inputs(x)
    assert m[0, features.MODEL_INPUTS.index("center_x")] == pytest.approx(0.8)
    assert m[0, features.MODEL_INPUTS.index("touch_right")] == 1
    assert m[0, features.MODEL_INPUTS.index("touch_left")] == 0
    assert x[0, features.MODEL_INPUTS.index("touch_left")] == 1  # input unchanged


def test_shipped_networks_are_the_default_rules():
    nets = load_shape_net()
    assert set(nets) == {"person/sign", "pole/polegroup"}
    for pair, labels in (("person/sign", ("person", "parking sign")),
                         ("pole/polegroup", ("pole", "polegroup"))):
        assert nets[pair].labels == labels and nets[pair].channels == CHANNEL_SETS["shape"]
        rule = resolve.rule_for(labels)
        assert isinstance(rule, AveragedRule) and rule.labels == labels
        net, forest = rule.members  # the shipped files' rules (by value: caches may differ)
        assert isinstance(net, RegionNet) and net.channels == CHANNEL_SETS["shape"]
        assert all(np.array_equal(v, nets[pair].weights[k]) for k, v in net.weights.items())
        assert np.array_equal(forest.threshold, rules.load_shape_model()[pair].threshold)
    assert isinstance(resolve.rule_for(("unlabeled", "ego vehicle", "static")), rules.ForestRule)
    # a pedestrian (head, torso, two legs) on the sidewalk and a board on a pole in the sky,
    # decoded end to end: the two person-colored regions get different labels
    import cv2

    ids = np.full((720, 1280), bdd_id("building"), np.uint8)
    ids[:250] = bdd_id("sky")
    ids[420:] = bdd_id("sidewalk")
    ids[560:] = bdd_id("road")
    m = np.zeros(ids.shape, np.uint8)
    cv2.circle(m, (300, 390), 10, 1, -1)  # 160 px tall: head, torso, legs
    cv2.rectangle(m, (288, 400), (312, 464), 1, -1)
    cv2.rectangle(m, (289, 460), (298, 540), 1, -1)
    cv2.rectangle(m, (302, 460), (311, 540), 1, -1)
    ids[m > 0] = bdd_id("person")
    ids[150:470, 800:808] = bdd_id("pole")
    ids[110:160, 780:830] = bdd_id("parking sign")
    out, stats = decode_colors(encode_colors(ids, BDD), BDD)
    assert stats.regions == {"person": 1, "parking sign": 1, "pole": 1}
    assert out[530, 293] == bdd_id("person") and out[130, 800] == bdd_id("parking sign")
    assert out[300, 804] == bdd_id("pole")


def test_bad_network_file_names_the_file(tmp_path):
    bad = tmp_path / "net.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(SegprepError, match="not a readable shape network"):
        load_shape_net(str(bad))
    meta = {"rules": {"person/sign": {"labels": ["person", "parking sign"], "inputs": ["x"],
                                      "thumbnails": list(THUMB_CHANNELS)}}}
    other = tmp_path / "other.npz"
    np.savez(other, meta=np.array(__import__("json").dumps(meta)))
    with pytest.raises(SegprepError, match="inputs differ"):
        load_shape_net(str(other))
    assert (Path(colors.__file__).with_name(SHAPE_NET)).is_file()
