"""segprep train: losses ignore 255, a step learns, exact resume, data errors, overfit real
CamVid."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from segprep.cli.main import cli
from segprep.errors import SegprepError
from segprep.io import write_png
from segprep.model import build_model
from segprep.train.checkpoint import load_checkpoint, load_model
from segprep.train.config import TrainConfig
from segprep.train.data import (
    DataError,
    EpochSampler,
    SegDataset,
    pad_collate,
    read_records,
    to_model_input,
    validation_loader,
)
from segprep.train.loop import main
from segprep.train.losses import LOSSES, build_loss
from segprep.train.schedule import PolyWarmup


# ----------------------------------------------------------------------------- helpers
def make_dataset(folder: Path, n: int = 6, size=(37, 29), k: int = 3, ignore: int = 255,
                 seed: int = 0, name: str = "train") -> Path:
    """Write n small image/mask pairs whose classes are learnable from colour, and an odgt."""
    rng = np.random.default_rng(seed)
    (folder / "img").mkdir(parents=True, exist_ok=True)
    (folder / "lab").mkdir(parents=True, exist_ok=True)
    h, w = size
    lines = []
    palette = np.array([[200, 30, 30], [30, 200, 30], [30, 30, 200], [200, 200, 30]], np.uint8)
    for i in range(n):
        mask = np.zeros((h, w), np.uint8)
        for _ in range(4):  # a few random class rectangles
            y0, x0 = rng.integers(0, h - 5), rng.integers(0, w - 5)
            mask[y0:y0 + rng.integers(4, h), x0:x0 + rng.integers(4, w)] = rng.integers(0, k)
        img = palette[mask] + rng.integers(0, 25, (h, w, 3)).astype(np.uint8)
        mask[rng.random((h, w)) < 0.05] = ignore
        write_png(folder / "img" / f"{name}{i}.png", img)
        write_png(folder / "lab" / f"{name}{i}.png", mask)
        lines.append(json.dumps({"fpath_img": f"img/{name}{i}.png",
                                 "fpath_segm": f"lab/{name}{i}.png", "width": w, "height": h}))
    odgt = folder / f"{name}.odgt"
    odgt.write_text("\n".join(lines) + "\n")
    return odgt


def tiny_config(tmp_path: Path, train: Path, val: Path | None, **kw) -> TrainConfig:
    base = dict(train=str(train), val=str(val) if val else None, out=str(tmp_path / "run"),
                num_classes=3, epochs=2, batch_size=2, base_channels=4, depth=2, crop=(24, 24),
                scale=(0.75, 1.25), color_jitter=0.2, workers=0, seed=3, lr=5e-3,
                deterministic=True, quiet=True, tensorboard=False, threads=1)
    base.update(kw)
    return TrainConfig(**base)


# ----------------------------------------------------------------------------- losses
@pytest.mark.parametrize("name", LOSSES)
def test_loss_ignores_255(name):
    torch.manual_seed(0)
    logits = torch.randn(2, 4, 9, 11)
    target = torch.randint(0, 4, (2, 9, 11))
    target[:, :3] = 255
    crit = build_loss(name, ignore_index=255)
    base = crit(logits, target)
    changed = logits.clone()
    changed[:, :, :3] = torch.randn(2, 4, 3, 11) * 10  # only ignored pixels change
    assert torch.isfinite(base)
    torch.testing.assert_close(crit(changed, target), base)
    # the loss equals the loss over the valid pixels alone
    torch.testing.assert_close(crit(logits[:, :, 3:], target[:, 3:]), base)


@pytest.mark.parametrize("name", LOSSES)
def test_loss_all_ignored_is_zero_not_nan(name):
    logits = torch.randn(1, 3, 4, 4, requires_grad=True)
    loss = build_loss(name)(logits, torch.full((1, 4, 4), 255))
    assert loss.item() == 0.0
    loss.backward()  # still differentiable


def test_ce_class_weights_are_used():
    torch.manual_seed(0)
    logits = torch.randn(1, 3, 5, 5)
    target = torch.randint(0, 3, (1, 5, 5))
    plain = build_loss("ce")(logits, target)
    weighted = build_loss("ce", torch.tensor([1.0, 5.0, 0.1]))(logits, target)
    expected = torch.nn.functional.cross_entropy(logits, target,
                                                 weight=torch.tensor([1.0, 5.0, 0.1]))
    torch.testing.assert_close(weighted, expected)
    assert not torch.isclose(plain, weighted)


def test_ohem_keeps_the_hard_pixels_or_the_hardest_sixteenth():
    torch.manual_seed(0)
    target = torch.randint(0, 3, (2, 8, 8))
    logits = torch.nn.functional.one_hot(target, 3).permute(0, 3, 1, 2).float() * 5  # p_t ≈ 0.99
    hard = torch.zeros_like(target, dtype=torch.bool)
    hard[0, :3] = True  # 24 of 128 pixels (more than 1/16): own class pushed below 0.7
    logits.permute(0, 2, 3, 1)[hard] = torch.randn(24, 3)  # a view: writes into logits
    logits[0, :, :3] = logits[0, :, :3] - 5 * torch.nn.functional.one_hot(
        target[0, :3], 3).permute(2, 0, 1)
    target[1, 0, 0] = 255
    ce = torch.nn.functional.cross_entropy(logits, target.clamp(max=2), reduction="none")
    torch.testing.assert_close(build_loss("ohem")(logits, target), ce[hard].mean())
    # all easy: the 128 / 16 = 8 pixels of lowest p_t (here the highest CE), ignored ones never
    easy = torch.nn.functional.one_hot(target.clamp(max=2), 3).permute(0, 3, 1, 2).float() * 5
    easy = easy + torch.rand(2, 3, 8, 8)
    ce = torch.nn.functional.cross_entropy(easy, target, ignore_index=255, reduction="none")
    top = ce[target != 255].topk(8).values
    torch.testing.assert_close(build_loss("ohem")(easy, target), top.mean())
    # class weights: the weighted mean over the kept pixels, as weighted CE
    w = torch.tensor([1.0, 3.0, 0.5])
    ce_w = torch.nn.functional.cross_entropy(logits, target.clamp(max=2), weight=w,
                                             reduction="none")
    torch.testing.assert_close(build_loss("ohem", w)(logits, target),
                               ce_w[hard].sum() / w[target[hard]].sum())


def test_cli_choices_mirror_the_library():
    from segprep.cli import train as train_cli
    from segprep.model.unet import CONTEXTS

    assert train_cli.LOSSES == LOSSES and train_cli.CONTEXTS == CONTEXTS


def test_unknown_loss():
    with pytest.raises(ValueError, match="unknown loss"):
        build_loss("lovasz")


@pytest.mark.parametrize("name", LOSSES)
def test_one_step_reduces_loss_on_a_fixed_batch(name):
    torch.manual_seed(0)
    model = build_model(num_classes=3, base_channels=4, depth=2)
    x = torch.randn(2, 3, 12, 20)
    y = torch.randint(0, 3, (2, 12, 20))
    y[:, :2] = 255
    crit = build_loss(name)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model.train()
    before = crit(model(x), y)
    opt.zero_grad()
    before.backward()
    opt.step()
    after = crit(model(x), y)
    assert after.item() < before.item()


def test_poly_warmup_schedule():
    sched = PolyWarmup(total=100, warmup=10, power=0.9)
    assert sched(0) == pytest.approx(0.01)
    assert sched(5) < sched(10)
    assert sched(10) == pytest.approx((1 - 0.1) ** 0.9)
    assert sched(100) == 0.0
    assert all(sched(i) >= sched(i + 1) for i in range(10, 100))


# ----------------------------------------------------------------------------- data
def test_records_relative_to_the_odgt_and_missing_files(tmp_path):
    odgt = make_dataset(tmp_path, n=2)
    recs = read_records(odgt)
    assert len(recs) == 2 and Path(recs[0].image).is_file()
    (tmp_path / "lab" / "train1.png").unlink()
    with pytest.raises(SegprepError, match=r"train\.odgt:2: fpath_segm: no such file"):
        read_records(odgt)
    bad = tmp_path / "bad.odgt"
    bad.write_text('{"fpath_img": "x.png"}\n')
    with pytest.raises(SegprepError, match=r"bad\.odgt:1: missing key\(s\) fpath_segm"):
        read_records(bad)


def test_dataset_shapes_remap_and_determinism(tmp_path):
    odgt = make_dataset(tmp_path, n=3, size=(31, 45), k=3, ignore=7)
    ds = SegDataset(read_records(odgt), num_classes=3, ignore_index=7, crop=(20, 50),
                    scale=(0.5, 1.5), jitter=0.3, seed=1)
    img, mask = ds[(1, 4)]
    assert img.shape == (20, 50, 3) and img.dtype == torch.uint8
    assert mask.shape == (20, 50) and mask.dtype == torch.uint8
    assert set(np.unique(mask.numpy())) <= {0, 1, 2, 255}  # 7 → 255, padding 255, nearest only
    img2, mask2 = ds[(1, 4)]
    assert torch.equal(img, img2) and torch.equal(mask, mask2)  # seeded by (seed, epoch, index)
    img3, _ = ds[(1, 5)]
    assert not torch.equal(img, img3)
    # validation view: resize only, nearest for masks
    val = SegDataset(read_records(odgt), 3, 7, size=(23, 17), augment=False)
    vi, vm = val[0]
    assert vi.shape == (17, 23, 3) and vm.shape == (17, 23)
    assert set(np.unique(vm.numpy())) <= {0, 1, 2, 255}



def test_validation_loader_shards_in_order_resizes_and_pads_with_the_model_mean(tmp_path):
    # two manifests of different frame sizes: one batch mixes them, so it is padded
    small = read_records(make_dataset(tmp_path / "a", n=2, size=(11, 13), ignore=7))
    large = read_records(make_dataset(tmp_path / "b", n=2, size=(16, 20), ignore=7))
    recs = small + large
    mean = (0.2, 0.4, 0.6)
    shards = [list(validation_loader(recs, 3, 7, mean, batch_size=4, indices=range(r, 4, 2)))
              for r in range(2)]
    (imgs, masks), = shards[0]  # rank 0: records 0 and 2, in that order, one batch
    assert imgs.shape == (2, 16, 20, 3) and masks.shape == (2, 16, 20)
    plain = SegDataset(recs, 3, 7, augment=False)
    ref0, ref2 = plain[0], plain[2]
    assert torch.equal(imgs[0, :11, :13], ref0[0]) and torch.equal(imgs[1], ref2[0])
    assert torch.equal(masks[0, :11, :13], ref0[1]) and masks[0, 11:].eq(255).all()
    assert imgs[0, 11:, 0].tolist() == [[51, 102, 153]] * 5  # the model's mean colour
    assert len(shards[1]) == 1 and shards[1][0][0].shape[0] == 2
    resized = next(iter(validation_loader(recs, 3, 7, mean, size=(9, 8))))
    assert resized[0].shape == (4, 8, 9, 3)  # --size (W, H): every frame, no padding needed

@pytest.mark.parametrize("option", [{"hue": 0.2}, {"photometric": 1.0}])
def test_image_only_augmentations_keep_the_mask_and_are_seeded(tmp_path, option):
    # hue jitter and the lighting / blur / noise changes touch the image, never the mask, and
    # are seeded per (epoch, index)
    recs = read_records(make_dataset(tmp_path, n=2, k=3))
    plain = SegDataset(recs, 3, flip=False, seed=2)
    changed = SegDataset(recs, 3, flip=False, seed=2, **option)
    (i0, m0), (i1, m1), (i2, _) = plain[(1, 3)], changed[(1, 3)], changed[(1, 3)]
    assert torch.equal(m0, m1) and torch.equal(i1, i2) and not torch.equal(i0, i1)
    assert not torch.equal(i1, changed[(1, 4)][0])


def test_hue_leaves_grey_alone_and_photometric_zero_adds_nothing():
    from segprep.train.transforms import apply, train_transforms

    # a grey frame has no hue to rotate: hue-only jitter leaves it as it is
    grey = np.full((8, 9, 3), 90, np.uint8)
    aug = train_transforms(flip=False, hue=0.4)
    out, mask = apply(aug, grey, np.zeros((8, 9), np.uint8), seed=5)
    assert np.array_equal(out, grey) and not mask.any()
    # probability 0 adds no step: the same pipeline as without the option
    assert train_transforms(flip=False, photometric=0.0) is None
    assert len(train_transforms(flip=False, photometric=0.5).transforms) == 2


def _two_frames(folder: Path) -> list:
    """Frame 0: class 0, grey 10. Frame 1: class 1 (white-ish) with class 2 on rows 2-4 (orange)
    and an ignored row 0: mirror-symmetric, so a mirrored paste lands on the same pixels."""
    (folder / "img").mkdir(parents=True)
    (folder / "lab").mkdir()
    a_mask = np.zeros((7, 6), np.uint8)
    b_mask = np.ones((7, 6), np.uint8)
    b_mask[2:5] = 2
    b_mask[0] = 255
    colours = np.array([[10, 10, 10], [200, 200, 200], [100, 50, 25]], np.uint8)
    lines = []
    for i, mask in enumerate((a_mask, b_mask)):
        write_png(folder / "img" / f"{i}.png", colours[np.minimum(mask, 2)])
        write_png(folder / "lab" / f"{i}.png", mask)
        lines.append(json.dumps({"fpath_img": f"img/{i}.png", "fpath_segm": f"lab/{i}.png",
                                 "width": 6, "height": 7}))
    (folder / "t.odgt").write_text("\n".join(lines) + "\n")
    return read_records(folder / "t.odgt")


def test_class_mix_pastes_classes_of_another_frame_with_their_pixels(tmp_path):
    recs = _two_frames(tmp_path)
    orange, white = [100, 50, 25], [200, 200, 200]
    # chosen classes (copy-paste): frame 1's class 2 lands on frame 0, image and mask together
    chosen = SegDataset(recs, 3, flip=False, class_mix=1.0, class_mix_classes=[2], cache=True)
    for epoch in range(4):
        img, mask = (t.numpy() for t in chosen[(0, epoch)])
        assert (mask[2:5] == 2).all() and not mask[:2].any() and not mask[5:].any()
        assert (img[2:5] == orange).all() and (img[:2] == 10).all() and (img[5:] == 10).all()
    assert not chosen.load(0)[1].any()  # the cached frame is not touched
    # frame 1 has no class 2 to receive from frame 0 (class 0 only): nothing changes
    assert torch.equal(chosen[(1, 0)][1], SegDataset(recs, 3, flip=False)[(1, 0)][1])
    # ClassMix: a random half of frame 1's classes {1, 2}, never its ignored row; both happen
    mix = SegDataset(recs, 3, flip=False, class_mix=1.0, seed=4)
    outcomes = set()
    for epoch in range(12):
        img, mask = (t.numpy() for t in mix[(0, epoch)])
        assert torch.equal(mix[(0, epoch)][1], torch.from_numpy(mask))  # seeded
        assert not mask[0].any() and (img[0] == 10).all()  # ignored pixels are never pasted
        if (mask[2:5] == 2).all():
            assert not mask[1].any() and not mask[5:].any() and (img[2:5] == orange).all()
            outcomes.add(2)
        else:
            assert (mask[[1, 5, 6]] == 1).all() and not mask[2:5].any()
            assert (img[[1, 5, 6]] == white).all() and (img[2:5] == 10).all()
            outcomes.add(1)
    assert outcomes == {1, 2}
    # probability 0 (the default) and validation datasets never mix
    off = SegDataset(recs, 3, flip=False, class_mix=0.0)
    assert not off[(0, 0)][1].any()
    assert SegDataset(recs, 3, augment=False, class_mix=1.0).class_mix == 0.0


def test_class_mix_options_are_checked(tmp_path):
    for kw, message in (({"class_mix": 1.5}, "--class-mix: a probability"),
                        ({"class_mix_classes": (2,)}, "--class-mix-classes: needs --class-mix"),
                        ({"class_mix": 0.5, "class_mix_classes": (-1,)},
                         "--class-mix-classes: expected train_ids")):
        cfg = TrainConfig(train="t.odgt", out="o", num_classes=3, **kw)
        with pytest.raises(SegprepError, match=message):
            cfg.validate()
    train = make_dataset(tmp_path, n=4)
    runner = CliRunner()
    base = ["train", "--train", str(train), "--num-classes", "3", "--epochs", "1",
            "--batch-size", "2", "--base-channels", "4", "--depth", "2", "--crop", "16x16",
            "--threads", "1", "-q", "--no-tensorboard", "--class-mix", "0.5"]
    res = runner.invoke(cli, base + ["--class-mix-classes", "1,x", "--out", str(tmp_path / "a")])
    assert res.exit_code == 2 and "--class-mix-classes" in res.output
    res = runner.invoke(cli, base + ["--class-mix-classes", "1,3", "--out", str(tmp_path / "b")])
    assert res.exit_code == 2 and res.output.strip().splitlines()[-1] == (
        "segprep: error: --class-mix-classes: train_id 3 is outside the 3 classes")
    res = runner.invoke(cli, base + ["--class-mix-classes", "1,2", "--out", str(tmp_path / "c")])
    assert res.exit_code == 0, res.output
    ckpt = load_checkpoint(tmp_path / "c" / "last.pt")
    assert ckpt["args"]["class_mix"] == 0.5 and ckpt["args"]["class_mix_classes"] == [1, 2]


def test_photometric_is_a_probability():
    for bad, message in ((1.5, "must be <= 1"), (-0.1, "must be >= 0")):
        cfg = TrainConfig(train="t.odgt", out="o", num_classes=3, photometric=bad)
        with pytest.raises(SegprepError, match="--photometric: .*" + message):
            cfg.validate()


def test_hue_option_is_checked():
    cfg = TrainConfig(train="t.odgt", out="o", num_classes=3, hue=0.6)
    with pytest.raises(SegprepError, match="--hue"):
        cfg.validate()


def test_dataset_rejects_mask_values_outside_the_class_map(tmp_path):
    odgt = make_dataset(tmp_path, n=1, k=3)
    mask = np.zeros((37, 29), np.uint8)
    mask[3:5, 7:9] = 5
    mask[10] = 255
    write_png(tmp_path / "lab" / "train0.png", mask)
    ds = SegDataset(read_records(odgt), num_classes=3)
    with pytest.raises(DataError, match=r"train0\.png: mask value\(s\) 5 outside the class map"):
        ds.load(0)
    assert SegDataset(read_records(odgt), num_classes=6).load(0)[1].max() == 255


def test_data_error_survives_a_worker_reraise():
    # DataLoader workers re-raise as exc_type(formatted traceback)
    text = ("Caught DataError in DataLoader worker process 0.\nOriginal Traceback ...\n"
            "segprep.train.data.DataError: /x/m.png: mask value(s) 40 outside the class map")
    err = DataError(text)
    assert err.where == "/x/m.png" and err.message.startswith("mask value(s) 40")


def test_collate_pads_odd_sizes_and_input_is_normalised():
    a = (torch.full((5, 7, 3), 255, dtype=torch.uint8), torch.zeros((5, 7), dtype=torch.uint8))
    b = (torch.zeros((6, 4, 3), dtype=torch.uint8), torch.ones((6, 4), dtype=torch.uint8))
    imgs, masks = pad_collate([a, b])
    assert imgs.shape == (2, 6, 7, 3) and masks.shape == (2, 6, 7)
    assert masks[0, 5].eq(255).all() and masks[1, :, 4:].eq(255).all()
    x = to_model_input(imgs, torch.device("cpu"))
    assert x.shape == (2, 3, 6, 7) and x.dtype == torch.float32 and x.is_contiguous()
    assert x[0, :, 5].abs().max() < 0.02  # padding is the mean colour → ~0 after normalising
    xc = to_model_input(imgs, torch.device("cpu"), channels_last=True)
    assert xc.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(x, xc)


def test_epoch_sampler_is_a_seeded_shuffle_and_shards():
    ds = list(range(10))
    s = EpochSampler(ds, seed=5)
    s.set_epoch(2)
    first = list(s)
    assert sorted(i for i, _ in first) == list(range(10)) and {e for _, e in first} == {2}
    assert list(s) == first
    s.set_epoch(3)
    assert [i for i, _ in s] != [i for i, _ in first]
    shards = [EpochSampler(ds, seed=5, num_replicas=2, rank=r) for r in (0, 1)]
    for sh in shards:
        sh.set_epoch(2)
    assert sorted(i for sh in shards for i, _ in sh) == list(range(10))


# ----------------------------------------------------------------------------- loop
def test_resume_gives_the_same_weights_as_an_uninterrupted_run(tmp_path):
    train = make_dataset(tmp_path / "data", n=5)
    val = make_dataset(tmp_path / "data", n=2, seed=9, name="val")
    full = main(tiny_config(tmp_path, train, val, out=str(tmp_path / "full")))
    assert full["epoch"] == 2
    part = main(tiny_config(tmp_path, train, val, out=str(tmp_path / "part"), stop_after=1))
    assert part["epoch"] == 1 and part["stopped"] == "stop_after"
    resumed = main(resume=str(tmp_path / "part"), overrides={"quiet": True})
    assert resumed["epoch"] == 2
    a = load_checkpoint(tmp_path / "full" / "last.pt")
    b = load_checkpoint(tmp_path / "part" / "last.pt")
    assert a["model"].keys() == b["model"].keys()
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    assert a["scheduler"]["last_epoch"] == b["scheduler"]["last_epoch"]
    rows = (tmp_path / "part" / "metrics.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows] == ["epoch", "1", "2"]
    assert (tmp_path / "part" / "curves.png").stat().st_size > 0
    model, meta = load_model(tmp_path / "full" / "last.pt")
    assert meta["num_classes"] == 3 and meta["epoch"] == 2 and not model.training
    # a resumed run does not inherit --stop-after; --epochs on resume extends the schedule
    longer = main(resume=str(tmp_path / "part"), overrides={"quiet": True, "epochs": 3})
    assert longer["epoch"] == 3 and longer["stopped"] == "epochs"
    assert load_checkpoint(tmp_path / "part")["scheduler"]["lr_lambdas"][0]["total"] == \
        3 * a["scheduler"]["lr_lambdas"][0]["total"] // 2


def test_class_weights_json_and_time_budget(tmp_path):
    train = make_dataset(tmp_path / "data", n=4)
    stats = tmp_path / "stats.json"
    stats.write_text(json.dumps({"num_classes": 3, "class_weights": {
        "median_frequency": [1.0, 2.0, 0.5], "inverse_log": [1.0, 1.0, 1.0]}}))
    out = main(tiny_config(tmp_path, train, None, epochs=None, time_budget=0.05,
                           class_weights=str(stats), loss="ce+dice"))
    assert out["stopped"] in ("time_budget", "epochs") and out["epoch"] >= 1
    assert (tmp_path / "run" / "last.pt").is_file()
    stats.write_text(json.dumps({"num_classes": 2, "class_weights": {
        "median_frequency": [1.0, 2.0]}}))
    with pytest.raises(SegprepError, match="2 class weights for 3 classes"):
        main(tiny_config(tmp_path, train, None, class_weights=str(stats), overwrite=True))


def test_time_budget_stops_mid_epoch_in_time_with_the_lr_at_zero(tmp_path, monkeypatch):
    """An epoch longer than the whole budget: the run stops mid-epoch, still validates and
    checkpoints, ends within the budget, and the fitted poly schedule has reached 0."""
    import time

    from segprep.train import data

    slow = data.SegDataset.__getitem__

    def getitem(self, key):  # 30 ms per frame: 100 iterations of 2 frames take > 6 s
        time.sleep(0.03)
        return slow(self, key)

    monkeypatch.setattr(data.SegDataset, "__getitem__", getitem)
    train = make_dataset(tmp_path / "data", n=200, size=(32, 32))
    val = make_dataset(tmp_path / "data", n=4, seed=9, name="val", size=(32, 32))
    budget_s = 4.8
    t = time.perf_counter()
    out = main(tiny_config(tmp_path, train, val, epochs=None, time_budget=budget_s / 60,
                           crop=None, scale=None, deterministic=False))
    wall = time.perf_counter() - t
    assert wall <= budget_s + 1.0, wall
    assert out["stopped"] == "time_budget" and out["epoch"] == 1
    rows = (tmp_path / "run" / "metrics.csv").read_text().splitlines()
    assert len(rows) == 2
    row = dict(zip(rows[0].split(","), rows[1].split(",")))
    assert 0 < int(row["iterations"]) < 100  # stopped inside the first epoch
    assert float(row["lr"]) <= 0.05 * 5e-3  # the schedule was fitted to end at the budget
    assert row["val_miou"] != ""  # the final validation ran
    ckpt = load_checkpoint(tmp_path / "run" / "last.pt")
    assert ckpt["scheduler"]["last_epoch"] == int(row["iterations"])
    assert (tmp_path / "run" / "best.pt").is_file() and (tmp_path / "run" / "curves.png").is_file()


@pytest.mark.parametrize("name", ["camvid11", "camvid11_segnet", "camvid11_mseg",
                                  "camvid11_mathworks"])
def test_camvid11_maps_report_the_eleven_segnet_classes(name):
    from segprep.class_maps import load
    from segprep.train.setup import resolve_classes

    k, names, cmap = resolve_classes(TrainConfig(class_map=name))
    assert k == 11 and names == ["Sky", "Building", "Pole", "Road", "Pavement", "Tree",
                                 "SignSymbol", "Fence", "Car", "Pedestrian", "Bicyclist"]
    ref = load("camvid11")  # SegNet's colours where the 32-class table has a row of that name
    for t, n in enumerate(names):
        if n in cmap.names:
            assert tuple(cmap.train_colors[t]) == tuple(ref.train_colors[t]), n


def test_default_threads_leave_the_cores_other_processes_hold(monkeypatch):
    from segprep.train import threads

    monkeypatch.setattr("segprep.io.default_jobs", lambda: 4)
    for load, want in ((0.2, 4), (1.0, 4), (2.0, 3), (3.4, 2), (9.0, 1)):
        monkeypatch.setattr(threads, "cpu_load", lambda load=load: load)
        assert threads.cpu_threads() == want, load
    monkeypatch.setattr(threads, "cpu_load", lambda: None)
    assert threads.cpu_threads() == 4


def test_train_picks_threads_and_logs_the_choice(tmp_path, monkeypatch, capsys):
    from segprep.train import threads

    monkeypatch.setattr(threads, "cpu_load", lambda: 1.0 + (__import__("os").cpu_count() or 1))
    train = make_dataset(tmp_path / "data", n=4)
    main(tiny_config(tmp_path, train, None, epochs=1, threads=None, quiet=False))
    line = capsys.readouterr().err.splitlines()[0]
    assert "threads 1 (auto:" in line and "load" in line


# ----------------------------------------------------------------------------- CLI
def test_cli_trains_and_reports_bad_data_on_one_line(tmp_path):
    train = make_dataset(tmp_path / "data", n=4)
    runner = CliRunner()

    def args(k="3", out="run"):
        return ["train", "--train", str(train), "--val", str(train), "--num-classes", k,
                "--base-channels", "4", "--depth", "2", "--epochs", "1", "--batch-size", "2",
                "--crop", "16x16", "--workers", "0", "--out", str(tmp_path / out), "-q"]

    res = runner.invoke(cli, args())
    assert res.exit_code == 0, res.output
    assert (tmp_path / "run" / "best.pt").is_file()
    # mask values outside the class map: one error line naming the file, exit 1 (a failed
    # input file, as for the batch commands)
    res = runner.invoke(cli, args(k="2", out="r2"))
    assert res.exit_code == 1
    err = res.output.strip().splitlines()[-1]
    assert err.startswith("segprep: error: ") and "outside the class map" in err
    # a missing file
    (tmp_path / "data" / "img" / "train2.png").unlink()
    res = runner.invoke(cli, args(out="r4"))
    assert res.exit_code == 1 and "fpath_img: no such file" in res.output
    # usage errors
    res = runner.invoke(cli, ["train", "--train", str(train), "--out", str(tmp_path / "r3")])
    assert res.exit_code == 2 and "--class-map" in res.output
    res = runner.invoke(cli, ["train", "--resume", str(tmp_path / "run"), "--lr", "0.1"])
    assert res.exit_code == 2 and "--lr" in res.output


def test_cli_help_lists_every_option():
    res = CliRunner().invoke(cli, ["train", "--help"])
    assert res.exit_code == 0
    for opt in ("--train", "--val", "--class-map", "--num-classes", "--ignore-index", "--out",
                "--epochs", "--batch-size", "--lr", "--crop", "--scale", "--size", "--workers",
                "--seed", "--device", "--loss", "--class-weights", "--resume", "--time-budget",
                "--base-channels", "--encoder", "--pretrained", "--val-every", "--threads",
                "--color-jitter", "--hue", "--photometric", "--ema", "--encoder-norm-eval",
                "--context", "--class-mix", "--class-mix-classes"):
        assert opt in res.output, opt


# ----------------------------------------------------------------------------- real data
def test_overfits_four_real_camvid_frames(camvid_root, tmp_path):
    seg = camvid_root / "segnet"
    names = sorted(p.name for p in (seg / "train").glob("*.png"))[:4]
    odgt = tmp_path / "four.odgt"
    odgt.write_text("".join(json.dumps({"fpath_img": str(seg / "train" / n),
                                        "fpath_segm": str(seg / "trainannot" / n),
                                        "width": 480, "height": 360}) + "\n" for n in names))
    cfg = TrainConfig(train=str(odgt), val=str(odgt), out=str(tmp_path / "run"), num_classes=11,
                      ignore_index=11, size=(64, 48), flip=False, epochs=150, batch_size=4,
                      base_channels=8, depth=3, lr=1e-2, warmup_epochs=2, workers=0, threads=1,
                      cache=True, val_every=1000, quiet=True, tensorboard=False, seed=0)
    out = main(cfg)
    assert out["scores"].pixel_accuracy >= 0.90, out["scores"]


def test_out_of_memory_gives_advice(tmp_path, monkeypatch):
    import segprep.train.losses as losses

    class Exhausted(torch.nn.Module):
        def forward(self, logits, target):
            raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to "
                               "allocate 123 bytes")

    monkeypatch.setattr(losses, "build_loss", lambda *a, **k: Exhausted())
    train = make_dataset(tmp_path / "data", n=2)
    with pytest.raises(SegprepError, match=r"out of memory .* try a smaller --batch-size"):
        main(tiny_config(tmp_path, train, None, epochs=1))


def test_bad_mask_reported_from_a_worker_process(tmp_path):
    train = make_dataset(tmp_path / "data", n=4)
    mask = np.full((37, 29), 9, np.uint8)
    write_png(tmp_path / "data" / "lab" / "train3.png", mask)
    res = CliRunner().invoke(cli, ["train", "--train", str(train), "--num-classes", "3",
                                   "--base-channels", "4", "--depth", "2", "--epochs", "1",
                                   "--batch-size", "2", "--workers", "1", "-q",
                                   "--out", str(tmp_path / "run")])
    assert res.exit_code == 1
    assert res.output.strip().splitlines()[-1] == (
        f"segprep: error: {tmp_path / 'data' / 'lab' / 'train3.png'}: mask value(s) 9 outside "
        "the class map (0..2, ignore 255)")


def test_dice_equals_the_one_hot_formula():
    """Soft Dice via index_add equals the textbook one-hot formulation (value and gradient)."""
    import torch.nn.functional as F

    torch.manual_seed(1)
    logits = torch.randn(2, 5, 7, 9, requires_grad=True)
    target = torch.randint(0, 4, (2, 7, 9))  # class 4 absent
    target[0, :2] = 255
    weight = torch.tensor([1.0, 2.0, 0.5, 1.5, 3.0])
    valid = (target != 255).unsqueeze(1).float()
    prob = logits.softmax(1) * valid
    onehot = F.one_hot(torch.where(target == 255, 0, target), 5).permute(0, 3, 1, 2) * valid
    inter, card = (prob * onehot).sum((0, 2, 3)), prob.sum((0, 2, 3)) + onehot.sum((0, 2, 3))
    w = (onehot.sum((0, 2, 3)) > 0).float() * weight
    expected = ((1 - 2 * inter / card) * w).sum() / w.sum()
    got = build_loss("dice", weight)(logits, target)
    torch.testing.assert_close(got, expected)
    g_expected, = torch.autograd.grad(expected, logits)
    g_got, = torch.autograd.grad(got, logits)
    torch.testing.assert_close(g_got, g_expected)
