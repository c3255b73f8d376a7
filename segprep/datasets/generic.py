"""A generic images + masks layout (and the SegNet list-file layout): file stems, the one
stem-matching rule (predictions to frames, images to masks), and image file extensions."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from segprep.errors import SegprepError
from segprep.io import find_files
from segprep.manifest import iter_lines

PathLike = str | os.PathLike

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".gif")
"""File name endings taken for images (and label masks: GIF/TIFF/BMP masks are read as their
palette indices) where no suffix is given."""


def stem(path: PathLike) -> str:
    """A file's name without its last extension: ``a/b/0016E5_07959.png`` → ``0016E5_07959``."""
    return Path(path).name.rsplit(".", 1)[0]


@dataclass
class Match:
    """Files matched to frame keys by one of the rules of :mod:`segprep.datasets`.

    Attributes:
        files: per key, its one file, or ``None`` (none, or several: see the next fields).
        missing: keys with no file.
        multiple: key → its files, where a key matched several (always refused: picking one
            silently would score or submit an arbitrary file).
        extra: files that match no key.
    """

    files: list[Path | None]
    missing: list[str] = field(default_factory=list)
    multiple: dict[str, list[Path]] = field(default_factory=dict)
    extra: list[Path] = field(default_factory=list)

    def problems(self, what: str, n: int, rule: str) -> str:
        """One line naming missing and multiple files ('' when every key has exactly one)."""
        out = []
        if self.missing:
            out.append(f"no {what} for {len(self.missing)} of {n} frames: "
                       f"{', '.join(self.missing[:5])}{', …' if len(self.missing) > 5 else ''}")
        if self.multiple:
            items = [f"{k} ({', '.join(_distinct_names(v[:3]))})"
                     for k, v in list(self.multiple.items())[:3]]
            out.append(f"several {what}s for {len(self.multiple)} frames: {'; '.join(items)}"
                       f"{'; …' if len(self.multiple) > 3 else ''}")
        return "; ".join(out) + (f" (each frame needs exactly one file {rule})" if out else "")


def _distinct_names(files: Sequence[Path]) -> list[str]:
    """The files as paths below their common folder (``a/f0.png, b/f0.png``, not ``f0.png,
    f0.png``)."""
    if len(files) < 2:
        return [str(f) for f in files]
    common = os.path.commonpath([os.path.abspath(f.parent) for f in files])
    return [os.path.relpath(os.path.abspath(f), common) for f in files]


def match_by_stem(keys: Sequence[Sequence[str]], files: Sequence[Path]) -> Match:
    """The stem rule: a file belongs to a frame when its stem equals one of the frame's keys.

    Each frame has one or more candidate keys, tried in order (an image stem, then its mask
    stem, or a ground-truth stem without its ``_train_id`` suffix); the first key that names any
    file decides. Two files with that stem (in two sub-folders, or ``a.png`` and ``a.jpg``) are
    *multiple*, never one picked silently.
    """
    by_stem: dict[str, list[Path]] = {}
    for f in sorted(files):
        by_stem.setdefault(stem(f), []).append(f)
    match = Match([])
    used: set[str] = set()
    for cands in keys:
        hit = next((k for k in cands if k in by_stem), None)
        if hit is None:
            match.files.append(None)
            match.missing.append(cands[0] if cands else "")
            continue
        used.add(hit)
        if len(by_stem[hit]) > 1:
            match.multiple[hit] = by_stem[hit]
            match.files.append(None)
        else:
            match.files.append(by_stem[hit][0])
    match.extra = [f for s, fs in by_stem.items() if s not in used for f in fs]
    return match


# ----------------------------------------------------------------------------------- pairing
@dataclass
class Pairing:
    """Images matched with masks.

    Attributes:
        pairs: ``(image, mask)`` paths, sorted by image path.
        unpaired: ``(path, reason)`` of every image without a mask and mask without an image.
        source: one line describing where the pairs came from (folders, list file).
    """

    pairs: list[tuple[Path, Path]]
    unpaired: list[tuple[Path, str]]
    source: str = ""


def _list(folder: Path, suffix: str | None, missing_ok: bool = False) -> list[Path]:
    if missing_ok and not folder.exists():
        return []
    files = find_files(folder, "")
    if suffix is None:
        return [f for f in files if f.name.lower().endswith(IMAGE_EXTENSIONS)]
    return [f for f in files if f.name.endswith(suffix) and len(f.name) > len(suffix)]


def _key(name: str, suffix: str | None) -> str:
    if suffix is None:
        return os.path.splitext(name)[0]
    return name[: -len(suffix)]


def _index(files: list[Path], suffix: str | None, folder: Path, what: str) -> dict[str, Path]:
    out: dict[str, Path] = {}
    dups: dict[str, list[Path]] = {}
    for f in files:
        k = _key(f.name, suffix)
        if k in out:
            dups.setdefault(k, [out[k]]).append(f)
        else:
            out[k] = f
    if dups:
        k, fs = next(iter(sorted(dups.items())))
        raise SegprepError(folder, f"{len(dups)} {what} stem(s) occur more than once (e.g. {k!r}: "
                                   f"{', '.join(str(p) for p in fs[:3])}); pairing by stem needs "
                                   "unique file names")
    return out


def pair_by_stem(images: PathLike, masks: PathLike, image_suffix: str | None = None,
                 mask_suffix: str = ".png", missing_images_ok: bool = False) -> Pairing:
    """Pair the images under ``images`` with the masks under ``masks`` (recursively) by stem.

    The stem of a file is its name without the suffix: ``aachen_000001_000019`` for
    ``aachen_000001_000019_leftImg8bit.png`` with suffix ``_leftImg8bit.png``. Sub-folders do not
    take part in the match (Cityscapes' city folders are on both sides anyway). When a file matches
    both suffixes (images and masks in one folder), it belongs to the longer, more specific one.

    Args:
        images, masks: folders (may be the same).
        image_suffix: end of image file names (``_leftImg8bit.png``, ``.jpg``); ``None`` = any
            of :data:`IMAGE_EXTENSIONS`, the stem being the name without its extension.
        mask_suffix: end of mask file names (``_gtFine_labelTrainIds.png``, ``_train_id.png``).
        missing_images_ok: an absent ``images`` folder counts as empty (every mask is then
            unpaired) instead of an error; used by the presets, whose masks may come without
            images (the Cityscapes test split's images are a separate download).

    Raises:
        SegprepError: a folder is missing, or two files of one side share a stem.
    """
    images, masks = Path(images), Path(masks)
    img_files = _list(images, image_suffix, missing_images_ok)
    mask_files = _list(masks, mask_suffix)
    both = set(img_files) & set(mask_files)
    if both:
        img_longer = image_suffix is not None and len(image_suffix) > len(mask_suffix)
        if img_longer:
            mask_files = [f for f in mask_files if f not in both]
        else:
            img_files = [f for f in img_files if f not in both]
    img_idx = _index(img_files, image_suffix, images, "image")
    mask_idx = _index(mask_files, mask_suffix, masks, "mask")
    pairs = [(img_idx[k], mask_idx[k]) for k in img_idx if k in mask_idx]
    unpaired = [(img_idx[k], f"image without mask (no *{mask_suffix} with this stem under "
                             f"{masks})") for k in img_idx if k not in mask_idx]
    no_dir = "" if images.exists() else " (folder missing)"
    unpaired += [(mask_idx[k], f"mask without image (no *{image_suffix or '.<image>'} with this "
                               f"stem under {images}{no_dir})")
                 for k in mask_idx if k not in img_idx]
    pairs.sort()
    unpaired.sort()
    return Pairing(pairs, unpaired, f"{images} (*{image_suffix or '.<image>'}) <-> {masks} "
                                    f"(*{mask_suffix})")


def pair_from_list(list_file: PathLike, root: PathLike) -> Pairing:
    """Pairs from a SegNet-style list file: each line ``IMAGE MASK`` (space-separated).

    SegNet's ``train.txt`` holds the authors' absolute paths (``/SegNet/CamVid/train/X.png
    /SegNet/CamVid/trainannot/X.png``), so each path is resolved under ``root`` by its last two
    components (``<root>/train/X.png``).

    Raises:
        SegprepError: unreadable file, a line without two paths.
    """
    root = Path(root)
    pairs, unpaired = [], []
    for i, line in iter_lines(list_file):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = line.split()
        if len(parts) != 2:
            raise SegprepError(f"{list_file}:{i}", f"expected 'IMAGE MASK', got {line.strip()!r}")
        img, mask = (root.joinpath(*Path(p.replace("\\", "/")).parts[-2:]) for p in parts)
        ok_img, ok_mask = img.is_file(), mask.is_file()
        if ok_img and ok_mask:
            pairs.append((img, mask))
        elif ok_mask:
            unpaired.append((mask, f"mask without image ({img} listed in {list_file}:{i} is "
                                   "missing)"))
        elif ok_img:
            unpaired.append((img, f"image without mask ({mask} listed in {list_file}:{i} is "
                                  "missing)"))
        else:
            unpaired.append((img, f"image and mask listed in {list_file}:{i} are both missing"))
    return Pairing(sorted(set(pairs)), sorted(set(unpaired)), f"{list_file} under {root}")
