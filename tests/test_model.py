"""The U-Net: any input size, stride, config round trip, checkpoint loading contract."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from segprep.errors import SegprepError
from segprep.model import MEAN, STD, UNet, build_model
from segprep.train.checkpoint import (
    load_model,
    make_meta,
    rng_state,
    save_checkpoint,
    set_rng_state,
)


@pytest.mark.parametrize("depth", [1, 3, 4])
@pytest.mark.parametrize("hw", [(17, 23), (32, 32), (1, 5), (45, 64)])
def test_unet_keeps_any_input_size(depth, hw):
    torch.manual_seed(0)
    model = build_model(num_classes=5, base_channels=4, depth=depth).eval()
    x = torch.randn(2, 3, *hw)
    with torch.no_grad():
        y = model(x)
    assert y.shape == (2, 5, *hw)
    assert y.dtype == torch.float32
    assert model.stride == 2 ** depth


def test_padding_is_cropped_back_exactly():
    # an odd-sized input gives the same logits as the stride-padded input cropped back
    torch.manual_seed(0)
    model = UNet(3, base_channels=4, depth=2).eval()
    x = torch.randn(1, 3, 7, 10)
    with torch.no_grad():
        y = model(x)
        y_pad = model(torch.nn.functional.pad(x, (0, 2, 0, 1)))[..., :7, :10]
    torch.testing.assert_close(y, y_pad)


def test_unet_widths_follow_the_paper():
    model = UNet(2, base_channels=64, depth=4)
    widths = [m.out_channels for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert max(widths) == 1024  # 64 → 1024 as in Ronneberger et al. 2015
    # padded convolutions: every 3×3 conv pads by 1
    assert all(m.padding == (1, 1) for m in model.modules()
               if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3))


def test_build_model_config_rebuilds_the_same_architecture():
    model = build_model(num_classes=7, base_channels=8, depth=3)
    again = build_model(**model.config)
    assert again.config == model.config
    assert [p.shape for p in again.parameters()] == [p.shape for p in model.parameters()]


def test_build_model_rejects_bad_configs():
    with pytest.raises(ValueError):
        build_model(arch="deeplab", num_classes=3)
    with pytest.raises(ValueError):
        build_model(num_classes=3, pretrained="x.pt")  # weights need an encoder


def test_timm_encoder_is_optional():
    try:
        import timm  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="timm"):
            build_model(num_classes=3, encoder="resnet18")
        return
    model = build_model(num_classes=3, encoder="resnet18", base_channels=8).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 37, 51)).shape == (1, 3, 37, 51)


def test_load_model_contract(tmp_path):
    torch.manual_seed(0)
    model = build_model(num_classes=4, base_channels=4, depth=2)
    # make BatchNorm statistics non-trivial so that eval mode matters
    model.train()
    model(torch.randn(2, 3, 16, 16))
    meta = make_meta(model, num_classes=4, ignore_index=255, class_map=None,
                     class_names=["a", "b", "c", "d"], mean=MEAN, std=STD, epoch=3,
                     best_miou=0.5, args={"lr": 1e-3})
    save_checkpoint(tmp_path / "best.pt", {"format": 1, "model": model.state_dict(),
                                           "meta": meta, "rng": rng_state()})
    loaded, meta2 = load_model(tmp_path / "best.pt")
    assert not loaded.training
    for key in ("num_classes", "ignore_index", "class_map", "mean", "std", "model", "epoch",
                "best_miou", "args"):
        assert key in meta2
    assert meta2["model"]["arch"] == "unet" and meta2["model"]["encoder"] is None
    assert len(meta2["mean"]) == 3 and len(meta2["std"]) == 3
    model.eval()
    x = torch.randn(1, 3, 21, 13)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))
    # a run folder works too
    loaded2, _ = load_model(tmp_path)
    assert isinstance(loaded2, torch.nn.Module)


def test_load_model_errors_are_one_line(tmp_path):
    with pytest.raises(SegprepError, match="no such checkpoint"):
        load_model(tmp_path / "missing.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(SegprepError, match="cannot read checkpoint"):
        load_model(bad)


def test_rng_state_round_trip():
    state = rng_state()
    a = (random.random(), np.random.rand(), torch.rand(1).item())
    set_rng_state(state)
    b = (random.random(), np.random.rand(), torch.rand(1).item())
    assert a == b


def test_timm_decoder_wiring_with_a_stand_in_encoder(monkeypatch, tmp_path):
    """The timm path's decoder on a stand-in with timm's features_only interface (channels and
    reductions of resnet-like stages); checks shapes, the stride and that a local weight file is
    passed as timm's 'file' source (never a download)."""
    import sys
    import types

    calls = {}

    class FeatureInfo:
        def channels(self):
            return [8, 12, 16]

        def reduction(self):
            return [2, 4, 8]

    class Encoder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.feature_info = FeatureInfo()
            self.stages = torch.nn.ModuleList([
                torch.nn.Conv2d(3, 8, 3, stride=2, padding=1),
                torch.nn.Conv2d(8, 12, 3, stride=2, padding=1),
                torch.nn.Conv2d(12, 16, 3, stride=2, padding=1)])

        def forward(self, x):
            feats = []
            for stage in self.stages:
                x = stage(x)
                feats.append(x)
            return feats

    def create_model(name, **kw):
        calls.update(kw, name=name)
        return Encoder()

    monkeypatch.setitem(sys.modules, "timm", types.SimpleNamespace(create_model=create_model))
    weights = tmp_path / "enc.pth"
    weights.write_bytes(b"x")
    model = build_model(num_classes=4, encoder="fake", pretrained=str(weights),
                        base_channels=4).eval()
    assert calls["features_only"] and calls["pretrained"]
    assert calls["pretrained_cfg_overlay"] == {"file": str(weights)}
    assert model.stride == 8 and model.config["encoder"] == "fake"
    assert "pretrained" not in model.config  # checkpoints never point at the weight file
    with torch.no_grad():
        assert model(torch.randn(2, 3, 21, 30)).shape == (2, 4, 21, 30)
    calls.clear()
    build_model(num_classes=4, encoder="fake")
    assert calls["pretrained"] is False and "pretrained_cfg_overlay" not in calls
