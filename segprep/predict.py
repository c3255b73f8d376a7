"""Full-resolution inference from a checkpoint: write one prediction per input image.

Inputs: a folder (searched recursively for ``.png``/``.jpg``/``.jpeg``), a single image, or an
``.odgt`` manifest (its ``fpath_img``). Outputs keep each input's stem and its folder relative to
the input folder: ``<out>/<relative folder>/<stem>.png``, so a Cityscapes input
``leftImg8bit/test/berlin/berlin_000000_000019_leftImg8bit.png`` becomes
``<out>/berlin/berlin_000000_000019_leftImg8bit.png`` — the name the benchmark expects.

Formats (``fmt``):

* ``trainIds``: ``(H, W)`` uint8 PNG of the argmax class ``0..K-1``;
* ``labelIds``: the class map's ``train_id_to_id`` of it (needs a checkpoint with a class map);
* ``color``: RGB PNG, the class map's trainId palette (a generated palette without a class map);
* ``overlay``: the image blended with the color mask (``alpha``), for people to look at: PNG
  (lossless, so class borders stay exact), or JPEG ``<stem>.jpg`` with ``overlay_ext="jpg"``.

Inference: images normalised ``(rgb / 255 - mean) / std`` with the checkpoint's ``mean``/``std``.
Scale: a model trained on frames resized to ``--size WxH`` sees objects at that scale, so by
default each image is first resized to the training size recorded in the checkpoint (bilinear,
``cv2.INTER_LINEAR`` as the trainer's ``SegDataset``); the logits are resized back to the image's
native size (bilinear, as mmsegmentation's ``resize`` before the argmax), so every output has its
input's size. ``size="native"`` (or a checkpoint trained without ``--size``) runs at native
size. Whole images (the model pads to its stride and crops back), or a sliding window
(``tile=(h, w)`` on the resized image, ``overlap`` fraction) whose logits are averaged where
windows overlap; same-size images are batched; float16 autocast on CUDA (``amp``); the argmax is
taken on the device. Reading and writing run in threads beside the model.
"""

from __future__ import annotations

import os
import resource
import sys
import time
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from segprep.class_maps import ClassMap
from segprep.errors import SegprepError
from segprep.io import BatchSummary, Outcome, find_files, read_image, write_image, write_png

PathLike = str | os.PathLike

FORMATS = ("trainIds", "labelIds", "color", "overlay")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


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

    Raises:
        SegprepError: ``src`` missing, an unreadable manifest, or no images found.
    """
    src = Path(src)
    out = Path(out)
    items: list[Item] = []
    if src.is_dir():
        files = [f for f in find_files(src, "") if f.suffix.lower() in IMAGE_SUFFIXES]
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


OVERLAY_EXTS = ("png", "jpg")


def output_path(item: Item, fmt: str, overlay_ext: str = "png") -> Path:
    """Where the prediction of ``item`` in format ``fmt`` is written: ``<stem>.png``, or
    ``<stem>.jpg`` for an overlay with ``overlay_ext="jpg"``."""
    ext = overlay_ext if fmt == "overlay" else "png"
    return item.out_stem.with_name(f"{item.out_stem.name}.{ext}")


# =========================================================================== rendering
def default_palette(n: int = 256) -> np.ndarray:
    """``(n, 3)`` uint8 palette for class maps without colors: the bit-interleaving palette of the
    PASCAL VOC devkit (``VOClabelcolormap``), computed."""
    pal = np.zeros((n, 3), np.uint8)
    for i in range(n):
        c, r, g, b = i, 0, 0, 0
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        pal[i] = (r, g, b)
    return pal


def render(pred: np.ndarray, image: np.ndarray | None, fmt: str, class_map: ClassMap | None,
           alpha: float = 0.5) -> np.ndarray:
    """Turn an ``(H, W)`` uint8 trainId prediction into the array written for ``fmt``.

    Returns:
        ``(H, W)`` uint8 for trainIds/labelIds, ``(H, W, 3)`` uint8 for color/overlay.

    Raises:
        SegprepError: ``labelIds`` without a class map.
    """
    if fmt == "trainIds":
        return pred
    if fmt == "labelIds":
        if class_map is None:
            raise SegprepError("--format", "labelIds needs a checkpoint trained with a class map")
        return class_map.train_id_to_id[pred]
    palette = class_map.train_colors if class_map is not None else default_palette()
    color = palette[pred]
    if fmt == "color":
        return color
    if fmt == "overlay":
        blend = image.astype(np.float32) * (1 - alpha) + color.astype(np.float32) * alpha
        return np.clip(blend + 0.5, 0, 255).astype(np.uint8)
    raise SegprepError("--format", f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")


def write_prediction(path: Path, array: np.ndarray) -> None:
    """Write a rendered prediction atomically (PNG, or JPEG for ``.jpg``)."""
    if path.suffix.lower() == ".png":
        write_png(path, array)
    else:
        write_image(path, array, quality=90)


# =========================================================================== the model
def tile_positions(size: int, tile: int, overlap: float) -> list[int]:
    """Start offsets of sliding windows of ``tile`` pixels covering ``size`` with at least the
    ``overlap`` fraction between neighbours; the last window ends at ``size``."""
    if tile >= size:
        return [0]
    step = max(1, int(tile * (1 - overlap)))
    pos = list(range(0, size - tile, step))
    pos.append(size - tile)
    return sorted(set(pos))


class Predictor:
    """A loaded checkpoint that maps RGB images to trainId predictions.

    Args:
        checkpoint: a ``best.pt``/``last.pt`` (or run folder) of ``segprep train``.
        size: ``(W, H)`` the model runs at (images resized, bilinear; logits resized back), None
            for the training size recorded in the checkpoint (``--size`` of ``segprep train``;
            native when it has none), or ``"native"``.
        device: ``auto`` (CUDA if available), ``cpu``, ``cuda`` or ``cuda:N``.
        amp: float16 autocast on CUDA (ignored on CPU).
        tile: ``(h, w)`` sliding-window size, or None for whole images.
        overlap: overlap fraction of neighbouring windows, in ``[0, 1)``.
        batch_size: images (or windows) per forward pass.

    Raises:
        SegprepError: unreadable checkpoint, unknown device, bad tile/overlap.
    """

    def __init__(self, checkpoint: PathLike, device: str = "auto", amp: bool = True,
                 tile: tuple[int, int] | None = None, overlap: float = 0.25,
                 batch_size: int = 1, size: tuple[int, int] | str | None = None):
        import torch

        from segprep.train.checkpoint import load_model

        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        try:
            self.device = torch.device(device)
        except RuntimeError as exc:
            raise SegprepError("--device", str(exc)) from None
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise SegprepError("--device", "CUDA is not available on this machine")
        if not 0 <= overlap < 1:
            raise SegprepError("--overlap", f"must be in [0, 1), not {overlap}")
        if tile is not None and (tile[0] < 1 or tile[1] < 1):
            raise SegprepError("--tile", f"must be positive, not {tile}")
        if batch_size < 1:
            raise SegprepError("--batch-size", "must be at least 1")
        self.model, self.meta = load_model(checkpoint, device=self.device)
        self.num_classes = int(self.meta["num_classes"])
        if self.num_classes > 255:
            raise SegprepError(checkpoint, f"{self.num_classes} classes do not fit 8-bit "
                                           "predictions")
        cm = self.meta.get("class_map")
        self.class_map = ClassMap.from_dict(cm) if cm else None
        self.amp = bool(amp) and self.device.type == "cuda"
        if size is None:  # the training size recorded in the checkpoint
            trained = (self.meta.get("args") or {}).get("size")
            size = tuple(int(v) for v in trained) if trained else "native"
        if size == "native":
            self.size = None
        elif (isinstance(size, tuple) and len(size) == 2
              and all(isinstance(v, int) and v > 0 for v in size)):
            self.size = size
        else:
            raise SegprepError("--size", f"expected (W, H) positive ints or 'native', not {size!r}")
        self.tile = tile
        self.overlap = float(overlap)
        self.batch_size = int(batch_size)
        self.mean = torch.tensor(self.meta["mean"], dtype=torch.float32,
                                 device=self.device).view(1, 3, 1, 1) * 255
        self.std = torch.tensor(self.meta["std"], dtype=torch.float32,
                                device=self.device).view(1, 3, 1, 1) * 255

    def _input(self, images: Sequence[np.ndarray]):
        import torch

        x = torch.from_numpy(np.stack(images)).to(self.device, non_blocking=True)
        return (x.permute(0, 3, 1, 2).float() - self.mean) / self.std

    def _forward(self, x):
        import torch

        with torch.inference_mode():
            if self.amp:
                with torch.autocast("cuda", dtype=torch.float16):
                    return self.model(x).float()
            return self.model(x)

    def logits(self, images: Sequence[np.ndarray]):
        """``(N, K, H, W)`` float32 logits of same-size ``(H, W, 3)`` uint8 RGB images (on the
        device, at the images' own size), whole or by sliding window, the model run at
        :attr:`size` when one is set."""
        import torch.nn.functional as F

        h0, w0 = images[0].shape[:2]
        if self.size is not None and self.size != (w0, h0):
            import cv2

            small = [cv2.resize(im, self.size, interpolation=cv2.INTER_LINEAR) for im in images]
            out = self._logits(small)
            return F.interpolate(out.float(), size=(h0, w0), mode="bilinear",
                                 align_corners=False)
        return self._logits(images)

    def _logits(self, images: Sequence[np.ndarray]):
        import torch

        x = self._input(images)
        if self.tile is None:
            return self._forward(x)
        n, _, h, w = x.shape
        th, tw = min(self.tile[0], h), min(self.tile[1], w)
        windows = [(y, xx) for y in tile_positions(h, th, self.overlap)
                   for xx in tile_positions(w, tw, self.overlap)]
        out = torch.zeros((n, self.num_classes, h, w), dtype=torch.float32, device=self.device)
        count = torch.zeros((1, 1, h, w), dtype=torch.float32, device=self.device)
        per = max(1, self.batch_size // n)
        for i in range(0, len(windows), per):
            chunk = windows[i:i + per]
            crops = torch.cat([x[:, :, y:y + th, xx:xx + tw] for y, xx in chunk])
            res = self._forward(crops)
            for k, (y, xx) in enumerate(chunk):
                out[:, :, y:y + th, xx:xx + tw] += res[k * n:(k + 1) * n]
                count[:, :, y:y + th, xx:xx + tw] += 1
        return out / count

    def predict(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        """``(H, W)`` uint8 trainId predictions (argmax over classes) of same-size images."""
        import torch

        pred = self.logits(images).argmax(1).to(dtype=torch.uint8)
        return list(pred.cpu().numpy())

    def peak_memory(self) -> tuple[str, float]:
        """``("cuda", MiB)`` from ``torch.cuda.max_memory_allocated`` on CUDA, else
        ``("rss", MiB)``: the process's peak resident set size."""
        import torch

        if self.device.type == "cuda":
            return "cuda", torch.cuda.max_memory_allocated(self.device) / 2 ** 20
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
        return "rss", rss / (2 ** 20 if sys.platform == "darwin" else 2 ** 10)


# =========================================================================== the batch
@dataclass
class PredictReport:
    """What :func:`predict_images` did: the batch summary, images per second of the model run
    (reading, inference and writing together), peak memory (kind and MiB) and the ``(W, H)`` the
    model ran at (None: native)."""

    summary: BatchSummary
    images_per_s: float = 0.0
    peak_memory: tuple[str, float] = ("rss", 0.0)
    device: str = "cpu"
    amp: bool = False
    size: tuple[int, int] | None = None
    outputs: list[Path] = field(default_factory=list)


def _batches(items: Sequence[Item], images: Iterator[tuple[Item, np.ndarray | str]], size: int
             ) -> Iterator[tuple[list[Item], list[np.ndarray], list[tuple[Item, str]]]]:
    """Group consecutive same-size images into batches of up to ``size``; errors pass through."""
    cur_items: list[Item] = []
    cur_imgs: list[np.ndarray] = []
    for item, img in images:
        if isinstance(img, str):
            yield [], [], [(item, img)]
            continue
        if cur_imgs and (img.shape != cur_imgs[0].shape or len(cur_imgs) >= size):
            yield cur_items, cur_imgs, []
            cur_items, cur_imgs = [], []
        cur_items.append(item)
        cur_imgs.append(img)
    if cur_imgs:
        yield cur_items, cur_imgs, []


def predict_images(checkpoint: PathLike, src: PathLike, out: PathLike, *, fmt: str = "trainIds",
                   device: str = "auto", amp: bool = True, tile: tuple[int, int] | None = None,
                   overlap: float = 0.25, batch_size: int = 1, overwrite: bool = False,
                   alpha: float = 0.5, quiet: bool = False,
                   size: tuple[int, int] | str | None = None,
                   overlay_ext: str = "png") -> PredictReport:
    """Predict every image of ``src`` into ``out`` (see the module docstring).

    ``size``: see :class:`Predictor` (None: the checkpoint's training size). ``overlay_ext``:
    ``png`` or ``jpg`` for ``fmt="overlay"``.

    Existing outputs are skipped unless ``overwrite``; a bad image is reported on one line and the
    others are still predicted.

    Raises:
        SegprepError: bad checkpoint, inputs, format or options.
    """
    from tqdm import tqdm

    if fmt not in FORMATS:
        raise SegprepError("--format", f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")
    if overlay_ext not in OVERLAY_EXTS:
        raise SegprepError("--overlay-ext", f"must be png or jpg, not {overlay_ext!r}")
    if not 0 <= alpha <= 1:
        raise SegprepError("--alpha", f"must be in [0, 1], not {alpha}")
    items = list_inputs(src, out)
    predictor = Predictor(checkpoint, device=device, amp=amp, tile=tile, overlap=overlap,
                          batch_size=batch_size, size=size)
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
                           size=predictor.size)

    def load(it: Item) -> tuple[Item, np.ndarray | str]:
        try:
            return it, read_image(it.image)
        except SegprepError as exc:
            return it, str(exc)

    def save(it: Item, pred: np.ndarray, img: np.ndarray) -> Path:
        path = output_path(it, fmt, overlay_ext)
        write_prediction(path, render(pred, img, fmt, predictor.class_map, alpha))
        return path

    bar = tqdm(total=len(todo), desc="predict", unit="image",
               disable=quiet or not sys.stderr.isatty(), dynamic_ncols=True)
    ahead = 2 * predictor.batch_size + 2  # images read ahead / predictions waiting to be written
    pending: deque[tuple[Item, Future]] = deque()

    def collect(limit: int) -> None:
        while len(pending) > limit:
            it, fut = pending.popleft()
            try:
                report.outputs.append(fut.result())
                summary.add(Outcome(it, True))
            except (SegprepError, OSError) as exc:
                summary.add(Outcome(it, error=f"{it.image}: cannot write prediction: {exc}"))

    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=2) as io_pool:
        def reads() -> Iterator[tuple[Item, np.ndarray | str]]:
            queue: deque[Future] = deque()
            for it in todo:
                queue.append(io_pool.submit(load, it))
                if len(queue) > ahead:
                    yield queue.popleft().result()
            while queue:
                yield queue.popleft().result()

        for batch_items, batch_imgs, errs in _batches(todo, reads(), predictor.batch_size):
            for it, msg in errs:
                summary.add(Outcome(it, error=msg))
                bar.update(1)
            if not batch_items:
                continue
            try:
                preds = predictor.predict(batch_imgs)
            except RuntimeError as exc:  # e.g. out of memory on a huge image
                for it in batch_items:
                    summary.add(Outcome(it, error=f"{it.image}: inference failed: "
                                                  f"{str(exc).splitlines()[0]}"))
                bar.update(len(batch_items))
                continue
            for it, p, img in zip(batch_items, preds, batch_imgs):
                pending.append((it, io_pool.submit(save, it, p, img)))
            collect(ahead)
            bar.update(len(batch_items))
        collect(0)
    bar.close()
    elapsed = time.perf_counter() - t0
    done = len(report.outputs)
    report.images_per_s = done / elapsed if elapsed > 0 and done else 0.0
    report.peak_memory = predictor.peak_memory()
    return report
