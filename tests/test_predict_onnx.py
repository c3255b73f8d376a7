"""``segprep predict --backend onnxruntime``, ``--tta flip`` and ``--tta-scales``.

Checks: the exported ``.onnx`` alone (no checkpoint beside it) predicts: class map, normalisation
and training size come from its metadata; ONNX Runtime agrees with PyTorch on the real frames
(argmax ≥ 99.99 % of pixels, small logit difference); flip TTA averages the logits of the image
and of its mirror, on both backends; multi-scale testing averages the softmax of the image run at
each factor (logits resized back), as mmsegmentation's ``aug_test``; a missing onnxruntime is a
one-line error naming the extra.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from test_predict import make_checkpoint

from segprep import class_maps
from segprep.cli.main import cli
from segprep.export import export_onnx
from segprep.io import read_image, read_png
from segprep.predict import Predictor

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")


def run(*args) -> CliRunner.Result:
    args = list(args) + (["--threads", "1"] if args[0] == "predict" else [])
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> tuple[Path, Path]:
    """A small CamVid checkpoint trained at 240x180 and its ONNX export, alone in a folder."""
    d = tmp_path_factory.mktemp("onnx")
    ck = make_checkpoint(d / "ck" / "best.pt", "camvid11", 11, args={"size": [240, 180]})
    onnx_path = d / "alone" / "model.onnx"
    export_onnx(ck, onnx_path, check=False)
    assert sorted(p.name for p in onnx_path.parent.iterdir()) == ["model.onnx"]
    return ck, onnx_path


@pytest.fixture(scope="module")
def frames(camvid_root) -> list[Path]:
    return sorted((camvid_root / "segnet" / "val").glob("*.png"))


def test_onnx_file_alone_carries_what_predict_needs(models):
    ck, onnx_path = models
    t = Predictor(ck, device="cpu", threads=1)
    o = Predictor(onnx_path, device="cpu", threads=1)  # backend from the suffix
    assert o.backend.name == "onnxruntime" and "CPUExecutionProvider" in o.backend.providers
    assert o.size == t.size == (240, 180)
    assert o.info.mean == t.info.mean and o.info.std == t.info.std
    assert o.info.num_classes == 11 and o.info.class_names == t.info.class_names
    assert o.class_map.name == "camvid11"
    assert np.array_equal(o.class_map.train_id_to_id, t.class_map.train_id_to_id)


@pytest.mark.parametrize("step", [10, pytest.param(1, marks=pytest.mark.slow)])
def test_backend_parity_on_real_frames(models, frames, step):
    """argmax agreement and max logit difference, onnxruntime vs torch, on the CamVid val frames
    (every 10th by default, all 101 with -m slow)."""
    ck, onnx_path = models
    t = Predictor(ck, device="cpu", threads=1, batch_size=4)
    o = Predictor(onnx_path, device="cpu", threads=1, batch_size=4)
    imgs = [read_image(f) for f in frames[::step]]
    agree = total = 0
    max_diff = 0.0
    for i in range(0, len(imgs), 4):
        lt, lo = t.logits(imgs[i:i + 4]), o.logits(imgs[i:i + 4])
        max_diff = max(max_diff, float((lt - lo).abs().max()))
        agree += int((lt.argmax(1) == lo.argmax(1)).sum())
        total += lt.argmax(1).numel()
    assert total == len(imgs) * 360 * 480
    assert agree / total >= 0.9999, agree / total
    assert max_diff < 1e-3
    print(f"\nonnxruntime vs torch on {len(imgs)} CamVid val frames: argmax agreement "
          f"{100 * agree / total:.5f} %, max |logit diff| {max_diff:.3g}")


def test_cli_onnxruntime_matches_torch_on_folders_and_video(models, frames, tmp_path):
    ck, onnx_path = models
    src = tmp_path / "imgs"
    src.mkdir()
    for f in frames[:3]:
        shutil.copy(f, src / f.name)
    res = run("predict", ck, src, tmp_path / "t", "--format", "labelIds", "-q")
    assert res.exit_code == 0, res.output
    res = run("predict", onnx_path, src, tmp_path / "o", "--format", "labelIds",
              "--backend", "onnxruntime", "-q")
    assert res.exit_code == 0, res.output
    assert "onnxruntime CPUExecutionProvider, model at 240x180" in res.output
    for f in frames[:3]:
        a, b = read_png(tmp_path / "t" / f.name), read_png(tmp_path / "o" / f.name)
        assert (a == b).mean() >= 0.9999
        assert set(np.unique(b)) <= set(class_maps.load("camvid11").ids.tolist())

    av = pytest.importorskip("av")
    vid = tmp_path / "v.mkv"
    out = av.open(str(vid), "w")
    s = out.add_stream("ffv1", rate=15)
    s.width, s.height, s.pix_fmt = 480, 360, "bgr0"
    for f in frames[:3]:
        for p in s.encode(av.VideoFrame.from_ndarray(read_image(f), format="rgb24")):
            out.mux(p)
    for p in s.encode(None):
        out.mux(p)
    out.close()
    res = run("predict", onnx_path, vid, tmp_path / "v.mp4", "--save-masks", tmp_path / "vm",
              "-q")
    assert res.exit_code == 0, res.output
    for i, f in enumerate(frames[:3]):
        ids = read_png(tmp_path / "t" / f.name)
        train = read_png(tmp_path / "vm" / f"v_{i:06d}.png")
        cmap = class_maps.load("camvid11")
        assert (cmap.train_id_to_id[train] == ids).mean() >= 0.9999


def test_flip_tta_averages_image_and_mirror(models, frames, tmp_path):
    ck, onnx_path = models
    img = read_image(frames[0])
    plain = Predictor(ck, device="cpu", size="native", threads=1)
    tta = Predictor(ck, device="cpu", size="native", tta="flip", threads=1)
    mirrored = plain.logits([np.ascontiguousarray(img[:, ::-1])]).flip(-1)
    want = (plain.logits([img]) + mirrored) / 2
    got = tta.logits([img])
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
    assert not torch.equal(got.argmax(1), plain.logits([img]).argmax(1))  # it does something
    # the same on onnxruntime, and through the CLI
    otta = Predictor(onnx_path, device="cpu", size="native", tta="flip", threads=1)
    assert (otta.logits([img]).argmax(1) == got.argmax(1)).float().mean() >= 0.9999
    res = run("predict", ck, frames[0], tmp_path / "c", "--tta", "flip", "--size", "native",
              "-q")
    assert res.exit_code == 0, res.output
    np.testing.assert_array_equal(read_png(tmp_path / "c" / frames[0].name),
                                  want.argmax(1)[0].numpy().astype(np.uint8))
    res = run("predict", ck, frames[0], tmp_path / "x", "--tta", "rotate", "-q")
    assert res.exit_code == 2 and "--tta" in res.output


def test_multi_scale_tta_averages_softmax_over_scales(models, frames, tmp_path):
    import cv2
    import torch.nn.functional as F

    ck, onnx_path = models
    img = read_image(frames[0])  # 480x360; the model runs at its training size 240x180
    h, w = img.shape[:2]
    plain = Predictor(ck, device="cpu", threads=1)
    flip = Predictor(ck, device="cpu", tta="flip", threads=1)
    flip_native = Predictor(ck, device="cpu", size="native", tta="flip", threads=1)
    want = 0
    for s in (0.5, 1.0, 1.5):  # each view resized from the frame itself, logits back to 480x360
        view = cv2.resize(img, (round(240 * s), round(180 * s)), interpolation=cv2.INTER_LINEAR)
        lo = flip_native.logits([view])  # the model run at the view's own size
        assert lo.shape[-2:] == view.shape[:2]
        lo = F.interpolate(lo, size=(h, w), mode="bilinear", align_corners=False)
        want = want + lo.softmax(1) / 3
    want = torch.log(want)
    ms = Predictor(ck, device="cpu", tta="flip", tta_scales=(0.5, 1, 1.5), threads=1)
    got = ms.logits([img])
    assert got.shape == (1, 11, h, w)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
    assert not torch.equal(got.argmax(1), flip.logits([img]).argmax(1))  # it does something
    # one factor 1 is the plain model
    torch.testing.assert_close(Predictor(ck, device="cpu", tta_scales=(1,), threads=1)
                               .logits([img]), plain.logits([img]))
    # onnxruntime (dynamic H/W) agrees; the CLI writes the same argmax
    oms = Predictor(onnx_path, device="cpu", tta="flip", tta_scales=(0.5, 1, 1.5), threads=1)
    assert (oms.logits([img]).argmax(1) == got.argmax(1)).float().mean() >= 0.9999
    res = run("predict", ck, frames[0], tmp_path / "c", "--tta", "flip", "--tta-scales",
              "0.5,1,1.5", "-q")
    assert res.exit_code == 0, res.output
    np.testing.assert_array_equal(read_png(tmp_path / "c" / frames[0].name),
                                  got.argmax(1)[0].numpy().astype(np.uint8))
    for bad, why in (("0.5,x", "numbers separated by commas"), ("0,1", "in (0, 4]"),
                     ("1,1", "different factors")):
        res = run("predict", ck, frames[0], tmp_path / "x", "--tta-scales", bad, "-q")
        assert res.exit_code == 2 and "--tta-scales" in res.output and why in res.output, \
            res.output
        assert "Traceback" not in res.output


def test_backend_errors(models, frames, tmp_path, monkeypatch):
    ck, onnx_path = models
    res = run("predict", onnx_path, frames[0], tmp_path / "a", "--backend", "torch", "-q")
    assert res.exit_code == 2 and "needs --backend onnxruntime" in res.output
    res = run("predict", ck, frames[0], tmp_path / "a", "--backend", "onnxruntime", "-q")
    assert res.exit_code == 2 and "takes the .onnx" in res.output
    bare = tmp_path / "bare.onnx"  # an ONNX file without segprep metadata
    import onnx

    m = onnx.load(str(onnx_path))
    del m.metadata_props[:]
    onnx.save(m, str(bare))
    res = run("predict", bare, frames[0], tmp_path / "a", "-q")
    assert res.exit_code == 2 and "no segprep metadata" in res.output
    # without onnxruntime installed: one line naming the extra
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    res = run("predict", onnx_path, frames[0], tmp_path / "a", "-q")
    assert res.exit_code == 2
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert lines == ["segprep: error: --backend: onnxruntime is not installed; install the "
                     "extra: pip install -e '.[onnx]'"]
    assert not (tmp_path / "a").exists()
