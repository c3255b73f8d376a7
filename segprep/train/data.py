"""Training data: odgt records → ``(image, mask)`` pairs with joint augmentation.

* :func:`read_records` reads an ``.odgt`` manifest (one JSON object per line with ``fpath_img``,
  ``fpath_segm``, ``width``, ``height``; paths relative to ``root`` — default the odgt's folder —
  or absolute) and checks that every file exists, naming the line of a missing one.
* :class:`SegDataset` decodes a frame, optionally resizes it to a fixed size (images bilinear,
  masks nearest neighbour), checks the mask values against the class count and remaps the
  dataset's ``ignore_index`` to 255 (the trainer always ignores 255 internally, so crop padding
  with 255 and a dataset ignoring e.g. 11 agree), then applies the random joint transforms of
  :mod:`segprep.train.transforms` (albumentations: scale, pad + crop, flip, colour jitter).
* Augmentation is seeded per ``(seed, epoch, index)``: a sample is augmented identically whatever
  the worker count, process rank or resume point, which is what makes ``--resume`` reproduce an
  uninterrupted run exactly. The sampler (:class:`EpochSampler`) passes ``(index, epoch)`` keys
  to the dataset.
* Samples are ``(H, W, 3)`` uint8 images and ``(H, W)`` uint8 masks; :func:`pad_collate` pads a
  batch to its largest size. Conversion to float and normalisation happen on the training device
  (:func:`to_model_input`, with the model's mean and std), which moves 4× fewer bytes through
  the workers and pinned memory.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from segprep.class_maps import IGNORE_INDEX
from segprep.errors import SegprepError
from segprep.model import MEAN, STD
from segprep.sizes import parse_pair
from segprep.train.transforms import apply, resize_transform, seeded, train_transforms

IGNORE = IGNORE_INDEX
"""The ignore value of the masks the trainer sees (the dataset's ignore_index is remapped to it):
:data:`segprep.class_maps.IGNORE_INDEX`."""


def pad_rgb(mean: Sequence[float] = MEAN) -> tuple[int, int, int]:
    """Image padding colour for a model normalised with ``mean`` (of RGB / 255): the mean colour,
    so padded pixels are ~0 after normalisation."""
    r, g, b = (int(round(m * 255)) for m in mean)
    return r, g, b


PAD_RGB = pad_rgb(MEAN)
"""Image padding colour of the plain U-Net (:func:`pad_rgb` of :data:`segprep.model.MEAN`)."""


class DataError(SegprepError):
    """A bad training sample. Also constructible from the one string a DataLoader worker passes
    back when it re-raises an exception in the main process (its last line is kept)."""

    def __init__(self, where: str, message: str | None = None):
        if message is None:  # re-raised from a worker: "…\nsegprep.train.data.DataError: w: m"
            lines = [ln for ln in str(where).strip().splitlines() if ln.strip()]
            text = lines[-1].split("DataError: ", 1)[-1] if lines else str(where)
            where, sep, message = text.partition(": ")
            if not sep:
                where, message = "", text
        super().__init__(where, message)


@dataclass(frozen=True)
class Sample:
    """One training sample of an odgt line: absolute image and mask paths (and the line, for
    error messages); :class:`segprep.manifest.Record` is the line itself."""

    image: str
    mask: str
    where: str


def read_records(odgt: str | os.PathLike, root: str | os.PathLike | None = None,
                 check_files: bool = True) -> list[Sample]:
    """Read an ``.odgt`` manifest.

    Args:
        odgt: the manifest (one JSON object per line, read strictly by
            :mod:`segprep.manifest`: a blank or broken line is an error).
        root: folder that relative paths are relative to (default: the manifest's folder).
        check_files: fail if an image or mask file is missing.

    Returns:
        One :class:`Sample` per line, in file order.

    Raises:
        SegprepError: unreadable manifest. DataError (a SegprepError): a line that is not JSON
            or lacks ``fpath_img`` / ``fpath_segm``, a missing file
            (``<odgt>:<line>: fpath_img: no such file <path>``), or an empty manifest.
    """
    from segprep.manifest import iter_lines, parse_line, resolve

    odgt = Path(odgt)
    base = Path(root) if root is not None else odgt.parent
    records = []
    for lineno, line in iter_lines(odgt):  # the manifest module's strict odgt reader
        where = f"{odgt}:{lineno}"
        try:
            rec = parse_line(line)
        except ValueError as exc:
            raise DataError(where, str(exc)) from None
        paths = []
        for key, p in (("fpath_img", rec.fpath_img), ("fpath_segm", rec.fpath_segm)):
            full = resolve(p, base)
            if check_files and not full.is_file():
                raise DataError(where, f"{key}: no such file {full}")
            paths.append(str(full))
        records.append(Sample(paths[0], paths[1], where))
    if not records:
        raise DataError(str(odgt), "empty manifest")
    return records


def parse_hw(text: str | None, option: str, order: str = "HxW") -> tuple[int, int] | None:
    """``--crop``/``--size`` text → two positive ints in the order written, or None when not
    given (:func:`segprep.sizes.parse_pair`).

    Raises:
        SegprepError: not two positive integers separated by ``x``.
    """
    if text in (None, ""):
        return None
    return parse_pair(str(text), option, order)


def parse_scale(text: str | None) -> tuple[float, float] | None:
    """Parse ``--scale``: ``"0.5,2.0"`` (a range) or ``"1"`` (no scaling → None)."""
    if text in (None, ""):
        return None
    try:
        vals = [float(v) for v in str(text).split(",")]
    except ValueError:
        raise SegprepError("--scale", f"expected MIN,MAX (e.g. 0.5,2.0), got {text!r}") from None
    if len(vals) == 1:
        vals = vals * 2
    if len(vals) != 2 or min(vals) <= 0 or vals[0] > vals[1]:
        raise SegprepError("--scale", f"expected 0 < MIN <= MAX, got {text!r}")
    return None if vals == [1.0, 1.0] else (vals[0], vals[1])


def remap_lut(num_classes: int, ignore_index: int) -> np.ndarray:
    """``(256,)`` int16 LUT: valid trainIds ``0..K-1`` → themselves, ``ignore_index`` and 255 → 255,
    anything else → -1 (invalid)."""
    lut = np.full(256, -1, np.int16)
    lut[:num_classes] = np.arange(num_classes)
    lut[IGNORE] = IGNORE
    if 0 <= ignore_index < 256:
        lut[ignore_index] = IGNORE
    return lut


class SegDataset(Dataset):
    """``(image, mask)`` pairs from odgt records, with optional joint augmentation.

    Args:
        records: from :func:`read_records`.
        num_classes: K; mask values must be in ``[0, K)``, ``ignore_index`` or 255.
        ignore_index: the dataset's ignore value (remapped to 255).
        size: ``(W, H)`` to resize every frame to first (None: native size).
        crop: ``(H, W)`` random crop (padding with ``pad`` / 255 where the frame is smaller).
        scale: ``(min, max)`` random scale factor range, or None.
        flip: random horizontal flip (p = 0.5).
        jitter: colour jitter strength j: brightness, contrast and saturation factors drawn from
            ``U(1 - j, 1 + j)`` (0 = off).
        hue: hue jitter: the hue is rotated by ``U(-hue, hue)`` of the full circle (0.05 = ±18°;
            0 = off, below 0.5), as torchvision's ``ColorJitter(hue=)``.
        augment: False for validation (resize only, no randomness).
        seed: base seed of the augmentation RNG.
        cache: keep decoded (resized) frames in memory (per worker process; use with
            ``persistent_workers``), for small datasets on slow disks or CPUs.
        pad: image padding colour (the model's mean colour, :func:`pad_rgb`).
        class_mix: probability that a sample gets pixels of another training frame pasted on it
            before its augmentation (0 = off): the other frame (drawn uniformly, mirrored with
            p = 0.5, resized to the sample's size) gives the pixels of some of its classes, image
            and mask together, at the same place. Which classes: ``class_mix_classes`` when given
            (every one of them the other frame holds: copy-paste of chosen classes), else a
            random half of the classes the other frame holds (ClassMix, Olsson et al., WACV 2021).
            Never its ignored pixels. Seeded per ``(seed, epoch, index)`` like the augmentation.
        class_mix_classes: the train_ids to paste (None: ClassMix's random half).

    Items: ``dataset[index]`` or ``dataset[(index, epoch)]`` → ``(image, mask)``:
    ``(H, W, 3)`` uint8 and ``(H, W)`` uint8 tensors, mask values in ``[0, K)`` or 255.

    Raises (on access):
        DataError: unreadable file, image/mask size mismatch, a mask that is not single-channel,
            a mask value outside the class map.
    """

    def __init__(self, records: Sequence[Sample], num_classes: int, ignore_index: int = IGNORE,
                 size: tuple[int, int] | None = None, crop: tuple[int, int] | None = None,
                 scale: tuple[float, float] | None = None, flip: bool = True,
                 jitter: float = 0.0, augment: bool = True, seed: int = 0, cache: bool = False,
                 hue: float = 0.0, pad: tuple[int, int, int] = PAD_RGB,
                 photometric: float = 0.0, class_mix: float = 0.0,
                 class_mix_classes: Sequence[int] | None = None):
        self.records = list(records)
        self.num_classes = int(num_classes)
        self.ignore_index = int(ignore_index)
        self.size = size
        self.seed = int(seed)
        self.cache = cache
        self._cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._lut = remap_lut(self.num_classes, self.ignore_index)
        self._resize = resize_transform(size) if size is not None else None
        self.class_mix = float(class_mix) if augment and len(self.records) > 1 else 0.0
        self.class_mix_classes = None if class_mix_classes is None else \
            np.asarray(sorted(set(int(c) for c in class_mix_classes)), np.int64)
        self._aug = train_transforms(crop, scale, flip, float(jitter), float(hue), pad,
                                     float(photometric)) \
            if augment else None

    def __len__(self) -> int:
        return len(self.records)

    # -------------------------------------------------------------------------------- loading
    def load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Decoded, resized (``size``) and remapped frame ``index``: ``(H, W, 3)`` uint8 image,
        ``(H, W)`` uint8 mask (values ``0..K-1`` or 255)."""
        if self.cache and index in self._cache:
            return self._cache[index]
        from segprep.io import read_image, read_label

        rec = self.records[index]
        try:
            img = read_image(rec.image)
            mask, _palette = read_label(rec.mask)
        except SegprepError as exc:
            raise DataError(exc.where, f"{exc.message} (from {rec.where})") from None
        if mask.ndim != 2:
            raise DataError(rec.mask, f"mask has {mask.shape[2]} channels; expected a "
                                      "single-channel trainId mask (convert color masks first)")
        if mask.dtype != np.uint8:
            if mask.max(initial=0) > 255:
                raise DataError(rec.mask, f"mask value {int(mask.max())} outside the class map "
                                          f"(0..{self.num_classes - 1}, ignore "
                                          f"{self.ignore_index})")
            mask = mask.astype(np.uint8)
        if img.shape[:2] != mask.shape:
            raise DataError(rec.mask, f"mask is {mask.shape[1]}x{mask.shape[0]} but image "
                                      f"{rec.image} is {img.shape[1]}x{img.shape[0]}")
        mapped = self._lut[mask]
        if mapped.min() < 0:
            bad = np.unique(mask[mapped < 0])
            raise DataError(rec.mask, f"mask value(s) {', '.join(map(str, bad[:8].tolist()))} "
                                      f"outside the class map (0..{self.num_classes - 1}, "
                                      f"ignore {self.ignore_index})")
        mask = mapped.astype(np.uint8)
        if self._resize is not None and (img.shape[1], img.shape[0]) != tuple(self.size or ()):
            img, mask = apply(self._resize, img, mask)
        if self.cache:
            self._cache[index] = (img, mask)
        return img, mask

    # -------------------------------------------------------------------------------- items
    def __getitem__(self, key: int | tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        index, epoch = (key, 0) if isinstance(key, (int, np.integer)) else key
        img, mask = self.load(int(index))
        if self.class_mix > 0:
            img, mask = self._class_mix(img, mask, int(index), int(epoch))
        if self._aug is not None:
            img, mask = apply(self._aug, img, mask, seeded(self.seed, int(epoch), int(index)))
        # writable + contiguous: Pillow-decoded images (JPEG, …) are read-only numpy arrays,
        # which torch.from_numpy warns about; np.require copies only such arrays
        return torch.from_numpy(np.require(img, requirements=("C", "W"))), \
            torch.from_numpy(np.require(mask, requirements=("C", "W")))

    def _class_mix(self, img: np.ndarray, mask: np.ndarray, index: int, epoch: int
                   ) -> tuple[np.ndarray, np.ndarray]:
        """``class_mix``: paste some classes of another frame onto ``img`` / ``mask`` (new arrays;
        the cached frames stay as loaded)."""
        rng = np.random.default_rng([self.seed, epoch, index, 1])  # apart from seeded()'s stream
        if rng.random() >= self.class_mix:
            return img, mask
        other = int(rng.integers(len(self.records) - 1))
        other += other >= index
        img_b, mask_b = self.load(other)
        if mask_b.shape != mask.shape:
            img_b, mask_b = apply(resize_transform((mask.shape[1], mask.shape[0])), img_b, mask_b)
        if rng.random() < 0.5:
            img_b, mask_b = img_b[:, ::-1], mask_b[:, ::-1]
        present = np.flatnonzero(np.bincount(mask_b.ravel(), minlength=256)[:self.num_classes])
        if self.class_mix_classes is None:
            chosen = rng.choice(present, size=(len(present) + 1) // 2, replace=False) \
                if len(present) else present
        else:
            chosen = np.intersect1d(present, self.class_mix_classes)
        if not len(chosen):
            return img, mask
        pick = np.zeros(256, bool)
        pick[chosen] = True
        paste = pick[mask_b]
        return np.where(paste[..., None], img_b, img), np.where(paste, mask_b, mask)


def pad_collate(batch: list[tuple[torch.Tensor, torch.Tensor]],
                pad: tuple[int, int, int] = PAD_RGB) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack samples, padding each to the batch's largest size (image: ``pad``, the model's mean
    colour; mask: 255). :func:`collate_for` binds ``pad`` for a DataLoader.

    Returns:
        ``(N, H, W, 3)`` uint8 images and ``(N, H, W)`` uint8 masks.
    """
    h = max(m.shape[0] for _, m in batch)
    w = max(m.shape[1] for _, m in batch)
    if all(m.shape == (h, w) for _, m in batch):
        return torch.stack([i for i, _ in batch]), torch.stack([m for _, m in batch])
    imgs = torch.empty((len(batch), h, w, 3), dtype=torch.uint8)
    imgs[...] = torch.tensor(pad, dtype=torch.uint8)
    masks = torch.full((len(batch), h, w), IGNORE, dtype=torch.uint8)
    for k, (i, m) in enumerate(batch):
        imgs[k, :i.shape[0], :i.shape[1]] = i
        masks[k, :m.shape[0], :m.shape[1]] = m
    return imgs, masks


def collate_for(mean: Sequence[float]):
    """:func:`pad_collate` padding images with the mean colour of a model normalised with
    ``mean`` (a picklable ``functools.partial`` for DataLoader worker processes)."""
    return partial(pad_collate, pad=pad_rgb(mean))


def validation_loader(records: Sequence[Sample], num_classes: int, ignore_index: int,
                      mean: Sequence[float], *, size: tuple[int, int] | None = None,
                      batch_size: int = 8, cache: bool = False,
                      indices: Sequence[int] | None = None, **loader_kw):
    """The DataLoader a model is validated with: frames resized to ``size`` only (no
    augmentation, in manifest order), batches padded with the model's mean colour (``mean``, as
    in its checkpoint's ``meta["mean"]``) and masks with 255. The trainer's validation and the
    fold-analysis scripts use it, so they score the same pixels.

    Args:
        records: from :func:`read_records`.
        num_classes, ignore_index: as :class:`SegDataset`.
        mean: the model's input normalisation mean (RGB, 0–1).
        size: ``(W, H)`` resize (None: native size), the trainer's ``--size``.
        indices: score only these records (e.g. one rank's shard); None: all.
        loader_kw: passed to :class:`torch.utils.data.DataLoader` (``num_workers``, ...).

    Yields ``(N, H, W, 3)`` uint8 images and ``(N, H, W)`` uint8 masks (values in ``[0, K)`` or
    255).
    """
    from torch.utils.data import DataLoader

    ds = SegDataset(records, num_classes, ignore_index, size=size, augment=False, cache=cache)
    order = list(range(len(ds))) if indices is None else list(indices)
    return DataLoader(ds, batch_size=batch_size, sampler=order, collate_fn=collate_for(mean),
                      **loader_kw)


_NORM: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}


def to_model_input(images: torch.Tensor, device: torch.device, channels_last: bool = False,
                   mean: Sequence[float] = MEAN, std: Sequence[float] = STD) -> torch.Tensor:
    """``(N, H, W, 3)`` uint8 → ``(N, 3, H, W)`` float32 ``(rgb / 255 - mean) / std`` on ``device``
    (``mean``/``std`` of the model: :func:`segprep.model.input_normalisation`; default the plain
    U-Net's).

    One fused ``addcmul`` on the NHWC batch; its NCHW view is channels_last in memory, so
    ``channels_last=True`` costs no copy, otherwise the result is made contiguous (NCHW).
    """
    key = (device, tuple(mean), tuple(std))
    if key not in _NORM:
        scale = torch.tensor([1 / (255 * s) for s in std], dtype=torch.float32)
        bias = torch.tensor([-m / s for m, s in zip(mean, std)], dtype=torch.float32)
        _NORM[key] = (scale.to(device), bias.to(device))
    scale, bias = _NORM[key]
    x = torch.addcmul(bias, images.to(device, non_blocking=True), scale).permute(0, 3, 1, 2)
    return x if channels_last else x.contiguous()


class EpochSampler(Sampler):
    """Yields ``(index, epoch)`` keys: the order of ``torch.utils.data.DistributedSampler``
    (shuffled with ``seed + epoch``; one shard per rank), tagged with the epoch so the dataset can
    seed each sample's augmentation. Call :meth:`set_epoch` before each epoch.

    Args:
        dataset: the dataset (only its length is used).
        shuffle: shuffle each epoch.
        seed: shuffle seed.
        num_replicas, rank: DDP world size and this process's rank (1, 0 without DDP).
    """

    def __init__(self, dataset: Dataset, shuffle: bool = True, seed: int = 0,
                 num_replicas: int = 1, rank: int = 0):
        from torch.utils.data import DistributedSampler

        self.inner: DistributedSampler = DistributedSampler(
            dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed,
            drop_last=False)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)
        self.inner.set_epoch(epoch)

    def __iter__(self):
        epoch = self.epoch
        return ((int(i), epoch) for i in self.inner)

    def __len__(self) -> int:
        return len(self.inner)
