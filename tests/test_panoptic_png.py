"""The panoptic evaluator's fused PNG pass (``segprep.evaluation.panoptic_png``): its pair table
equals the one counted on the images as Pillow decodes them, for real Cityscapes id maps (written
by Pillow, adaptive filters) and for PNGs written here with every row filter type (None, Sub, Up,
Average, Paeth; chosen at random per row), RGB and RGBA, odd sizes, several IDAT chunks. Kinds it
does not read (interlaced, 16-bit, gray, palette) go the decoding path: the interlaced one gives
the same scores, the others are refused as before. Corrupt image data and unknown filter types
name the file.
"""

from __future__ import annotations

import io
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from segprep.errors import SegprepError
from segprep.evaluation import panoptic as pe
from segprep.evaluation.panoptic_png import pair_table_png, rgb_png


# ----------------------------------------------------------------------------- helpers
def ids_of(rgb: np.ndarray) -> np.ndarray:
    rgb = rgb.astype(np.int64)
    return rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]


def to_rgb(ids: np.ndarray) -> np.ndarray:
    return np.stack([ids % 256, ids // 256 % 256, ids // 65536], axis=-1).astype(np.uint8)


def reference_table(gt: np.ndarray, pred: np.ndarray, gt_keys: np.ndarray,
                    pred_keys: np.ndarray) -> tuple[np.ndarray, set[int]]:
    """The pair table counted with NumPy on decoded images (last row/column: other ids), and
    the set of predicted ids not in ``pred_keys``."""
    g, p = ids_of(gt).ravel(), ids_of(pred).ravel()
    gi = np.searchsorted(gt_keys, g)
    gi = np.where((gi < gt_keys.size) & (gt_keys[np.minimum(gi, gt_keys.size - 1)] == g), gi,
                  gt_keys.size)
    pj = np.searchsorted(pred_keys, p)
    known = (pj < pred_keys.size) & (pred_keys[np.minimum(pj, pred_keys.size - 1)] == p)
    pj = np.where(known, pj, pred_keys.size)
    table = np.zeros((gt_keys.size + 1, pred_keys.size + 1), np.int64)
    np.add.at(table, (gi, pj), 1)
    return table, set(p[~known].tolist())


def png_bytes(arr: np.ndarray, filters, idat_parts: int = 1, bad_filter_row: int = -1) -> bytes:
    """An 8-bit RGB/RGBA PNG of ``arr`` whose row ``y`` uses filter type ``filters[y]``
    (PNG specification 1.2, section 9), written here, independently of segprep's reader."""
    h, w, c = arr.shape
    raw = bytearray()
    prev = np.zeros(w * c, np.int32)
    for y in range(h):
        cur = arr[y].reshape(-1).astype(np.int32)
        left = np.concatenate([np.zeros(c, np.int32), cur[:-c]])
        upleft = np.concatenate([np.zeros(c, np.int32), prev[:-c]])
        f = int(filters[y])
        if f == 0:
            out = cur
        elif f == 1:
            out = cur - left
        elif f == 2:
            out = cur - prev
        elif f == 3:
            out = cur - (left + prev) // 2
        else:
            p = left + prev - upleft
            pa, pb, pc = np.abs(p - left), np.abs(p - prev), np.abs(p - upleft)
            out = cur - np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, prev, upleft))
        raw.append(7 if y == bad_filter_row else f)
        raw += (out & 255).astype(np.uint8).tobytes()
        prev = cur

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(
            ">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    stream = zlib.compress(bytes(raw), 6)
    cuts = np.linspace(0, len(stream), idat_parts + 1).astype(int)
    return (b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, {3: 2, 4: 6}[c], 0, 0, 0))
            + b"".join(chunk(b"IDAT", stream[a:b]) for a, b in zip(cuts[:-1], cuts[1:]))
            + chunk(b"IEND", b""))


def adam7_png(arr: np.ndarray) -> bytes:
    """An interlaced (Adam7) 8-bit RGB PNG of ``arr``, every pass row with filter type 0."""
    h, w, _c = arr.shape
    raw = bytearray()
    for x0, y0, dx, dy in ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4),
                           (1, 0, 2, 2), (0, 1, 1, 2)):
        sub = arr[y0::dy, x0::dx]
        if sub.size:
            for row in sub:
                raw += b"\0" + row.tobytes()
    plain = png_bytes(arr, [0] * h)
    ihdr_body = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 1)
    body = zlib.compress(bytes(raw))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(
            ">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    return plain[:8] + chunk(b"IHDR", ihdr_body) + chunk(b"IDAT", body) + chunk(b"IEND", b"")


def label_like(rng: np.random.Generator, h: int, w: int, n: int = 12) -> np.ndarray:
    """An id map with label-map structure: rectangles of a few ids over a background, a noisy
    patch (every pixel a change) and 24-bit ids (blue channel used)."""
    ids = np.full((h, w), int(rng.integers(1, 1 << 24)), np.int64)
    palette = rng.integers(0, 1 << 24, n)
    palette[0] = 0
    for _ in range(3 * n):
        y0, x0 = rng.integers(0, h), rng.integers(0, w)
        ids[y0: y0 + rng.integers(1, h // 2 + 2), x0: x0 + rng.integers(1, w // 2 + 2)] = \
            palette[rng.integers(0, n)]
    ph, pw = max(1, h // 6), max(1, w // 6)
    y0, x0 = rng.integers(0, h - ph + 1), rng.integers(0, w - pw + 1)
    ids[y0: y0 + ph, x0: x0 + pw] = palette[rng.integers(0, n, (ph, pw))]
    return ids


def check_pair(gt_png: bytes, pred_png: bytes, gt_keys: np.ndarray, pred_keys: np.ndarray):
    gt = np.asarray(Image.open(io.BytesIO(gt_png)))
    pred = np.asarray(Image.open(io.BytesIO(pred_png)))
    gi, pi = rgb_png(gt_png, "gt.png"), rgb_png(pred_png, "pred.png")
    assert gi is not None and pi is not None
    table, unknown = pair_table_png(gi, pi, gt_keys, pred_keys, "gt.png", "pred.png")
    ref, others = reference_table(gt, pred, gt_keys, pred_keys)
    assert np.array_equal(table, ref)
    assert (unknown is None) == (not others) and (unknown is None or unknown in others)
    old, old_unknown = pe.pair_table(gt, pred, gt_keys, pred_keys)  # the decoding path
    assert np.array_equal(old, table) and (old_unknown is None) == (unknown is None)


# ----------------------------------------------------------------------------- tests
@pytest.mark.parametrize("shape", [(37, 53), (64, 200), (1, 1), (5, 1), (3, 67), (40, 129)])
def test_every_filter_type_rgb_and_rgba(shape):
    """Random filter types per row (all five on every image) on label-like maps, RGB and RGBA
    in both roles; keys with and without the ids present."""
    h, w = shape
    rng = np.random.default_rng(h * 1000 + w)
    for trial in range(6):
        gids = label_like(rng, h, w)
        pids = np.roll(gids, (int(rng.integers(0, 4)), int(rng.integers(-5, 5))), axis=(0, 1))
        if trial % 2:
            pids[rng.random((h, w)) < 0.01] = 0
        imgs = []
        for ids, alpha in ((gids, trial in (1, 3)), (pids, trial in (2, 3, 5))):
            rgb = to_rgb(ids)
            if alpha:  # alpha ignored, even where it varies
                rgb = np.concatenate([rgb, rng.integers(0, 256, (h, w, 1), dtype=np.uint8)],
                                     axis=-1)
            filters = rng.integers(0, 5, h) if h >= 5 else np.arange(h) % 5
            imgs.append(png_bytes(rgb, filters, idat_parts=1 + trial % 3))
        gt_keys = np.unique(np.append(gids, 0))
        pred_keys = np.unique(np.append(pids, 0))
        if trial == 4:  # a predicted id missing from the keys: reported as unknown
            pred_keys = pred_keys[pred_keys != pids.flat[0]] if pred_keys.size > 1 else pred_keys
        if trial == 5:  # ground-truth ids outside the keys go to the last row
            gt_keys = gt_keys[: max(1, gt_keys.size // 2)]
        check_pair(imgs[0], imgs[1], gt_keys, pred_keys)


def test_constant_rows_each_filter():
    """Long flat runs under each filter type alone (the fill and skip paths), and rows whose
    above row changes where the row does not (Paeth's b != c)."""
    rng = np.random.default_rng(7)
    h, w = 24, 300
    ids = np.zeros((h, w), np.int64)
    ids[:, 100:] = 0x123456
    ids[::3, 150:170] = 0xABCDEF  # changes every third row
    ids[10:, 250:] = 7
    for f in range(5):
        for c in (3, 4):
            rgb = to_rgb(ids)
            if c == 4:
                rgb = np.concatenate([rgb, np.full((h, w, 1), 255, np.uint8)], axis=-1)
            shifted = np.roll(rgb, 1, axis=1)
            keys = np.unique(np.append(ids, 0))
            check_pair(png_bytes(rgb, [f] * h), png_bytes(shifted, [(f + 1) % 5] * h),
                       keys, keys)
    noise = rng.integers(0, 1 << 24, (h, w))
    keys = np.unique(np.append(noise, 0))
    check_pair(png_bytes(to_rgb(noise), rng.integers(0, 5, h)),
               png_bytes(to_rgb(noise[::-1]), rng.integers(0, 5, h)), keys, keys)


def test_real_frames_equal_decoded(cityscapes_root, tmp_path):
    """Real Cityscapes id maps (instanceIds values as RGB panoptic ids, written by Pillow with
    its adaptive filters) against shifted and re-labelled versions of themselves."""
    files = sorted((cityscapes_root / "gtFine" / "val" / "lindau").glob("*_instanceIds.png"))[:4]
    assert files
    rng = np.random.default_rng(0)
    for n, f in enumerate(files):
        ids = np.asarray(Image.open(f)).astype(np.int64)
        pids = np.roll(ids, (3 + n, -5 - n), axis=(0, 1))
        present = np.unique(pids)
        relabel = {int(v): int(rng.integers(1, 1 << 24)) for v in present if rng.random() < 0.3}
        for old, new in relabel.items():
            pids[pids == old] = new
        buf_g, buf_p = io.BytesIO(), io.BytesIO()
        Image.fromarray(to_rgb(ids)).save(buf_g, format="PNG")
        pred_rgb = to_rgb(pids)
        if n % 2:
            pred_rgb = np.concatenate([pred_rgb, np.full(ids.shape + (1,), 255, np.uint8)], -1)
        Image.fromarray(pred_rgb).save(buf_p, format="PNG")
        check_pair(buf_g.getvalue(), buf_p.getvalue(), np.unique(np.append(ids, 0)),
                   np.unique(np.append(pids, 0)))


def _job(tmp_path: Path, gt: bytes, pred: bytes, gt_ids, pred_ids) -> pe.FrameJob:
    (tmp_path / "gt.png").write_bytes(gt)
    (tmp_path / "pred.png").write_bytes(pred)
    return pe.FrameJob("img", str(tmp_path / "gt.png"), str(tmp_path / "pred.png"),
                       tuple(gt_ids), tuple(20 + i % 5 for i in range(len(gt_ids))),
                       tuple(100 for _ in gt_ids), tuple(False for _ in gt_ids),
                       tuple(pred_ids), tuple(20 + i % 5 for i in range(len(pred_ids))))


def test_other_kinds_decoded_or_refused(tmp_path):
    """Interlaced predictions are decoded (same scores as the same image non-interlaced);
    16-bit, gray and palette ones are refused as before; a size mismatch is named."""
    rng = np.random.default_rng(3)
    ids = label_like(rng, 30, 41, n=6)
    ids[ids == 0] = 5
    segs = [int(v) for v in np.unique(ids)]
    rgb = to_rgb(ids)
    gt = png_bytes(rgb, rng.integers(0, 5, 30))
    job = _job(tmp_path, gt, gt, segs, segs)
    assert rgb_png(gt, "gt.png") is not None
    expected = pe.evaluate_frame(job)
    assert sum(s[0] for s in expected.values()) == len(segs)  # every segment matches itself
    inter = adam7_png(rgb)
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(inter))), rgb)
    assert rgb_png(inter, "i.png") is None
    assert pe.evaluate_frame(_job(tmp_path, gt, inter, segs, segs)) == expected
    for arr, what in ((ids.astype(np.uint16), "single-channel"),
                      (rgb[..., 0], "single-channel")):
        buf = io.BytesIO()
        Image.fromarray(arr).save(buf, format="PNG")
        assert rgb_png(buf.getvalue(), "p.png") is None
        with pytest.raises(SegprepError, match=what):
            pe.evaluate_frame(_job(tmp_path, gt, buf.getvalue(), segs, segs))
    buf = io.BytesIO()
    Image.fromarray(rgb).quantize(8).save(buf, format="PNG")
    with pytest.raises(SegprepError, match="a palette PNG"):
        pe.evaluate_frame(_job(tmp_path, gt, buf.getvalue(), segs, segs))
    small = png_bytes(rgb[:-1], rng.integers(0, 5, 29))
    with pytest.raises(SegprepError, match="size 41x29 differs from the ground truth's 41x30"):
        pe.evaluate_frame(_job(tmp_path, gt, small, segs, segs))


def test_corrupt_data_names_the_file(tmp_path):
    rng = np.random.default_rng(5)
    ids = label_like(rng, 20, 33, n=5)
    rgb = to_rgb(ids)
    segs = [int(v) for v in np.unique(ids)]
    good = png_bytes(rgb, rng.integers(0, 5, 20))
    bad_row = png_bytes(rgb, rng.integers(0, 5, 20), bad_filter_row=11)
    for gt, pred, where in ((good, bad_row, "pred.png"), (bad_row, good, "gt.png")):
        with pytest.raises(SegprepError, match=rf"{where}: corrupt PNG \(unknown filter type "
                                               r"in row 11\)"):
            pe.evaluate_frame(_job(tmp_path, gt, pred, segs, segs))
    # image data that inflates to too few bytes, and data that does not inflate
    h = 20
    short = png_bytes(rgb, [0] * h)
    info = rgb_png(short, "x")
    assert info is not None
    raw = zlib.decompress(bytes(info.stream))
    body = zlib.compress(raw[:-5])

    def with_idat(body: bytes) -> bytes:
        ihdr = short[8:8 + 25]
        chunk = struct.pack(">I", len(body)) + b"IDAT" + body + struct.pack(
            ">I", zlib.crc32(b"IDAT" + body) & 0xFFFFFFFF)
        return b"\x89PNG\r\n\x1a\n" + ihdr + chunk + short[-12:]

    with pytest.raises(SegprepError, match=r"pred.png: truncated PNG image data"):
        pe.evaluate_frame(_job(tmp_path, good, with_idat(body), segs, segs))
    with pytest.raises(SegprepError, match=r"pred.png: corrupt or truncated PNG image data"):
        pe.evaluate_frame(_job(tmp_path, good, with_idat(b"\x78\x9c\xff\xff" + body[4:]),
                               segs, segs))


def test_lean_process_skips_scipy(tmp_path):
    """A command process (``lean_process``) compiles or loads kernels without importing SciPy's
    BLAS, and SciPy still imports normally afterwards; a library process is unchanged."""
    code = (
        "import sys, numpy as np\n"
        "from segprep import jit\n"
        "{lean}\n"
        "def f(a):\n"
        "    return a.sum()\n"
        "k = jit.kernel(f)\n"
        "assert k(np.arange(4)) == 6\n"
        "import numba.np.arraymath as am\n"
        "print(am._HAVE_BLAS, 'scipy.linalg' in sys.modules)\n"
        "import scipy.linalg.cython_blas\n"
        "print('ok')\n")
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"))
    lean = subprocess.run([sys.executable, "-c", code.format(lean="jit.lean_process()")],
                          capture_output=True, text=True, env=env, cwd=tmp_path)
    assert lean.returncode == 0, lean.stderr
    assert lean.stdout.split() == ["False", "False", "ok"]
    plain = subprocess.run([sys.executable, "-c", code.format(lean="")], capture_output=True,
                           text=True, env=env, cwd=tmp_path)
    assert plain.returncode == 0, plain.stderr
    assert plain.stdout.split()[0] == "True" and plain.stdout.split()[-1] == "ok"
