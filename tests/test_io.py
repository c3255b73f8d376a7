"""segprep.io: the PNG writer (any decoder reads the samples back exactly), decoding into a
reused array, and the per-thread scratch arrays."""

from __future__ import annotations

import io
import threading

import imagecodecs
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image

from segprep import io as sio
from segprep.errors import SegprepError


def _pil_samples(data: bytes) -> tuple[str, np.ndarray]:
    with Image.open(io.BytesIO(data)) as im:
        im.load()
        if im.mode.startswith("I;16"):
            return im.mode, np.asarray(im, dtype=np.uint16)
        if im.mode == "I":
            return im.mode, np.asarray(im).astype(np.uint16)
        return im.mode, np.asarray(im)


shapes = st.tuples(st.integers(1, 40), st.integers(1, 40))


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_encode_png_round_trips_through_libpng_and_pillow(data):
    kind = data.draw(st.sampled_from(["L", "I;16", "RGB", "RGBA"]))
    h, w = data.draw(shapes)
    shape, dtype = {"L": ((h, w), np.uint8), "I;16": ((h, w), np.uint16),
                    "RGB": ((h, w, 3), np.uint8), "RGBA": ((h, w, 4), np.uint8)}[kind]
    arr = data.draw(hnp.arrays(dtype, shape))
    png = sio.encode_png(arr)
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    np.testing.assert_array_equal(imagecodecs.png_decode(png), arr)
    mode, back = _pil_samples(png)
    assert mode.split(";")[0] == kind.split(";")[0] or (kind == "I;16" and mode == "I")
    np.testing.assert_array_equal(back, arr)


@settings(max_examples=30, deadline=None)
@given(st.data())
def test_encode_png_palette_mode(data):
    h, w = data.draw(shapes)
    k = data.draw(st.integers(1, 256))
    arr = data.draw(hnp.arrays(np.uint8, (h, w), elements=st.integers(0, k - 1)))
    pal = data.draw(hnp.arrays(np.uint8, (k, 3)))
    png = sio.encode_png(arr, pal)
    with Image.open(io.BytesIO(png)) as im:
        assert im.mode == "P"
        np.testing.assert_array_equal(np.asarray(im), arr)
        np.testing.assert_array_equal(np.array(im.getpalette()[: 3 * k]).reshape(k, 3), pal)
    idx, got_pal = sio.decode_label("x.png", png)
    np.testing.assert_array_equal(idx, arr)
    np.testing.assert_array_equal(got_pal[:k], pal)


def test_encode_png_large_label_map_is_small(tmp_path):
    # a 2048x1024 label map of a few large regions: the writer must still compress well
    arr = np.zeros((1024, 2048), np.uint8)
    arr[400:, :] = 7
    arr[300:700, 500:900] = 26
    png = sio.encode_png(arr)
    assert len(png) < 20_000
    sio.write_png(tmp_path / "a.png", arr)
    np.testing.assert_array_equal(sio.read_png(tmp_path / "a.png"), arr)


@pytest.mark.parametrize("bad", [np.zeros((4, 4), np.int64), np.zeros((4, 4, 2), np.uint8),
                                 np.zeros((4, 4, 3), np.uint16), np.zeros((0, 4), np.uint8)])
def test_encode_png_rejects_what_png_cannot_hold(bad):
    with pytest.raises(ValueError):
        sio.encode_png(bad)
    with pytest.raises(ValueError):
        sio.encode_png(np.zeros((4, 4, 3), np.uint8), palette=np.zeros((3, 3), np.uint8))


def test_read_png_decodes_into_out_when_it_fits(tmp_path):
    arr = np.arange(12 * 10, dtype=np.uint8).reshape(12, 10)
    sio.write_png(tmp_path / "a.png", arr)
    out = np.empty((12, 10), np.uint8)
    got = sio.read_png(tmp_path / "a.png", out)
    assert np.shares_memory(got, out)
    np.testing.assert_array_equal(got, arr)
    # a mismatching buffer is ignored: a new array comes back, right
    for wrong in (np.empty((10, 12), np.uint8), np.empty((12, 10), np.uint16)):
        got = sio.read_png(tmp_path / "a.png", wrong)
        assert not np.shares_memory(got, wrong)
        np.testing.assert_array_equal(got, arr)
    # a truncated file still fails with the file named, buffer or not
    (tmp_path / "t.png").write_bytes((tmp_path / "a.png").read_bytes()[:60])
    with pytest.raises(SegprepError, match="t.png"):
        sio.read_png(tmp_path / "t.png", out)


def test_scratch_is_reused_per_thread_and_key():
    a = sio.scratch("test_a", (4, 5), np.uint8)
    assert sio.scratch("test_a", (4, 5), np.uint8) is a
    assert sio.scratch("test_b", (4, 5), np.uint8) is not a
    assert sio.scratch("test_a", (5, 4), np.uint8).shape == (5, 4)  # reshaped → new array
    seen = []
    t = threading.Thread(target=lambda: seen.append(sio.scratch("test_a", (5, 4), np.uint8)))
    t.start()
    t.join()
    assert seen[0] is not sio.scratch("test_a", (5, 4), np.uint8)


def _square_or_fail(x: int) -> int:
    if x % 7 == 3:
        raise SegprepError(f"item{x}", "bad item")
    if x % 11 == 5:
        raise KeyError(x)
    return x * x


@pytest.mark.parametrize("jobs, prefer", [(1, "threads"), (2, "threads"), (3, "threads"),
                                          (2, "processes")])
def test_run_batch_yields_every_item_once_with_its_value_or_error(jobs, prefer):
    items = list(range(40))
    outcomes = list(sio.run_batch(_square_or_fail, items, jobs=jobs, quiet=True,
                                     prefer=prefer))
    assert sorted(o.item for o in outcomes) == items
    for o in outcomes:
        if o.item % 7 == 3:
            assert not o.ok and o.error == f"item{o.item}: bad item"
        elif o.item % 11 == 5:
            assert not o.ok and o.error.startswith(f"{o.item}: KeyError")
        else:
            assert o.ok and o.value == o.item ** 2


def _blas_threads(_item=None) -> list[int]:
    from threadpoolctl import threadpool_info

    return [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]


def test_run_batch_threads_can_stop_early_and_restore_opencv_and_blas_threads():
    import cv2

    before, blas_before = cv2.getNumThreads(), _blas_threads()
    gen = sio.run_batch(_square_or_fail, list(range(1000)), jobs=2, quiet=True,
                           prefer="threads")
    first = [next(gen) for _ in range(5)]
    assert cv2.getNumThreads() == 1  # the workers run with OpenCV single-threaded
    assert set(_blas_threads()) == {1}  # and numpy's BLAS
    gen.close()
    assert len(first) == 5 and cv2.getNumThreads() == before and _blas_threads() == blas_before


@pytest.mark.parametrize("prefer", ["threads", "processes"])
def test_run_batch_workers_see_blas_on_one_thread(prefer):
    """What each worker itself sees (segprep.io.batch.single_threaded_libraries)."""
    outcomes = list(sio.run_batch(_blas_threads, list(range(4)), jobs=2, quiet=True,
                                     prefer=prefer))
    assert all(o.ok and o.value and set(o.value) == {1} for o in outcomes), outcomes


def test_blas_on_one_thread_in_the_main_thread_only():
    import threading

    before = _blas_threads()
    with sio.batch.blas_on_one_thread():
        assert set(_blas_threads()) == {1}
    assert _blas_threads() == before
    seen: list[list[int]] = []

    def worker() -> None:  # a no-op there: run_batch's workers are already single-threaded
        with sio.batch.blas_on_one_thread():
            seen.append(_blas_threads())

    t = threading.Thread(target=worker)
    t.start()
    t.join()
    assert seen == [before] and _blas_threads() == before


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".JPEG"])
def test_write_image_picks_the_format_from_the_suffix(tmp_path, suffix):
    rng = np.random.default_rng(0)
    rgb = np.repeat(np.repeat(rng.integers(0, 256, (3, 4, 3), dtype=np.uint8), 16, 0), 16, 1)
    path = tmp_path / f"overlay{suffix}"
    sio.write_image(path, rgb)
    with Image.open(path) as im:
        assert im.format == ("PNG" if suffix == ".png" else "JPEG")
        got = np.asarray(im.convert("RGB"))
    assert got.shape == rgb.shape
    if suffix == ".png":
        np.testing.assert_array_equal(got, rgb)
    else:  # lossy, but close on flat 16x16 blocks (whole 4:2:0 MCUs) at quality 95
        assert np.abs(got.astype(int) - rgb).mean() < 4
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temp file left
