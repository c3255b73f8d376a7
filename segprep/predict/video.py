"""Predict a video: decode (PyAV) → model → encode (PyAV), one pipeline with the stills.

``predict_video(model, "drive.mp4", "pred.mp4")`` writes a video of the same frame size and frame
rate as the input: ``overlay`` (camera blended with the class colors, ``alpha``), ``side-by-side``
(camera | colors, twice as wide) or ``color`` (the colors alone). ``frame_size`` resizes the
decoded frames (everything, masks included, is at that size); ``fps`` re-times the output (frames
are written one to one; ``stride`` drops frames, and then the output rate is the input's divided by
``stride`` unless ``fps`` is given, so the video keeps its real duration). ``save_masks`` also
writes each frame's mask as ``<video stem>_<frame index:06d>.png`` (index of the frame in the
input, from 0; trainIds or labelIds), so a video can be evaluated or relabelled.

Codec: H.264 (``libx264``, CRF 18; yuv420p, or yuv444p when a side is odd) when the installed
FFmpeg has it, else MPEG-4 Part 2, else Motion JPEG (VP9, then VP8, for ``.webm``); the codec used
is reported. The output is written to a hidden temporary file beside OUT, read back and checked
(frame count, frame size, frame rate, duration) and only then renamed to OUT: a failed run leaves
no video behind.

Refused with one error line (:class:`SegprepError`): a file PyAV cannot open, no video stream, a
decode error (corrupt or truncated data), fewer frames than the header declares (truncated), zero
frames (in the file or in the ``start``/``duration`` range), timestamps that are not one frame
interval apart (a variable frame rate or dropped frames: re-encode at a constant rate first).
"""

from __future__ import annotations

import os
import secrets
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from segprep.errors import SegprepError
from segprep.io import BatchSummary, Outcome, refuse_overwriting_inputs, write_png
from segprep.predict.pipeline import StageTimes, run_pipeline
from segprep.predict.predictor import Predictor
from segprep.predict.render import MASK_FORMATS, VIDEO_FORMATS, render

PathLike = str | os.PathLike

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm")
CONTAINERS = {".mp4": "mp4", ".mov": "mov", ".mkv": "matroska", ".avi": "avi", ".webm": "webm"}
# (encoder, what it is), in order of preference
CODECS = (("libx264", "H.264"), ("libopenh264", "H.264"), ("mpeg4", "MPEG-4 Part 2"),
          ("mjpeg", "Motion JPEG"))
WEBM_CODECS = (("libvpx-vp9", "VP9"), ("libvpx", "VP8"))
CODEC_OPTIONS = {"libx264": {"crf": "18", "preset": "veryfast"},
                 "libvpx-vp9": {"crf": "30", "b": "0", "deadline": "realtime", "cpu-used": "8"},
                 "libvpx": {"crf": "10", "b": "4M", "deadline": "realtime", "cpu-used": "8"}}


def _av():
    try:
        import av
    except ImportError:
        raise SegprepError("video", "PyAV is not installed (pip install av)") from None
    return av


# =========================================================================== what is it
_IMAGE_MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a", b"BM",
                b"II*\x00", b"MM\x00*")
_IMAGE_BRANDS = (b"heic", b"heix", b"mif1", b"msf1", b"avif", b"avis")


def sniff(path: PathLike) -> str:
    """``"image"``, ``"video"`` or ``"unknown"`` from a file's first bytes (signatures of PNG,
    JPEG, GIF, BMP, TIFF, WebP images; ISO-BMFF/QuickTime, AVI, Matroska/WebM, MPEG-TS/PS, FLV and
    ASF videos), whatever its suffix."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(400)
    except OSError:
        return "unknown"
    if head.startswith(_IMAGE_MAGIC) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP"):
        return "image"
    box = head[4:8]
    if box == b"ftyp":
        return "image" if head[8:12] in _IMAGE_BRANDS else "video"
    if box in (b"moov", b"mdat", b"wide", b"free", b"skip"):
        return "video"
    if head[:4] == b"RIFF" and head[8:12] in (b"AVI ", b"AVIX"):
        return "video"
    if head.startswith((b"\x1a\x45\xdf\xa3", b"FLV", b"\x00\x00\x01\xba",
                        b"\x30\x26\xb2\x75\x8e\x66\xcf\x11")):
        return "video"
    if len(head) > 188 and head[0] == 0x47 and head[188] == 0x47:  # MPEG transport stream
        return "video"
    return "unknown"


def input_kind(path: PathLike) -> str:
    """How ``segprep predict`` reads INPUT: ``folder``, ``odgt``, ``image`` or ``video``
    (a file by its content; by its suffix when the content is not recognised).

    Raises:
        SegprepError: INPUT does not exist.
    """
    path = Path(path)
    if path.is_dir():
        return "folder"
    if not path.exists():
        raise SegprepError(path, "no such file or directory")
    if path.suffix.lower() == ".odgt":
        return "odgt"
    kind = sniff(path)
    if kind == "unknown":
        kind = "video" if path.suffix.lower() in VIDEO_SUFFIXES else "image"
    return kind


# =========================================================================== reading
@dataclass(frozen=True)
class VideoInfo:
    """A video stream's header facts.

    Attributes:
        path: the file.
        width, height: frame size in pixels.
        fps: frames per second (a Fraction, e.g. 30000/1001).
        frames: frames the header declares (or its duration implies); None if unknown.
        codec: the decoder's name.
    """

    path: Path
    width: int
    height: int
    fps: Fraction
    frames: int | None
    codec: str


def _ffmpeg_errors():
    av = _av()
    base = getattr(av, "FFmpegError", None) or av.error.FFmpegError
    return (base, OSError, ValueError, UnicodeDecodeError)


def _first_line(exc: BaseException) -> str:
    """FFmpeg's own words (``strerror``) when it has them, else the exception's first line."""
    text = getattr(exc, "strerror", None) or (str(exc).splitlines()[0] if str(exc) else "")
    return text or type(exc).__name__


def _stream_facts(container, path: Path) -> tuple:
    if not container.streams.video:
        raise SegprepError(path, "no video stream in this file")
    stream = container.streams.video[0]
    fps = stream.average_rate or stream.guessed_rate or stream.base_rate
    if not fps or fps <= 0:
        raise SegprepError(path, "the video stream has no frame rate")
    frames = int(stream.frames or 0)
    if not frames:
        if stream.duration is not None and stream.time_base:
            dur = float(stream.duration * stream.time_base)
        elif container.duration:
            dur = container.duration / 1e6
        else:
            dur = 0.0
        frames = round(dur * float(fps)) if dur > 0 else 0
    return stream, Fraction(fps), frames or None


def probe(path: PathLike) -> VideoInfo:
    """Read a video's header (no frame decoded).

    Raises:
        SegprepError: not a file PyAV (FFmpeg) can open, no video stream, no frame rate, no size.
    """
    av = _av()
    path = Path(path)
    try:
        with av.open(str(path)) as container:
            stream, fps, frames = _stream_facts(container, path)
            ctx = stream.codec_context
            width, height = int(ctx.width or 0), int(ctx.height or 0)
            codec = ctx.name
    except SegprepError:
        raise
    except _ffmpeg_errors() as exc:
        raise SegprepError(path, f"not a readable video ({_first_line(exc)})") from None
    if width < 1 or height < 1:
        raise SegprepError(path, "the video stream has no frame size")
    return VideoInfo(path, width, height, fps, frames, codec)


def frame_range(info: VideoInfo, start: float = 0.0, duration: float | None = None
                ) -> tuple[int, int | None]:
    """``(first, stop)`` frame indices (stop exclusive, None: to the end) of ``start`` seconds
    and ``duration`` seconds: the frames whose index ``i`` has ``start <= i / fps < start +
    duration``."""
    import math

    first = math.ceil(start * info.fps - 1e-6)
    stop = None if duration is None else math.ceil((start + duration) * info.fps - 1e-6)
    return first, stop


def read_frames(info: VideoInfo, *, start: float = 0.0, duration: float | None = None,
                stride: int = 1, size: tuple[int, int] | None = None
                ) -> Iterator[tuple[int, np.ndarray]]:
    """Decode the selected frames as ``(index, (H, W, 3) uint8 RGB)``, index counted from the
    first frame of the video at ``info.fps``.

    Args:
        info: :func:`probe` of the file.
        start, duration: seconds (see :func:`frame_range`).
        stride: keep every ``stride``-th frame of the range, from its first.
        size: ``(W, H)`` to resize the frames to (FFmpeg's bilinear scaler), None: as decoded.

    Raises:
        SegprepError: a decode error, timestamps not one frame apart (variable frame rate or
            dropped frames), fewer frames than declared (truncated), or no frame in the range.
    """
    av = _av()
    path = info.path
    first, stop = frame_range(info, start, duration)
    width, height = size if size else (info.width, info.height)
    fps = float(info.fps)
    prev: int | None = None
    count = 0
    try:
        container = av.open(str(path))
    except _ffmpeg_errors() as exc:
        raise SegprepError(path, f"not a readable video ({_first_line(exc)})") from None
    try:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        tb = stream.time_base
        t0 = float(stream.start_time * tb) if stream.start_time is not None and tb else 0.0
        if first > 0 and tb:
            container.seek(int((first / fps + t0) / tb), stream=stream, backward=True)
        try:
            for frame in container.decode(stream):
                if frame.pts is None or not tb:
                    idx = 0 if prev is None else prev + 1
                else:
                    pos = (float(frame.pts * tb) - t0) * fps
                    idx = round(pos)
                    if abs(pos - idx) > 0.25 or (prev is not None and idx != prev + 1):
                        t = float(frame.pts * tb) - t0
                        raise SegprepError(path, f"variable frame rate or dropped frames (a frame "
                                                 f"at {t:.3f} s is {pos - (prev or 0):.2f} frame "
                                                 f"intervals after the previous one at "
                                                 f"{fps:g} fps); re-encode at a constant rate "
                                                 f"first (e.g. ffmpeg -i IN -fps_mode cfr OUT)")
                prev = idx
                if idx < first:
                    continue
                if stop is not None and idx >= stop:
                    break
                if (idx - first) % stride:
                    continue
                rgb = frame.to_ndarray(format="rgb24", width=width, height=height)
                count += 1
                yield idx, rgb
        except SegprepError:
            raise
        except _ffmpeg_errors() as exc:
            at = "before the first frame" if prev is None else f"after frame {prev}"
            raise SegprepError(path, f"corrupt or truncated video: decoding failed {at} "
                                     f"({_first_line(exc)})") from None
    finally:
        container.close()
    if count == 0:
        what = "no video frames" if prev is None else \
            f"no frame in the selected range (the video has {prev + 1} frames)"
        raise SegprepError(path, what)
    if stop is None and info.frames and prev is not None and prev + 1 < info.frames - 1:
        raise SegprepError(path, f"truncated video: {prev + 1} frames decoded, the header "
                                 f"declares {info.frames}")


# =========================================================================== writing
def _pix_fmt(codec: str, width: int, height: int) -> str:
    """The encoder's pixel format: 4:2:0 (what players expect), 4:4:4 for H.264 at odd sizes."""
    if codec == "mjpeg":
        return "yuvj420p"
    if codec in ("libx264",) and (width % 2 or height % 2):
        return "yuv444p"
    return "yuv420p"


class VideoWriter:
    """Encode RGB frames into ``path`` through a temporary file, checked before it is renamed.

    Args:
        path: the output video (``.mp4 .mov .mkv .avi .webm``).
        width, height: frame size.
        fps: frame rate.

    Raises:
        SegprepError: unknown container suffix, an unwritable folder, no usable encoder.
    """

    def __init__(self, path: PathLike, width: int, height: int, fps: Fraction):
        av = _av()
        self.path = Path(path)
        fmt = CONTAINERS.get(self.path.suffix.lower())
        if fmt is None:
            raise SegprepError(self.path, f"unknown video suffix; use one of "
                                          f"{' '.join(VIDEO_SUFFIXES)}")
        self.width, self.height, self.fps = int(width), int(height), Fraction(fps)
        self.frames = 0
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SegprepError(self.path.parent, f"cannot create the output folder: "
                                                 f"{exc.strerror or exc}") from None
        self.tmp = self.path.parent / f".{self.path.name}.{secrets.token_hex(4)}.tmp"
        candidates = WEBM_CODECS if fmt == "webm" else CODECS
        self.codec, self.codec_name, self.pix_fmt, tried = None, "", "", []
        for name, what in candidates:
            pix = _pix_fmt(name, self.width, self.height)
            if self._usable(av, name, pix):
                self.codec, self.codec_name, self.pix_fmt = name, what, pix
                break
            tried.append(name)
        if self.codec is None:
            raise SegprepError(self.path, f"no usable video encoder in this FFmpeg build "
                                          f"(tried {', '.join(tried)})")
        self.fallback_from = tried  # preferred encoders that were not available
        try:
            self.container = av.open(str(self.tmp), "w", format=fmt)
        except _ffmpeg_errors() as exc:
            raise SegprepError(self.path, f"cannot write: {_first_line(exc)}") from None
        try:
            self.stream = self.container.add_stream(self.codec, rate=self.fps,
                                                    options=CODEC_OPTIONS.get(self.codec, {}))
            self.stream.width, self.stream.height = self.width, self.height
            self.stream.pix_fmt = self.pix_fmt
            if self.codec == "mpeg4":
                self.stream.bit_rate = max(2_000_000, self.width * self.height * 8)
        except BaseException:
            self.abort()
            raise

    def _usable(self, av, name: str, pix: str) -> bool:
        """Whether this FFmpeg build has encoder ``name`` and it opens at our size/format."""
        try:
            ctx = av.CodecContext.create(name, "w")
            ctx.width, ctx.height, ctx.pix_fmt = self.width, self.height, pix
            ctx.time_base = 1 / self.fps
            ctx.framerate = self.fps
            if name == "mpeg4" and (self.fps.denominator > 65535 or self.fps.numerator > 65535):
                return False
            ctx.open()
            return True
        except Exception:  # noqa: BLE001 - any failure means: try the next encoder
            return False

    @property
    def description(self) -> str:
        """E.g. ``libx264 (H.264, yuv420p)``, with the encoders skipped before it."""
        note = f"; {', '.join(self.fallback_from)} not available" if self.fallback_from else ""
        return f"{self.codec} ({self.codec_name}, {self.pix_fmt}){note}"

    def write(self, rgb: np.ndarray) -> None:
        """Encode one ``(height, width, 3)`` uint8 RGB frame."""
        av = _av()
        if rgb.shape != (self.height, self.width, 3):
            raise SegprepError(self.path, f"frame of shape {rgb.shape}, expected "
                                          f"{(self.height, self.width, 3)}")
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        frame.pts = self.frames
        frame.time_base = 1 / self.fps
        try:
            for packet in self.stream.encode(frame):
                self.container.mux(packet)
        except _ffmpeg_errors() as exc:
            raise SegprepError(self.path, f"encoding failed: {_first_line(exc)}") from None
        self.frames += 1

    def commit(self) -> dict:
        """Flush, close, check the temporary file and rename it to :attr:`path`.

        Returns:
            what the check read back: ``frames``, ``width``, ``height``, ``fps``, ``duration_s``.

        Raises:
            SegprepError: the file read back disagrees (the temp file is removed).
        """
        try:
            for packet in self.stream.encode(None):
                self.container.mux(packet)
            self.container.close()
        except _ffmpeg_errors() as exc:
            self.abort()
            raise SegprepError(self.path, f"encoding failed: {_first_line(exc)}") from None
        try:
            got = check_video(self.tmp, self.frames, self.width, self.height, self.fps)
            os.chmod(self.tmp, 0o666 & ~_umask())
            os.replace(self.tmp, self.path)
        except BaseException:
            self.abort()
            raise
        return got

    def abort(self) -> None:
        """Close quietly and remove the temporary file."""
        try:
            self.container.close()
        except Exception:  # noqa: BLE001
            pass
        try:
            os.unlink(self.tmp)
        except OSError:
            pass


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def check_video(path: PathLike, frames: int, width: int, height: int, fps: Fraction) -> dict:
    """Read a written video back (demuxing only) and compare it with what was written.

    Returns:
        ``frames`` (packets of the video stream), ``width``, ``height``, ``fps``, ``duration_s``.

    Raises:
        SegprepError: unreadable, or frame count, size, rate (±0.5 %) or duration (±1 frame)
            not as written.
    """
    av = _av()
    path = Path(path)
    try:
        with av.open(str(path)) as container:
            stream, got_fps, _ = _stream_facts(container, path)
            w, h = stream.codec_context.width, stream.codec_context.height
            tb = stream.time_base
            count, first, end = 0, None, None
            for packet in container.demux(stream):
                if packet.size:
                    count += 1
                    if packet.pts is not None and tb:
                        t = float(packet.pts * tb)
                        first = t if first is None else min(first, t)
                        t += float((packet.duration or 0) * tb)
                        end = t if end is None else max(end, t)
            # first presentation to the end of the last frame (AVI's guessed pts start at 1)
            duration = end - first if end is not None and first is not None \
                else count / float(got_fps)
    except SegprepError as exc:
        raise SegprepError(path, f"the written video is not valid: {exc.message}") from None
    except _ffmpeg_errors() as exc:
        raise SegprepError(path, f"the written video is unreadable ({_first_line(exc)})") \
            from None
    want_s = frames / float(fps)
    problems = []
    if count != frames:
        problems.append(f"{count} frames instead of {frames}")
    if (w, h) != (width, height):
        problems.append(f"{w}x{h} instead of {width}x{height}")
    if abs(float(got_fps) - float(fps)) > 0.005 * float(fps):
        problems.append(f"{float(got_fps):g} fps instead of {float(fps):g}")
    if abs(duration - want_s) > 1.01 / float(fps):
        problems.append(f"{duration:.3f} s instead of {want_s:.3f} s")
    if problems:
        raise SegprepError(path, f"the written video is not what was encoded: "
                                 f"{'; '.join(problems)}")
    return {"frames": count, "width": w, "height": h, "fps": got_fps, "duration_s": duration}


# =========================================================================== the run
@dataclass
class VideoReport:
    """What :func:`predict_video` did."""

    summary: BatchSummary
    out: Path | None = None
    codec: str = ""
    width: int = 0
    height: int = 0
    fps: Fraction = Fraction(0)
    frames: int = 0
    masks: int = 0
    backend: str = ""
    size: tuple[int, int] | None = None
    times: StageTimes = field(default_factory=StageTimes)
    peak_memory: tuple[str, float] = ("rss", 0.0)
    check: dict = field(default_factory=dict)


def video_output_path(src: PathLike, out: PathLike) -> Path:
    """OUT itself when it has a video suffix, else ``OUT/<input stem>.mp4`` (OUT a folder)."""
    out = Path(out)
    if out.suffix.lower() in VIDEO_SUFFIXES:
        return out
    return out / f"{Path(src).stem}.mp4"


def check_video_options(fmt: str, alpha: float, stride: int, start: float,
                        duration: float | None, fps: float | None,
                        frame_size: tuple[int, int] | None, mask_format: str) -> None:
    """Refuse bad video options (one line naming the option)."""
    if fmt not in VIDEO_FORMATS:
        raise SegprepError("--format", f"a video is written as {', '.join(VIDEO_FORMATS)}, not "
                                       f"{fmt!r} (masks: --save-masks DIR --mask-format "
                                       f"trainIds|labelIds)")
    if mask_format not in MASK_FORMATS:
        raise SegprepError("--mask-format", f"choose from {', '.join(MASK_FORMATS)}, not "
                                            f"{mask_format!r}")
    if not 0 <= alpha <= 1:
        raise SegprepError("--alpha", f"must be in [0, 1], not {alpha}")
    if stride < 1:
        raise SegprepError("--stride", f"must be at least 1, not {stride}")
    if start < 0:
        raise SegprepError("--start", f"must be >= 0 seconds, not {start}")
    if duration is not None and duration <= 0:
        raise SegprepError("--duration", f"must be > 0 seconds, not {duration}")
    if fps is not None and not 0 < fps <= 1000:
        raise SegprepError("--fps", f"must be in (0, 1000], not {fps}")
    if frame_size is not None and min(frame_size) < 1:
        raise SegprepError("--frame-size", f"must be positive, not {frame_size}")


def predict_video(checkpoint: PathLike | Predictor, src: PathLike, out: PathLike, *,
                  fmt: str = "overlay", alpha: float = 0.5,
                  frame_size: tuple[int, int] | None = None, fps: float | None = None,
                  save_masks: PathLike | None = None, mask_format: str = "trainIds",
                  stride: int = 1, start: float = 0.0, duration: float | None = None,
                  overwrite: bool = False, quiet: bool = False, device: str = "auto",
                  amp: bool = True, tile: tuple[int, int] | None = None, overlap: float = 0.25,
                  batch_size: int = 1, size: tuple[int, int] | str | None = None,
                  backend: str | None = None, tta: str | None = None,
                  threads: int | None = None,
                  tta_scales: Sequence[float] | None = None) -> VideoReport:
    """Predict every selected frame of the video ``src`` and write the video ``out`` (see the
    module docstring).

    Args:
        checkpoint: checkpoint / run folder / ``.onnx``, or a ready :class:`Predictor`.
        src: the input video.
        out: the output video (``.mp4`` …), or a folder (then ``<stem>.mp4`` inside it).
        fmt: ``overlay``, ``side-by-side`` or ``color``.
        frame_size: ``(W, H)`` of the decoded frames and of everything written (None: the
            input's).
        fps: output frame rate (None: the input's divided by ``stride``).
        save_masks: folder for the per-frame masks (None: none written).
        mask_format: ``trainIds`` or ``labelIds``.
        stride, start, duration: which frames (see :func:`read_frames`).
        overwrite: replace an existing OUT (default: skip the video).
        device … threads: see :class:`Predictor`.

    Returns:
        a :class:`VideoReport`; a bad video is reported in its summary (one error), not raised.

    Raises:
        SegprepError: bad options or model; OUT that would replace the input.
    """
    from tqdm import tqdm

    check_video_options(fmt, alpha, stride, start, duration, fps, frame_size, mask_format)
    src = Path(src)
    out_path = video_output_path(src, out)
    refuse_overwriting_inputs([src], [out_path])
    predictor = checkpoint if isinstance(checkpoint, Predictor) else Predictor(
        checkpoint, device=device, amp=amp, tile=tile, overlap=overlap, batch_size=batch_size,
        size=size, backend=backend, tta=tta, threads=threads, tta_scales=tta_scales)
    if save_masks is not None and mask_format == "labelIds" and predictor.class_map is None:
        raise SegprepError("--mask-format", "labelIds needs a model trained with a class map "
                                            "(use trainIds)")
    summary = BatchSummary()
    report = VideoReport(summary, out=out_path, backend=predictor.describe(),
                         size=predictor.size)
    if out_path.exists() and not overwrite:
        summary.add(Outcome(src, True), skipped=True)
        return report
    writer: VideoWriter | None = None
    try:
        info = probe(src)
        width, height = frame_size or (info.width, info.height)
        out_fps = Fraction(fps).limit_denominator(1001) if fps else info.fps / stride
        writer = VideoWriter(out_path, width * (2 if fmt == "side-by-side" else 1), height,
                             out_fps)
        report.codec, report.fps = writer.description, out_fps
        report.width, report.height = writer.width, writer.height
        mask_dir = Path(save_masks) if save_masks is not None else None
        if mask_dir is not None:
            try:
                mask_dir.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise SegprepError(mask_dir, f"cannot create: {exc.strerror or exc}") from None
        first, stop = frame_range(info, start, duration)
        end = stop if stop is not None else (info.frames or first)
        total = max(0, -(-(end - first) // stride)) or None
        cmap = predictor.class_map
        out_writer = writer

        def sink(idx: int, img: np.ndarray, pred: np.ndarray) -> int:
            if mask_dir is not None:
                write_png(mask_dir / f"{src.stem}_{idx:06d}.png",
                          render(pred, None, mask_format, cmap))
            out_writer.write(render(pred, img, fmt, cmap, alpha))
            return idx

        bar = tqdm(total=total, desc="predict", unit="frame",
                   disable=quiet or not sys.stderr.isatty(), dynamic_ncols=True)
        try:
            times = run_pipeline(read_frames(info, start=start, duration=duration, stride=stride,
                                             size=frame_size),
                                 predictor.predict, sink, batch_size=predictor.batch_size,
                                 fatal=True, progress=bar.update)
        finally:
            bar.close()
        report.check = writer.commit()
        writer = None
        report.times = times
        report.frames = times.frames
        report.masks = times.frames if mask_dir is not None else 0
        summary.add(Outcome(src, True))
    except SegprepError as exc:
        if writer is not None:
            writer.abort()
        msg = str(exc)
        if not exc.where:
            msg = f"{src}: {msg}"
        summary.add(Outcome(src, error=msg))
    except OSError as exc:  # e.g. a mask that cannot be written
        if writer is not None:
            writer.abort()
        summary.add(Outcome(src, error=f"{getattr(exc, 'filename', None) or out_path}: cannot "
                                       f"write: {exc.strerror or exc}"))
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    report.peak_memory = predictor.peak_memory()
    return report
