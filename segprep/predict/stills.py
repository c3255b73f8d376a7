"""Predict still images: a folder, one image, or an ``.odgt`` manifest → one file per image.

Inputs: a folder (searched recursively for ``.png``/``.jpg``/``.jpeg``, never descending into the
output folder when it lies inside), a single image, or an ``.odgt`` manifest (its ``fpath_img``).
Outputs keep each input's stem and its folder relative to the input folder:
``<out>/<relative folder>/<stem>.png``, so a Cityscapes input
``leftImg8bit/test/berlin/berlin_000000_000019_leftImg8bit.png`` becomes
``<out>/berlin/berlin_000000_000019_leftImg8bit.png`` — the name the benchmark expects. An output
that would replace one of the inputs is refused before anything runs, whatever ``overwrite``.

Formats: see :mod:`segprep.predict.render`. Overlays and side-by-side images are PNG (lossless, so
class borders stay exact), or JPEG ``<stem>.jpg`` with ``overlay_ext="jpg"``. Inference: see
:class:`segprep.predict.predictor.Predictor` (any backend). Reading, the model and writing run as
the three stages of :func:`segprep.predict.pipeline.run_pipeline`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from segprep.errors import SegprepError
from segprep.io import (
    BatchSummary,
    Outcome,
    find_files,
    read_image,
    refuse_overwriting_inputs,
    run_batch,
    write_image,
    write_png,
)
from segprep.predict.pipeline import StageTimes, run_pipeline
from segprep.predict.predictor import Predictor
from segprep.predict.render import FORMATS, render

PathLike = str | os.PathLike

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
OVERLAY_EXTS = ("png", "jpg")


# =========================================================================== inputs
@dataclass(frozen=True)
class Item:
    """One input image and where its prediction goes (without extension)."""

    image: Path
    out_stem: Path


def _clean_rel(rel: Path) -> Path:
    parts = [p for p in rel.parts if p not in ("", ".")]
    return Path(*parts) if parts and ".." not in parts and not rel.is_absolute() else Path()


def list_inputs(src: PathLike, out: PathLike) -> list[Item]:
    """The images of ``src`` (folder, image or ``.odgt``) and their output stems under ``out``.

    A folder is searched recursively, except ``out`` when it lies inside ``src`` (so a rerun never
    reads its own predictions back as inputs).

    Raises:
        SegprepError: ``src`` missing, an unreadable manifest, or no images found.
    """
    src = Path(src)
    out = Path(out)
    items: list[Item] = []
    if src.is_dir():
        files = [f for f in find_files(src, "", exclude=[out])
                 if f.suffix.lower() in IMAGE_SUFFIXES]
        for f in files:
            rel = _clean_rel(f.parent.relative_to(src))
            items.append(Item(f, out / rel / f.stem))
    elif src.suffix.lower() == ".odgt":
        from segprep import manifest

        root = manifest.default_root(src)
        for r in manifest.read_odgt(src):
            img = manifest.resolve(r.fpath_img, root)
            rel = _clean_rel(Path(r.fpath_img).parent) if not os.path.isabs(r.fpath_img) \
                else Path()
            items.append(Item(img, out / rel / img.stem))
    elif src.is_file():
        items.append(Item(src, out / src.stem))
    else:
        raise SegprepError(src, "no such file or directory")
    if not items:
        raise SegprepError(src, "no images (.png, .jpg, .jpeg) found")
    seen: dict[Path, Path] = {}
    for it in items:
        if it.out_stem in seen:
            raise SegprepError(it.image, f"same output name as {seen[it.out_stem]} "
                                         f"({it.out_stem.name})")
        seen[it.out_stem] = it.image
    return items


def output_path(item: Item, fmt: str, overlay_ext: str = "png") -> Path:
    """Where the prediction of ``item`` in format ``fmt`` is written: ``<stem>.png``, or
    ``<stem>.jpg`` for an overlay or side-by-side image with ``overlay_ext="jpg"``."""
    ext = overlay_ext if fmt in ("overlay", "side-by-side") else "png"
    return item.out_stem.with_name(f"{item.out_stem.name}.{ext}")




def write_prediction(path: Path, array: np.ndarray) -> None:
    """Write a rendered prediction atomically (PNG, or JPEG quality 90 for ``.jpg``)."""
    if path.suffix.lower() == ".png":
        write_png(path, array)
    else:
        write_image(path, array, quality=90)


def load_image(path: PathLike) -> np.ndarray:
    """:func:`segprep.io.read_image`, except that a video file is named as one (not as a
    "corrupt image").

    Raises:
        SegprepError: unreadable image, or a video.
    """
    try:
        return read_image(path)
    except SegprepError:
        from segprep.predict.video import sniff

        if sniff(path) == "video":
            raise SegprepError(path, "is a video, not an image: pass it alone as INPUT to "
                                     "predict it as a video") from None
        raise


# =========================================================================== the batch
@dataclass
class PredictReport:
    """What :func:`predict_images` did: the batch summary, images per second of the run
    (reading, inference and writing together), per-stage times, peak memory (kind and MiB), the
    backend, and the ``(W, H)`` the model ran at (None: native)."""

    summary: BatchSummary
    images_per_s: float = 0.0
    peak_memory: tuple[str, float] = ("rss", 0.0)
    device: str = "cpu"
    amp: bool = False
    size: tuple[int, int] | None = None
    backend: str = "torch"
    outputs: list[Path] = field(default_factory=list)
    times: StageTimes = field(default_factory=StageTimes)


def check_options(fmt: str, alpha: float, overlay_ext: str = "png",
                  formats: tuple[str, ...] = FORMATS) -> None:
    """Refuse an unknown format, overlay type or an ``alpha`` outside ``[0, 1]``."""
    if fmt not in formats:
        raise SegprepError("--format", f"unknown format {fmt!r}; choose from {', '.join(formats)}")
    if overlay_ext not in OVERLAY_EXTS:
        raise SegprepError("--overlay-ext", f"must be png or jpg, not {overlay_ext!r}")
    if not 0 <= alpha <= 1:
        raise SegprepError("--alpha", f"must be in [0, 1], not {alpha}")


@dataclass(frozen=True)
class ClusterJob:
    """Predict one image on a Dask worker (``--scheduler``): the job carries the model's path and
    options, never the model; each worker loads it once (:func:`segprep.io.cluster.worker_cached`)
    and writes its outputs itself, so only the output path travels back."""

    model: str
    options: tuple[tuple[str, object], ...]  # Predictor keyword arguments
    fmt: str
    overlay_ext: str
    alpha: float

    def predictor(self) -> Predictor:
        from segprep.io.cluster import worker_cached

        key = ("segprep-predictor", os.path.abspath(self.model), os.path.getmtime(self.model),
               self.options)
        options: dict[str, Any] = dict(self.options)
        return worker_cached(key, lambda: Predictor(self.model, **options))

    def __call__(self, item: Item) -> str:
        predictor = self.predictor()
        image = load_image(item.image)
        pred = predictor.predict([image])[0]
        path = output_path(item, self.fmt, self.overlay_ext)
        write_prediction(path, render(pred, image, self.fmt, predictor.class_map, self.alpha))
        return str(path)


def predict_images(checkpoint: PathLike | Predictor, src: PathLike, out: PathLike, *,
                   fmt: str = "trainIds", device: str = "auto", amp: bool = True,
                   tile: tuple[int, int] | None = None, overlap: float = 0.25,
                   batch_size: int = 1, overwrite: bool = False, alpha: float = 0.5,
                   quiet: bool = False, size: tuple[int, int] | str | None = None,
                   overlay_ext: str = "png", backend: str | None = None,
                   tta: str | None = None, threads: int | None = None,
                   scheduler: str | None = None,
                   tta_scales: Sequence[float] | None = None) -> PredictReport:
    """Predict every image of ``src`` into ``out`` (see the module docstring).

    Args:
        checkpoint: a checkpoint / run folder / ``.onnx`` file, or a ready :class:`Predictor`
            (then ``device`` … ``threads`` are ignored).
        src: folder, image or ``.odgt``.
        out: the output folder.
        fmt: one of :data:`segprep.predict.render.FORMATS`.
        size, backend, tta, tta_scales, threads, device, amp, tile, overlap, batch_size: see
            :class:`Predictor`.
        overlay_ext: ``png`` or ``jpg`` for overlay / side-by-side.
        overwrite: replace existing outputs (default: skip them, so a rerun resumes).
        scheduler: run on a Dask cluster (:mod:`segprep.io.cluster`; ``tcp://HOST:PORT`` or
            ``local:N``): each worker loads the model once and writes its images' outputs on
            storage every worker sees; the model is also loaded here once, to check it.

    Existing outputs are skipped unless ``overwrite``; a bad image is reported on one line and the
    others are still predicted.

    Raises:
        SegprepError: bad model, inputs, format or options; an output that would replace an input.
    """
    from tqdm import tqdm

    check_options(fmt, alpha, overlay_ext)
    if Path(out).is_file():
        raise SegprepError(out, "is a file; predictions of still images go into a folder")
    items = list_inputs(src, out)
    refuse_overwriting_inputs([it.image for it in items],
                              [output_path(it, fmt, overlay_ext) for it in items])
    predictor = checkpoint if isinstance(checkpoint, Predictor) else Predictor(
        checkpoint, device=device, amp=amp, tile=tile, overlap=overlap, batch_size=batch_size,
        size=size, backend=backend, tta=tta, threads=threads, tta_scales=tta_scales)
    if fmt == "labelIds" and predictor.class_map is None:
        raise SegprepError("--format", "labelIds needs a checkpoint trained with a class map "
                                       "(use trainIds)")
    summary = BatchSummary()
    todo = []
    for it in items:
        if not overwrite and output_path(it, fmt, overlay_ext).exists():
            summary.add(Outcome(it, True), skipped=True)
        else:
            todo.append(it)
    report = PredictReport(summary, device=str(predictor.device), amp=predictor.amp,
                           size=predictor.size, backend=predictor.describe())

    def source():
        for it in todo:
            try:
                yield it, load_image(it.image)
            except SegprepError as exc:
                yield it, str(exc)

    def sink(it: Item, img: np.ndarray, pred: np.ndarray) -> Path:
        path = output_path(it, fmt, overlay_ext)
        try:
            write_prediction(path, render(pred, img, fmt, predictor.class_map, alpha))
        except OSError as exc:
            raise SegprepError(it.image, f"cannot write prediction {path}: "
                                         f"{exc.strerror or exc}") from None
        return path

    if scheduler:
        if isinstance(checkpoint, Predictor):
            raise SegprepError("--scheduler", "needs the model's path, not a loaded predictor")
        options = (("device", device), ("amp", amp), ("tile", tile), ("overlap", overlap),
                   ("batch_size", 1), ("size", size), ("backend", backend), ("tta", tta),
                   ("threads", threads),
                   ("tta_scales", tuple(tta_scales) if tta_scales else None))
        job = ClusterJob(str(checkpoint), options, fmt, overlay_ext, alpha)
        for outcome in run_batch(job, todo, desc="predict", quiet=quiet, unit="image",
                                 ordered=True, scheduler=scheduler, probe=str(todo[0].image)
                                 if todo else None):
            summary.add(outcome)
            if outcome.ok:
                report.outputs.append(Path(outcome.value))
        report.peak_memory = predictor.peak_memory()
        return report

    bar = tqdm(total=len(todo), desc="predict", unit="image",
               disable=quiet or not sys.stderr.isatty(), dynamic_ncols=True)
    try:
        times = run_pipeline(source(), predictor.predict, sink,
                             batch_size=predictor.batch_size, progress=bar.update)
    finally:
        bar.close()
    errors = dict(times.errors)
    for it in todo:  # in input order
        if it in errors:
            msg = errors[it]
            if not msg.startswith(str(it.image)):
                msg = f"{it.image}: {msg}"
            summary.add(Outcome(it, error=msg))
        else:
            summary.add(Outcome(it, True))
    report.outputs = [path for _, path in times.done]
    report.times = times
    report.images_per_s = times.frames_per_s
    report.peak_memory = predictor.peak_memory()
    return report
