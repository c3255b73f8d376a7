"""``segprep export onnx``: dynamic N/H/W, parity with PyTorch in onnxruntime, metadata."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from test_predict import make_checkpoint

from segprep.cli.main import cli
from segprep.export import export_onnx

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")


def run(*args) -> CliRunner.Result:
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return make_checkpoint(tmp_path_factory.mktemp("ck") / "best.pt")


def test_cli_exports_and_prints_parity(ckpt, tmp_path):
    out = tmp_path / "m" / "model.onnx"
    res = run("export", "onnx", ckpt, "-o", out)
    assert res.exit_code == 0, res.output
    lines = [ln for ln in res.output.splitlines() if ln.startswith("onnxruntime vs PyTorch")]
    assert len(lines) == 3 and all("argmax agreement" in ln for ln in lines)
    assert "max |logit diff|" in lines[0]
    assert not list(out.parent.glob(".*.tmp"))


def test_any_size_and_batch_match_pytorch(ckpt, tmp_path):
    from segprep.train.checkpoint import load_model

    out = tmp_path / "model.onnx"
    rep = export_onnx(ckpt, out, check=True)
    assert rep.passed() and len(rep.checks) == 3
    assert all(c.argmax_agreement == 1.0 and c.max_abs_diff < 1e-3 for c in rep.checks)
    model, meta = load_model(ckpt)
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert sess.get_inputs()[0].shape[0] == "N" and sess.get_inputs()[0].shape[2:] == ["H", "W"]
    rng = np.random.default_rng(3)
    for shape in ((1, 3, 1, 1), (1, 3, 13, 7), (3, 3, 64, 40), (2, 3, 101, 203)):
        x = rng.standard_normal(shape).astype(np.float32)
        got = sess.run(None, {"image": x})[0]
        with torch.no_grad():
            want = model(torch.from_numpy(x)).numpy()
        assert got.shape == (shape[0], 19, shape[2], shape[3])
        np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-4)


def test_metadata(ckpt, tmp_path):
    out = tmp_path / "model.onnx"
    export_onnx(ckpt, out, check=False)
    m = onnx.load(str(out))
    props = {p.key: p.value for p in m.metadata_props}
    assert props["segprep.num_classes"] == "19"
    assert json.loads(props["segprep.class_names"])[0] == "road"
    assert len(json.loads(props["segprep.mean"])) == 3
    assert props["segprep.class_map"] == "cityscapes"
    onnx.checker.check_model(m)
    # everything predict needs travels in the file: the whole class map and the training size
    from segprep import class_maps
    from segprep.class_maps import ClassMap

    cm = ClassMap.from_dict(json.loads(props["segprep.class_map_json"]))
    want = class_maps.load("cityscapes")
    assert cm.names == want.names and np.array_equal(cm.train_id_to_id, want.train_id_to_id)
    assert json.loads(props["segprep.train_size"]) is None  # trained at native size
    assert json.loads(props["segprep.model"])["depth"] == 2
    sized = make_checkpoint(tmp_path / "sized.pt", "camvid11", 11, args={"size": [240, 180]})
    export_onnx(sized, tmp_path / "sized.onnx", check=False)
    props = {p.key: p.value for p in onnx.load(str(tmp_path / "sized.onnx")).metadata_props}
    assert json.loads(props["segprep.train_size"]) == [240, 180]


def test_without_the_onnx_package_one_line_naming_the_extra(ckpt, tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "onnx", None)
    res = run("export", "onnx", ckpt, "-o", tmp_path / "m.onnx", "--no-check")
    assert res.exit_code == 2 and "pip install -e '.[onnx]'" in res.output
    assert len(res.output.strip().splitlines()) == 1
    assert not (tmp_path / "m.onnx").exists()


def test_bad_checkpoint_is_one_line(tmp_path):
    bad = tmp_path / "x.pt"
    bad.write_bytes(b"garbage")
    res = run("export", "onnx", bad, "-o", tmp_path / "m.onnx")
    assert res.exit_code == 2 and "cannot read checkpoint" in res.output
    assert not (tmp_path / "m.onnx").exists()
