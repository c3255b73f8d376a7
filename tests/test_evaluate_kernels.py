"""The evaluator's kernels: the label-PNG decoder equals libpng (imagecodecs) sample for sample, the
joint histogram equals ``np.bincount``, and the code maps enumerate exactly the (value, instance)
pairs."""

from __future__ import annotations

import io

import imagecodecs
import numpy as np
import pytest
from PIL import Image

from segprep.errors import SegprepError
from segprep.evaluation.gt_cache import build_codes
from segprep.evaluation.kernels import decode_label_png, joint_histogram, pair_codes
from segprep.io import encode_png


def pil_png(a: np.ndarray, **kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="PNG", **kw)
    return buf.getvalue()


def filter_types(data: bytes, h: int, rowbytes: int) -> set[int]:
    import struct
    import zlib

    pos, z = 8, b""
    while pos < len(data):
        n, t = struct.unpack(">I4s", data[pos:pos + 8])
        if t == b"IDAT":
            z += data[pos + 8:pos + 8 + n]
        pos += 12 + n
    raw = np.frombuffer(zlib.decompress(z), np.uint8).reshape(h, rowbytes + 1)
    return set(np.unique(raw[:, 0]).tolist())


def test_real_ground_truth_pngs_equal_libpng(cityscapes_root, bdd_root):
    files = sorted((cityscapes_root / "gtFine" / "val").glob("*/*_gtFine_*Ids.png"))[:24]
    files += sorted((bdd_root / "seg" / "labels" / "val").glob("*.png"))[:6]
    assert len(files) == 30
    for f in files:
        data = f.read_bytes()
        got, pal = decode_label_png(data, str(f))
        want = imagecodecs.png_decode(data)
        assert got.dtype == want.dtype and pal is None, f
        np.testing.assert_array_equal(got, want, err_msg=str(f))


def test_palette_pngs_give_indices(bdd_root):
    for f in sorted((bdd_root / "10k" / "colormaps" / "val").glob("*.png"))[:4]:
        got, pal = decode_label_png(f.read_bytes(), str(f))
        im = Image.open(f)
        np.testing.assert_array_equal(got, np.asarray(im))
        assert pal is not None and pal.shape[1] == 3


@pytest.mark.parametrize("seed", range(6))
def test_every_filter_type_and_bit_depth(seed):
    rng = np.random.default_rng(seed)
    h, w = int(rng.integers(1, 90)), int(rng.integers(1, 130))
    # blocks (long runs, as label maps) plus noise, so that libpng's adaptive filtering picks
    # every filter type somewhere
    a = np.repeat(np.repeat(rng.integers(0, 34, (h // 8 + 1, w // 8 + 1)), 8, 0), 8, 1)[:h, :w]
    a = a.astype(np.uint8)
    m = rng.random(a.shape) < 0.2
    a[m] = rng.integers(0, 256, int(m.sum()))
    types: set[int] = set()
    for data in (pil_png(a), encode_png(a), imagecodecs.png_encode(a, level=9)):
        np.testing.assert_array_equal(decode_label_png(data)[0], a)
        types |= filter_types(data, h, w)
    a16 = (a.astype(np.uint16) * 257 + rng.integers(0, 3, a.shape).astype(np.uint16))
    for data in (imagecodecs.png_encode(a16), encode_png(a16)):
        got = decode_label_png(data)[0]
        assert got.dtype == np.uint16
        np.testing.assert_array_equal(got, a16)
    if seed == 0:
        assert types >= {1, 2}, types  # Sub and Up at least, with PIL's adaptive filters


def test_all_five_filters_explicitly():
    rng = np.random.default_rng(9)
    a = rng.integers(0, 256, (40, 57), dtype=np.uint8)
    for f in (imagecodecs.PNG.FILTER.NONE, imagecodecs.PNG.FILTER.SUB, imagecodecs.PNG.FILTER.UP,
              imagecodecs.PNG.FILTER.AVG, imagecodecs.PNG.FILTER.PAETH):
        data = bytes(imagecodecs.png_encode(a, filter=f))
        np.testing.assert_array_equal(decode_label_png(data)[0], a)


def test_other_kinds_fall_back_or_fail_cleanly():
    rgb = np.zeros((4, 5, 3), np.uint8)
    assert decode_label_png(pil_png(rgb)) is None  # RGB: the caller falls back
    assert decode_label_png(pil_png(np.zeros((4, 5), bool))) is None  # 1-bit
    good = pil_png(np.arange(600, dtype=np.uint8).reshape(20, 30) % 7)
    with pytest.raises(SegprepError, match="truncated"):
        decode_label_png(good[:len(good) // 2], "x.png")
    with pytest.raises(SegprepError, match="not a PNG"):
        decode_label_png(b"GIF89a....", "x.png")
    # a damaged zlib stream
    bad = bytearray(good)
    i = bad.index(b"IDAT") + 10
    bad[i:i + 4] = b"\xff\xff\xff\xff"
    with pytest.raises(SegprepError, match="corrupt"):
        decode_label_png(bytes(bad), "x.png")


def test_bad_filter_type_is_reported():
    import struct
    import zlib

    h, w = 3, 4
    raw = bytes([0] + [1] * w + [7] + [2] * w + [0] + [3] * w)  # filter type 7 in row 1

    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))
    data = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
    with pytest.raises(SegprepError, match="corrupt"):
        decode_label_png(data, "x.png")


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_joint_histogram_equals_bincount(dtype):
    rng = np.random.default_rng(0)
    m = 40 if dtype == np.uint8 else 300
    codes = np.repeat(rng.integers(0, m, (50, 7)), 9, axis=1).astype(dtype)  # runs
    pred = rng.integers(0, 256, codes.shape).astype(np.uint8)
    pred[:, :20] = 3
    h = joint_histogram(codes, pred, m)
    want = np.bincount(codes.ravel().astype(np.int64) * 256 + pred.ravel(),
                       minlength=m * 256).reshape(m, 256)
    np.testing.assert_array_equal(h, want)
    with pytest.raises(ValueError, match="num_codes"):
        joint_histogram(codes, pred, int(codes.max()))  # a code out of range: no memory write
    with pytest.raises(ValueError, match="shape"):
        joint_histogram(codes, pred[:, :-1], m)


def test_pair_codes_enumerate_pairs(cityscapes_root):
    g = sorted((cityscapes_root / "gtFine" / "val").glob("*/*_gtFine_labelIds.png"))[0]
    lab = imagecodecs.png_decode(g.read_bytes())
    with open(str(g).replace("labelIds", "instanceIds"), "rb") as fh:
        inst = imagecodecs.png_decode(fh.read())
    c = build_codes(lab, inst)
    np.testing.assert_array_equal(c.values[c.codes], lab)
    np.testing.assert_array_equal(c.instances[c.codes], np.where(inst > 1000, inst, 0))
    pairs = {(int(a), int(b)) for a, b in zip(c.values, c.instances)}
    assert len(pairs) == c.num_codes  # one code per distinct pair
    want = set(zip(lab.ravel().tolist(), np.where(inst > 1000, inst, 0).ravel().tolist()))
    assert pairs == want
    plain = build_codes(lab)
    np.testing.assert_array_equal(plain.values[plain.codes], lab)
    assert plain.num_codes == len(np.unique(lab))
    # more than 256 pairs: uint16 codes
    big = np.arange(70000, dtype=np.int64).reshape(280, 250) % 1000
    codes, vals, _ = pair_codes(big.astype(np.uint16))
    assert codes.dtype == np.uint16 and vals.size == 1000
    np.testing.assert_array_equal(vals[codes], big)
