"""``segprep predict`` on video: real footage round trip, frame selection, bad videos.

The real footage: the 101 SegNet CamVid val frames ``0016E5_07959 … 08159`` are consecutive frames
of one drive at 15 frames/s. The test encodes them losslessly (FFV1, RGB) into a Matroska file and
checks that decoding gives back every PNG pixel for pixel, so codec loss on the input side is
bounded at exactly zero; the masks of the video run are then compared with ``predict`` on the still
PNGs. The output video (H.264, lossy) is checked for frame count, rate and size.

A small randomly initialised U-Net (as in test_predict.py) keeps this fast.
"""

from __future__ import annotations

import shutil
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from test_predict import make_checkpoint

from segprep.cli.main import cli
from segprep.io import read_image, read_png
from segprep.predict import Predictor, input_kind, probe, sniff

av = pytest.importorskip("av")

FIRST, LAST = "0016E5_07959", "0016E5_08159"


def run(*args) -> CliRunner.Result:
    # one model thread: on a shared 2-core machine two OpenMP threads can be 20x slower
    args = list(args) + (["--threads", "1"] if args[0] == "predict" else [])
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def encode(path: Path, frames: list[np.ndarray], rate=15, codec="ffv1", pix="bgr0",
           pts: list[int] | None = None, time_base: Fraction | None = None) -> Path:
    """Write RGB frames as a video (FFV1 RGB: lossless)."""
    out = av.open(str(path), "w")
    s = out.add_stream(codec, rate=rate)
    s.height, s.width = frames[0].shape[:2] if frames else (48, 64)
    s.pix_fmt = pix
    if time_base is not None:
        s.codec_context.time_base = time_base
    for i, f in enumerate(frames):
        fr = av.VideoFrame.from_ndarray(f, format="rgb24")
        if pts is not None:
            fr.pts, fr.time_base = pts[i], time_base
        for p in s.encode(fr):
            out.mux(p)
    if not frames:
        out.start_encoding()
    for p in s.encode(None):
        out.mux(p)
    out.close()
    return path


def decode(path: Path) -> tuple[list[np.ndarray], object]:
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(v)]
        return frames, v.average_rate


@pytest.fixture(scope="module")
def val_frames(camvid_root) -> list[Path]:
    files = sorted((camvid_root / "segnet" / "val").glob("*.png"))
    assert len(files) == 101 and files[0].stem == FIRST and files[-1].stem == LAST
    return files


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    # trained at 240x180: predict resizes each 480x360 frame for the model and back
    return make_checkpoint(tmp_path_factory.mktemp("vck") / "best.pt", "camvid11", 11,
                           args={"size": [240, 180]})


@pytest.fixture(scope="module")
def clip(val_frames, tmp_path_factory) -> Path:
    """The 101 real frames at 15 fps, lossless."""
    path = tmp_path_factory.mktemp("vid") / "0016E5.mkv"
    return encode(path, [read_image(f) for f in val_frames])


@pytest.fixture(scope="module")
def short_clip(val_frames, tmp_path_factory) -> Path:
    """The first 6 real frames, downscaled to 160x120, lossless."""
    import cv2

    path = tmp_path_factory.mktemp("short") / "short.mkv"
    return encode(path, [cv2.resize(read_image(f), (160, 120), interpolation=cv2.INTER_AREA)
                         for f in val_frames[:6]])


def no_temp_files(folder: Path) -> bool:
    return not [p for p in folder.rglob(".*") if p.name.endswith(".tmp")]


def test_real_footage_round_trip(ckpt, clip, val_frames, tmp_path):
    # the input side is lossless: decoding gives back every PNG exactly (codec loss bound: 0)
    frames, rate = decode(clip)
    assert len(frames) == 101 and rate == 15
    stills_rgb = [read_image(png) for png in val_frames]
    for f, rgb in zip(frames, stills_rgb):
        assert np.array_equal(f, rgb)
    info = probe(clip)
    assert (info.width, info.height, info.fps, info.frames) == (480, 360, 15, 101)

    out = tmp_path / "pred.mp4"
    masks = tmp_path / "masks"
    res = run("predict", ckpt, clip, out, "--save-masks", masks, "--batch-size", "4", "-q")
    assert res.exit_code == 0, res.output
    assert "codec libx264 (H.264" in res.output and "101 frames" in res.output
    summary = [ln for ln in res.output.splitlines() if "frames/s" in ln]
    assert len(summary) == 1 and all(w in summary[0] for w in ("decode", "model", "encode"))
    assert "videos: 1 done" in res.output
    got, rate = decode(out)
    assert len(got) == 101 and rate == 15 and got[0].shape == (360, 480, 3)
    with av.open(str(out)) as c:
        v = c.streams.video[0]
        assert v.codec_context.name == "h264"
        assert abs(float(v.duration * v.time_base) - 101 / 15) < 1 / 15
    assert no_temp_files(tmp_path)

    names = sorted(p.name for p in masks.glob("*.png"))
    assert names == [f"0016E5_{i:06d}.png" for i in range(101)]
    # the same model on the still PNGs
    stills = tmp_path / "stills"
    res = run("predict", ckpt, val_frames[0].parent, stills, "-q")
    assert res.exit_code == 0, res.output
    agree = total = 0
    for i, png in enumerate(val_frames):
        a, b = read_png(masks / f"0016E5_{i:06d}.png"), read_png(stills / png.name)
        assert a.shape == b.shape == (360, 480)
        agree += int((a == b).sum())
        total += a.size
    assert agree / total >= 0.999, agree / total

    # the overlay is the blend of each frame with the colors of its mask (H.264 loss aside)
    from segprep import class_maps

    pal = class_maps.load("camvid11").train_colors
    want = 0.5 * stills_rgb[50].astype(float) + 0.5 * pal[read_png(masks / "0016E5_000050.png")]
    assert np.abs(got[50].astype(float) - want).mean() < 4

    # skip when OUT exists, --overwrite replaces it
    res = run("predict", ckpt, clip, out, "-q", "--stride", "50")
    assert res.exit_code == 0 and "0 done, 1 skipped" in res.output
    res = run("predict", ckpt, clip, out, "-q", "--stride", "50", "--overwrite")
    assert res.exit_code == 0 and "1 done" in res.output
    assert len(decode(out)[0]) == 3


def test_stride_start_duration_and_formats(ckpt, clip, val_frames, tmp_path):
    out = tmp_path / "sel.mkv"
    masks = tmp_path / "m"
    res = run("predict", ckpt, clip, out, "--stride", "3", "--start", "1", "--duration", "2",
              "--save-masks", masks, "--mask-format", "labelIds", "--format", "side-by-side",
              "-q")
    assert res.exit_code == 0, res.output
    # frames 15 .. 44 (1 s to 3 s at 15 fps), every third: 15, 18, …, 42
    idx = list(range(15, 45, 3))
    assert sorted(p.name for p in masks.glob("*.png")) == [f"0016E5_{i:06d}.png" for i in idx]
    got, rate = decode(out)
    assert len(got) == 10 and rate == 5 and got[0].shape == (360, 960, 3)  # 15 fps / 3
    p = Predictor(ckpt, device="cpu", threads=1)
    from segprep import class_maps

    cmap = class_maps.load("camvid11")
    want = cmap.train_id_to_id[p.predict([read_image(val_frames[18])])[0]]
    assert (read_png(masks / "0016E5_000018.png") == want).mean() >= 0.999
    # color format, a fixed output rate and frame size
    out2 = tmp_path / "c.mp4"
    res = run("predict", ckpt, clip, out2, "--format", "color", "--duration", "0.4",
              "--fps", "30", "--frame-size", "240x180", "-q")
    assert res.exit_code == 0, res.output
    got, rate = decode(out2)
    assert len(got) == 6 and rate == 30 and got[0].shape == (180, 240, 3)
    # --size is the output frame size of a video (the spelling; --frame-size its alias)
    out3 = tmp_path / "s.mp4"
    res = run("predict", ckpt, clip, out3, "--duration", "0.2", "--size", "320x240", "-q")
    assert res.exit_code == 0, res.output
    assert decode(out3)[0][0].shape == (240, 320, 3)
    res = run("predict", ckpt, clip, tmp_path / "x.mp4", "--size", "320x240", "--frame-size",
              "240x180", "-q")
    assert res.exit_code == 2 and "not both" in res.output


def test_detected_by_content_not_suffix(ckpt, short_clip, tmp_path):
    odd = tmp_path / "drive.data"
    shutil.copy(short_clip, odd)
    assert sniff(odd) == "video" and input_kind(odd) == "video"
    res = run("predict", ckpt, odd, tmp_path / "o", "-q")  # OUT a folder: o/drive.mp4
    assert res.exit_code == 0, res.output
    assert len(decode(tmp_path / "o" / "drive.mp4")[0]) == 6
    # a video among still images is named as a video, not as a corrupt image
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    shutil.copy(short_clip, imgs / "frame.png")
    res = run("predict", ckpt, imgs, tmp_path / "p", "-q")
    assert res.exit_code == 1
    errs = [ln for ln in res.output.splitlines() if ln.startswith("segprep: error:")]
    assert len(errs) == 1 and "is a video, not an image" in errs[0]
    assert "corrupt" not in res.output and "Traceback" not in res.output


def vfr_clip(path: Path) -> Path:
    frames = [np.full((48, 64, 3), 20 * i, np.uint8) for i in range(6)]
    return encode(path, frames, pts=[0, 67, 133, 300, 333, 400], time_base=Fraction(1, 1000))


@pytest.mark.parametrize("case", ["corrupt", "truncated-mp4", "truncated-mkv", "zero-frames",
                                  "no-video-stream", "vfr", "unwritable-out"])
def test_bad_videos_are_one_line_and_leave_nothing(case, ckpt, short_clip, tmp_path):
    out = tmp_path / "out" / "pred.mp4"
    if case == "corrupt":
        src = tmp_path / "rand.mp4"
        src.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, np.uint8).tobytes())
        want = "not a readable video"
    elif case == "truncated-mp4":  # cut in the middle: the index (moov) at the end is lost
        full = tmp_path / "full.mp4"
        assert run("predict", ckpt, short_clip, full, "-q").exit_code == 0
        src = tmp_path / "cut.mp4"
        src.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
        want = "not a readable video"
    elif case == "truncated-mkv":  # cut in the middle: the header declares more frames
        src = tmp_path / "cut.mkv"
        src.write_bytes(short_clip.read_bytes()[: short_clip.stat().st_size // 2])
        want = "truncated"
    elif case == "zero-frames":
        src = encode(tmp_path / "zero.avi", [], codec="mpeg4", pix="yuv420p")
        want = "no video frames"
    elif case == "no-video-stream":
        src = encode(tmp_path / "empty.mp4", [], codec="libx264", pix="yuv420p")
        want = "no video stream"
    elif case == "vfr":
        src = vfr_clip(tmp_path / "vfr.mkv")
        want = "variable frame rate"
    else:  # OUT under a regular file
        src = short_clip
        (tmp_path / "out").write_text("a file, not a folder")
        want = "cannot create the output folder"
    res = run("predict", ckpt, src, out, "--save-masks", tmp_path / "masks", "-q")
    assert res.exit_code == 1, res.output
    errs = [ln for ln in res.output.splitlines() if ln.startswith("segprep: error:")]
    assert len(errs) == 1 and want in errs[0], res.output
    assert str(src) in errs[0] or str(tmp_path / "out") in errs[0]
    assert "Traceback" not in res.output and "0 done, 0 skipped, 1 failed" in res.output
    assert not out.exists() or case == "unwritable-out"
    assert no_temp_files(tmp_path)


def test_video_option_errors(ckpt, short_clip, val_frames, tmp_path):
    res = run("predict", ckpt, short_clip, tmp_path / "o.mp4", "--format", "trainIds", "-q")
    assert res.exit_code == 2 and "--format" in res.output and "--save-masks" in res.output
    res = run("predict", ckpt, short_clip, tmp_path / "o.mp4", "--stride", "0", "-q")
    assert res.exit_code == 2 and "--stride" in res.output
    res = run("predict", ckpt, short_clip, tmp_path / "o.mp4", "--start", "9", "-q")
    assert res.exit_code == 1 and "no frame in the selected range" in res.output
    res = run("predict", ckpt, val_frames[0], tmp_path / "s", "--stride", "2", "-q")
    assert res.exit_code == 2 and "--stride" in res.output and "video" in res.output
    res = run("predict", ckpt, short_clip, short_clip, "--overwrite", "-q")
    assert res.exit_code == 2 and "would replace" in res.output
    assert len(decode(short_clip)[0]) == 6


def test_falls_back_to_an_available_encoder_and_says_which(ckpt, short_clip, tmp_path,
                                                           monkeypatch):
    from segprep.predict import video

    monkeypatch.setattr(video, "CODECS", (("no-such-h264", "H.264"), ("mpeg4", "MPEG-4 Part 2")))
    out = tmp_path / "fb.mp4"
    res = run("predict", ckpt, short_clip, out, "-q")
    assert res.exit_code == 0, res.output
    assert "codec mpeg4 (MPEG-4 Part 2, yuv420p); no-such-h264 not available" in res.output
    with av.open(str(out)) as c:
        assert c.streams.video[0].codec_context.name == "mpeg4"
    assert len(decode(out)[0]) == 6
    monkeypatch.setattr(video, "CODECS", (("no-such-h264", "H.264"),))
    res = run("predict", ckpt, short_clip, tmp_path / "none.mp4", "-q")
    assert res.exit_code == 1 and "no usable video encoder" in res.output
    assert not (tmp_path / "none.mp4").exists() and no_temp_files(tmp_path)
