"""``segprep predict`` with a small, randomly initialised U-Net checkpoint (no training needed).

Checks: outputs equal a direct forward pass of the model on the normalised image; the four
formats; Cityscapes naming kept; sliding-window placement and averaging (exact with a pointwise
model); folder / single image / odgt inputs; skip-existing and --overwrite; a bad image is one
line and the others are still written; images/s and peak memory are reported.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from segprep import class_maps
from segprep.cli.main import cli
from segprep.io import read_image, read_png
from segprep.model import MEAN, STD, build_model
from segprep.predict import Predictor, default_palette, tile_positions
from segprep.train.checkpoint import make_meta, save_checkpoint


def run(*args) -> CliRunner.Result:
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def make_checkpoint(path: Path, class_map: str | None = "cityscapes", k: int = 19,
                    args: dict | None = None) -> Path:
    torch.manual_seed(0)
    model = build_model(num_classes=k, base_channels=4, depth=2)
    model.train()
    with torch.no_grad():  # non-trivial BatchNorm statistics
        model(torch.randn(2, 3, 32, 32))
    cmap = class_maps.load(class_map) if class_map else None
    meta = make_meta(model, num_classes=k, ignore_index=255, class_map=cmap,
                     class_names=list(cmap.train_names) if cmap else [str(i) for i in range(k)],
                     mean=MEAN, std=STD, epoch=1, best_miou=None, args=args or {})
    save_checkpoint(path, {"format": 1, "model": model.state_dict(), "meta": meta})
    return path


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("ck") / "best.pt")


@pytest.fixture(scope="module")
def cs_images(cityscapes_root, tmp_path_factory) -> Path:
    """Two real Cityscapes frames, downscaled to 512x256 to keep CPU inference quick, in the
    leftImg8bit/<split>/<city>/ layout."""
    root = tmp_path_factory.mktemp("imgs") / "leftImg8bit" / "train"
    for f in sorted((cityscapes_root / "leftImg8bit" / "train").glob("*/*.png"))[:2]:
        dst = root / f.parent.name / f.name
        dst.parent.mkdir(parents=True, exist_ok=True)
        Image.open(f).convert("RGB").resize((512, 256), Image.BILINEAR).save(dst)
    return root


def direct(ckpt: Path, img: np.ndarray) -> np.ndarray:
    """argmax of the checkpoint's model on the normalised image, computed here."""
    from segprep.train.checkpoint import load_model

    model, meta = load_model(ckpt)
    x = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255
    x = (x - torch.tensor(meta["mean"]).view(1, 3, 1, 1)) / torch.tensor(meta["std"]).view(1, 3,
                                                                                          1, 1)
    with torch.no_grad():
        return model(x).argmax(1)[0].numpy().astype(np.uint8)


def test_trainids_equal_direct_forward_and_keep_names(ckpt, cs_images, tmp_path):
    out = tmp_path / "out"
    res = run("predict", ckpt, cs_images, out, "--batch-size", "2", "-q")
    assert res.exit_code == 0, res.output
    assert "images/s" in res.output and "peak RSS" in res.output and "MiB" in res.output
    assert "2 done" in res.output
    for f in sorted(cs_images.rglob("*.png")):
        p = out / f.parent.name / f.name  # <city>/<frame>_leftImg8bit.png
        pred = read_png(p)
        assert pred.dtype == np.uint8 and pred.shape == (256, 512)
        np.testing.assert_array_equal(pred, direct(ckpt, read_image(f)))
        assert pred.max() < 19


def test_formats(ckpt, cs_images, tmp_path):
    cmap = class_maps.load("cityscapes")
    outs = {}
    for fmt in ("trainIds", "labelIds", "color", "overlay"):
        outs[fmt] = tmp_path / fmt
        res = run("predict", ckpt, cs_images, outs[fmt], "--format", fmt, "-q")
        assert res.exit_code == 0, res.output
    f = sorted(cs_images.rglob("*.png"))[0]
    rel = Path(f.parent.name) / f.name
    t = read_png(outs["trainIds"] / rel)
    np.testing.assert_array_equal(read_png(outs["labelIds"] / rel), cmap.train_id_to_id[t])
    np.testing.assert_array_equal(read_png(outs["color"] / rel), cmap.train_colors[t])
    want = 0.5 * read_image(f).astype(float) + 0.5 * cmap.train_colors[t]
    assert not (outs["overlay"] / rel.with_suffix(".jpg")).exists()
    im = read_image(outs["overlay"] / rel)  # PNG: exactly the blend, rounded
    assert im.shape == (256, 512, 3)
    np.testing.assert_array_equal(im, np.floor(want + 0.5).astype(np.uint8))
    res = run("predict", ckpt, cs_images, tmp_path / "jpg", "--format", "overlay",
              "--overlay-ext", "jpg", "-q")
    assert res.exit_code == 0, res.output
    im = np.asarray(Image.open(tmp_path / "jpg" / rel.with_suffix(".jpg")))
    assert im.shape == (256, 512, 3) and np.abs(im.astype(float) - want).mean() < 6  # JPEG


def test_labelids_needs_class_map(tmp_path, cs_images):
    ck = make_checkpoint(tmp_path / "nomap.pt", class_map=None, k=5)
    res = run("predict", ck, cs_images, tmp_path / "o", "--format", "labelIds", "-q")
    assert res.exit_code == 2 and "needs a checkpoint trained with a class map" in res.output
    res = run("predict", ck, cs_images, tmp_path / "c", "--format", "color", "-q")
    assert res.exit_code == 0
    f = sorted((tmp_path / "c").rglob("*.png"))[0]
    colors = read_png(f).reshape(-1, 3)
    pal = default_palette(5)  # no class map: the generated palette, 5 distinct colors
    assert len({tuple(c) for c in pal}) == 5
    assert {tuple(c) for c in np.unique(colors, axis=0)} <= {tuple(c) for c in pal}


def test_tile_positions_cover_with_overlap():
    for size, tile, ov in ((1024, 512, 0.25), (1000, 300, 0.5), (100, 128, 0.25), (7, 3, 0.0)):
        pos = tile_positions(size, tile, ov)
        covered = np.zeros(size, bool)
        for p in pos:
            covered[p:p + tile] = True
        assert covered.all() and pos[0] == 0 and min(pos[-1] + tile, size) == size
        if len(pos) > 1:
            assert all(b - a <= tile * (1 - ov) + 1e-9 for a, b in zip(pos, pos[1:]))


def test_sliding_window_averages_exactly(ckpt):
    p = Predictor(ckpt, device="cpu")
    # a pointwise model: tiling must reproduce the whole-image logits exactly
    conv = torch.nn.Conv2d(3, 19, 1)
    torch.manual_seed(1)
    torch.nn.init.normal_(conv.weight)
    p.model = conv.eval()
    img = np.random.default_rng(0).integers(0, 256, (70, 101, 3), dtype=np.uint8)
    whole = p.logits([img])
    p.tile, p.overlap, p.batch_size = (32, 40), 0.3, 3
    tiled = p.logits([img])
    torch.testing.assert_close(tiled, whole, rtol=1e-5, atol=1e-5)
    # and with the real U-Net, tiles as large as the image equal whole-image inference
    q = Predictor(ckpt, device="cpu", tile=(256, 512))
    img2 = np.random.default_rng(1).integers(0, 256, (64, 96, 3), dtype=np.uint8)
    q2 = Predictor(ckpt, device="cpu")
    torch.testing.assert_close(q.logits([img2]), q2.logits([img2]))


def test_inputs_single_image_odgt_skip_overwrite_and_bad_image(ckpt, cs_images, tmp_path):
    f = sorted(cs_images.rglob("*.png"))[0]
    res = run("predict", ckpt, f, tmp_path / "one", "-q")
    assert res.exit_code == 0 and (tmp_path / "one" / f.name).exists()
    # odgt input (paths relative to the manifest's folder)
    odgt = cs_images.parent / "list.odgt"
    odgt.write_text("".join(json.dumps({"fpath_img": str(p.relative_to(cs_images.parent)),
                                        "fpath_segm": "x.png", "width": 512, "height": 256})
                            + "\n" for p in sorted(cs_images.rglob("*.png"))))
    res = run("predict", ckpt, odgt, tmp_path / "od", "-q")
    assert res.exit_code == 0, res.output
    assert len(list((tmp_path / "od").rglob("*.png"))) == 2
    # skip existing, --overwrite
    res = run("predict", ckpt, odgt, tmp_path / "od", "-q")
    assert res.exit_code == 0 and "0 done, 2 skipped" in res.output
    res = run("predict", ckpt, odgt, tmp_path / "od", "--overwrite", "-q")
    assert "2 done, 0 skipped" in res.output
    # a truncated image: one line, the other still predicted, exit 1
    bad_dir = tmp_path / "bad"
    shutil.copytree(cs_images, bad_dir)
    b = sorted(bad_dir.rglob("*.png"))[1]
    b.write_bytes(b.read_bytes()[:500])
    res = run("predict", ckpt, bad_dir, tmp_path / "bo", "-q")
    assert res.exit_code == 1
    errs = [ln for ln in res.output.splitlines() if ln.startswith("segprep: error:")]
    assert len(errs) == 1 and str(b) in errs[0]
    assert "1 done" in res.output


def test_bad_options(ckpt, cs_images, tmp_path):
    res = run("predict", ckpt, cs_images, tmp_path / "o", "--tile", "abc", "-q")
    assert res.exit_code == 2 and "--tile" in res.output
    res = run("predict", ckpt, cs_images, tmp_path / "o", "--overlap", "1.5", "-q")
    assert res.exit_code == 2 and "--overlap" in res.output
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"nope")
    res = run("predict", bad, cs_images, tmp_path / "o", "-q")
    assert res.exit_code == 2 and "cannot read checkpoint" in res.output


# ----------------------------------------------------------------------------- --size
@pytest.fixture(scope="module")
def camvid_frames(camvid_root, tmp_path_factory) -> Path:
    """Two real SegNet CamVid val frames (480x360), copied unchanged."""
    d = tmp_path_factory.mktemp("camvid")
    for f in sorted((camvid_root / "segnet" / "val").glob("*.png"))[:2]:
        shutil.copy(f, d / f.name)
    return d


def direct_at(ckpt: Path, img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The model run on the image resized to size=(W, H) (cv2 bilinear, as SegDataset), its
    logits resized back bilinearly, argmax: computed here."""
    import cv2
    import torch.nn.functional as F

    from segprep.train.checkpoint import load_model

    model, meta = load_model(ckpt)
    small = cv2.resize(img, size, interpolation=cv2.INTER_LINEAR)
    x = torch.from_numpy(small).permute(2, 0, 1)[None].float() / 255
    x = (x - torch.tensor(meta["mean"]).view(1, 3, 1, 1)) / torch.tensor(meta["std"]).view(
        1, 3, 1, 1)
    with torch.no_grad():
        logits = F.interpolate(model(x), size=img.shape[:2], mode="bilinear",
                               align_corners=False)
    return logits.argmax(1)[0].numpy().astype(np.uint8)


def test_size_defaults_to_the_training_size_and_outputs_keep_the_native_size(camvid_frames,
                                                                            tmp_path):
    ck = make_checkpoint(tmp_path / "cv.pt", "camvid11", 11, args={"size": [240, 180]})
    frames = sorted(camvid_frames.glob("*.png"))
    res = run("predict", ck, camvid_frames, tmp_path / "auto", "-q")
    assert res.exit_code == 0, res.output
    assert "model at 240x180" in res.output
    res = run("predict", ck, camvid_frames, tmp_path / "native", "--size", "native", "-q")
    assert res.exit_code == 0 and "model at native size" in res.output
    res = run("predict", ck, camvid_frames, tmp_path / "big", "--size", "320x240", "-q")
    assert res.exit_code == 0 and "model at 320x240" in res.output
    for f in frames:
        img = read_image(f)
        assert img.shape == (360, 480, 3)
        auto = read_png(tmp_path / "auto" / f.name)
        assert auto.shape == (360, 480)  # aligned with the input file
        np.testing.assert_array_equal(auto, direct_at(ck, img, (240, 180)))
        np.testing.assert_array_equal(read_png(tmp_path / "native" / f.name), direct(ck, img))
        np.testing.assert_array_equal(read_png(tmp_path / "big" / f.name),
                                      direct_at(ck, img, (320, 240)))
    # a checkpoint trained without --size runs at native size
    ck2 = make_checkpoint(tmp_path / "nosize.pt", "camvid11", 11)
    res = run("predict", ck2, frames[0], tmp_path / "n2", "-q")
    assert res.exit_code == 0 and "model at native size" in res.output
    np.testing.assert_array_equal(read_png(tmp_path / "n2" / frames[0].name),
                                  direct(ck2, read_image(frames[0])))
    for bad in ("240", "0x180", "axb", "240x180x3"):
        res = run("predict", ck, camvid_frames, tmp_path / "bad", "--size", bad, "-q")
        assert res.exit_code == 2 and "--size" in res.output and "WxH" in res.output


# ----------------------------------------------------------------------------- no data loss
def test_refuses_to_overwrite_its_inputs_and_never_reads_its_outputs(ckpt, cs_images, tmp_path):
    src = tmp_path / "imgs"
    shutil.copytree(cs_images, src)
    before = {p: p.read_bytes() for p in src.rglob("*.png")}
    # OUT == INPUT: an output would replace a camera image, whatever --overwrite says
    for extra in ([], ["--overwrite"]):
        res = run("predict", ckpt, src, src, "-q", "--threads", "1", *extra)
        assert res.exit_code == 2 and "would replace" in res.output, res.output
    one = sorted(src.rglob("*.png"))[0]
    res = run("predict", ckpt, one, one.parent, "--overwrite", "-q", "--threads", "1")
    assert res.exit_code == 2 and "would replace" in res.output
    assert {p: p.read_bytes() for p in src.rglob("*.png")} == before
    # an output folder inside the input folder is not read back on the next run
    nest = src / "preds"
    for _ in range(2):
        res = run("predict", ckpt, src, nest, "--overwrite", "-q", "--threads", "1")
        assert res.exit_code == 0 and "2 done, 0 skipped" in res.output, res.output
    assert not (nest / "preds").exists()
    assert len(list(nest.rglob("*.png"))) == 2
    # OUT must be a folder for still images
    res = run("predict", ckpt, src, one, "-q", "--threads", "1")
    assert res.exit_code == 2 and "is a file" in res.output
