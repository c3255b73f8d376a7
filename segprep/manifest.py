"""``.odgt`` manifests: read, write, create (pairing images with masks) and validate.

The ``.odgt`` format is the one of CSAILVision/semantic-segmentation-pytorch (``data/*.odgt``,
read by ``mit_semseg/dataset.py``): one JSON object per line, newline-terminated::

    {"fpath_img": "leftImg8bit/train/aachen/aachen_000001_000019_leftImg8bit.png",  # one line
     "fpath_segm": "gtFine/train/aachen/aachen_000001_000019_gtFine_labelTrainIds.png",
     "width": 2048, "height": 1024}

Keys in that order, written with :func:`json.dumps`' default separators, as CSAIL's own files.
``width``/``height`` are the image size in pixels. Paths are relative to a *root* (CSAIL's
``root_dataset``); segprep's convention is that the root defaults to the folder holding the
``.odgt`` file, so a manifest written next to its data is self-contained. Absolute paths are kept
as they are.

Masks listed in a manifest for training hold trainIds (``(H, W)`` uint8, ``ignore_index=255``),
stored as 8-bit gray (``L``) or palette (``P``, whose indices are the values, as BDD100K's
colormaps) PNGs.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from segprep.class_maps import IGNORE_INDEX
from segprep.errors import SegprepError
from segprep.io import chunked, image_size, read_bytes, resolve_jobs, run_batch

KEYS = ("fpath_img", "fpath_segm", "width", "height")
"""Required keys of an odgt line, in CSAIL's order."""

MASK_MODES = ("L", "P")
"""Pillow modes accepted for masks: 8-bit single channel (``P``: palette indices are the values)."""

PathLike = str | os.PathLike

SERIAL_BELOW = 4000
"""Header-only work on fewer items than this runs in-process by default (``jobs=None``): a
header read costs ~0.5 ms, starting the worker processes ~2 s on a 2-core machine."""

SERIAL_PIXELS = 150_000_000
"""Decoding work on fewer mask pixels than this runs in-process by default (``jobs=None``):
about 1-2 s of decoding, less than what starting worker processes costs (measured on SegNet
CamVid train, 63 Mpx: 1.2 s in-process, 3.6 s with 2 workers)."""


def decode_jobs(jobs: int | None, records: Sequence[Record], n_items: int) -> int:
    """Workers for a batch that decodes the masks of ``records``: :func:`segprep.io.resolve_jobs`
    with the masks' total pixels (recorded width x height) as the work, in-process below
    :data:`SERIAL_PIXELS`."""
    return resolve_jobs(jobs, n_items, work=sum(r.width * r.height for r in records),
                        serial_below=SERIAL_PIXELS)


# ----------------------------------------------------------------------------------- records
@dataclass(frozen=True)
class Record:
    """One line of an ``.odgt`` manifest.

    Attributes:
        fpath_img: image path, relative to the manifest's root (or absolute).
        fpath_segm: mask path, same convention.
        width, height: image size in pixels.
        extra: further keys of the line (kept, written after the four CSAIL keys).
    """

    fpath_img: str
    fpath_segm: str
    width: int
    height: int
    extra: tuple[tuple[str, Any], ...] = field(default=(), compare=False)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"fpath_img": self.fpath_img, "fpath_segm": self.fpath_segm,
                             "width": int(self.width), "height": int(self.height)}
        d.update(self.extra)
        return d

    def to_line(self) -> str:
        """The JSON line (without newline), byte-identical to CSAIL's ``json.dumps`` output."""
        return json.dumps(self.to_dict())

    def sort_key(self) -> tuple[str, str]:
        return (self.fpath_img, self.fpath_segm)


def default_root(odgt: PathLike) -> Path:
    """The root that relative paths of ``odgt`` resolve against by default: its folder."""
    return Path(os.path.abspath(odgt)).parent


def resolve(path: str, root: PathLike) -> Path:
    """Path of a manifest entry: ``root``/``path`` unless ``path`` is absolute, normalised
    lexically (``a/../b`` → ``b``), the inverse of :func:`relative_to_root`."""
    return Path(os.path.normpath(path if os.path.isabs(path) else os.path.join(root, path)))


def relative_to_root(path: PathLike, root: PathLike, absolute: bool = False) -> str:
    """How ``path`` is written in a manifest whose root is ``root``: POSIX, relative (may start
    with ``..``), or absolute when ``absolute`` (``os.path.abspath``, symlinks kept)."""
    p = os.path.abspath(path)
    if absolute:
        return Path(p).as_posix()
    return Path(os.path.relpath(p, os.path.abspath(root))).as_posix()


def rebase(record: Record, old_root: PathLike, new_root: PathLike) -> Record:
    """``record`` with its relative paths rewritten from ``old_root`` to ``new_root``."""
    if os.path.abspath(old_root) == os.path.abspath(new_root):
        return record

    def move(p: str) -> str:
        return p if os.path.isabs(p) else relative_to_root(Path(old_root) / p, new_root)

    return Record(move(record.fpath_img), move(record.fpath_segm), record.width, record.height,
                  record.extra)


def parse_line(text: str) -> Record:
    """Parse one odgt line.

    Raises:
        ValueError: with a one-line reason (bad JSON, not an object, missing key, bad value).
    """
    if not text.strip():
        raise ValueError("empty line")
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        if exc.msg == "Extra data":
            raise ValueError("several JSON objects on one line (missing newline?)") from None
        raise ValueError(f"broken JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(obj, dict):
        raise ValueError(f"expected a JSON object, got {type(obj).__name__}")
    missing = [k for k in KEYS if k not in obj]
    if missing:
        raise ValueError(f"missing key(s) {', '.join(missing)}")
    for k in ("fpath_img", "fpath_segm"):
        if not isinstance(obj[k], str) or not obj[k]:
            raise ValueError(f"{k} must be a non-empty string, got {obj[k]!r}")
    for k in ("width", "height"):
        v = obj[k]
        if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
            raise ValueError(f"{k} must be a positive integer, got {v!r}")
    extra = tuple((k, v) for k, v in obj.items() if k not in KEYS)
    return Record(obj["fpath_img"], obj["fpath_segm"], obj["width"], obj["height"], extra)


def iter_lines(path: PathLike) -> Iterator[tuple[int, str]]:
    """``(line_number, text)`` of every line of ``path`` (1-based, newline stripped).

    Raises:
        SegprepError: missing or unreadable file, not UTF-8.
    """
    try:
        text = read_bytes(path).decode("utf-8")
    except UnicodeDecodeError:
        raise SegprepError(path, "not UTF-8 text") from None
    lines = text.split("\n")
    if lines and lines[-1] == "":  # the final newline ends the last line
        lines.pop()
    for i, line in enumerate(lines, start=1):
        yield i, line.rstrip("\r")


def read_odgt(path: PathLike) -> list[Record]:
    """Read every line of an ``.odgt`` file, strictly.

    Returns:
        the records in file order.

    Raises:
        SegprepError: ``<file>:<line>: <reason>`` for the first bad line (``segprep odgt
        validate`` lists them all), or an empty file.
    """
    out = []
    for i, line in iter_lines(path):
        try:
            out.append(parse_line(line))
        except ValueError as exc:
            raise SegprepError(f"{path}:{i}", f"{exc} (run `segprep odgt validate` for a full "
                                              "report)") from None
    if not out:
        raise SegprepError(path, "empty manifest")
    return out


def format_odgt(records: Iterable[Record]) -> str:
    """The text of an ``.odgt`` file: one JSON line per record, each newline-terminated."""
    return "".join(r.to_line() + "\n" for r in records)


def write_odgt(path: PathLike, records: Iterable[Record], sort: bool = True) -> int:
    """Write records to ``path`` atomically (temp file + rename).

    Args:
        sort: sort lines by ``(fpath_img, fpath_segm)`` so that the file is byte-identical
            whatever order the records came in.

    Returns:
        the number of lines written.
    """
    from segprep.io import atomic_write_text

    records = sorted(records, key=Record.sort_key) if sort else list(records)
    atomic_write_text(path, format_odgt(records))
    return len(records)


# ----------------------------------------------------------------------------------- pairing

# ----------------------------------------------------------------------------------- create
def _record_job(item: tuple[str, str, str, bool]) -> Record:
    img, mask, root, absolute = item
    w, h = image_size(img)
    return Record(relative_to_root(img, root, absolute), relative_to_root(mask, root, absolute),
                  int(w), int(h))


def make_records(pairs: Sequence[tuple[PathLike, PathLike]], root: PathLike,
                 absolute: bool = False, jobs: int | None = None,
                 quiet: bool = False) -> tuple[list[Record], list[str]]:
    """Build sorted manifest records for ``pairs``; sizes from each image's header (no decode).

    Returns:
        ``(records, errors)``: the records sorted by ``(fpath_img, fpath_segm)`` and one-line
        errors of the images whose header could not be read.
    """
    items = [(str(i), str(m), str(root), absolute) for i, m in pairs]
    # a header read is ~0.5 ms: below SERIAL_BELOW, worker start-up costs more than it saves
    n_jobs = resolve_jobs(jobs, len(items), work=len(items), serial_below=SERIAL_BELOW)
    records, errors = [], []
    for out in run_batch(_record_job, items, jobs=n_jobs, desc="odgt", quiet=quiet,
                         unit="image", prefer="processes"):
        if out.ok:
            records.append(out.value)
        else:
            errors.append(out.error or "")
    records.sort(key=Record.sort_key)
    return records, sorted(errors)


# ----------------------------------------------------------------------------------- validate
def allowed_values(num_classes: int | None = None, class_map: str | None = None,
                   ids: str = "train", ignore_index: int | None = 255) -> np.ndarray | None:
    """The mask values a manifest may hold, as a ``(256,)`` bool table (``None``: not checked).

    Args:
        num_classes: values ``0 .. num_classes-1`` (trainIds) are valid.
        class_map: name of a class map; with ``ids="train"`` its trainIds (``0 ..
            num_classes-1`` present in the table) are valid, with ``ids="label"`` its
            non-negative label ids are (Cityscapes ``*_labelIds.png``).
        ignore_index: also valid (trainIds only; ``None`` = none). Label-id masks have no ignore
            value of their own: their void classes are label ids of the table.

    Raises:
        SegprepError: both or an unknown class map; bad ``ids``.
    """
    if num_classes is not None and class_map is not None:
        raise SegprepError("--class-map", "give --class-map or --num-classes, not both")
    if ids not in ("train", "label"):
        raise SegprepError("--ids", f"must be 'train' or 'label', got {ids!r}")
    ok = np.zeros(256, bool)
    if class_map is not None:
        from segprep import class_maps

        cm = class_maps.load(class_map)
        if ids == "label":
            vals = cm.valid_ids[cm.valid_ids < 256]
            ok[vals] = True
            return ok
        t = cm.train_ids[(cm.train_ids >= 0) & (cm.train_ids < IGNORE_INDEX)]
        ok[t] = True
    elif num_classes is not None:
        if not 0 < num_classes <= 256:
            raise SegprepError("--num-classes", f"must be in 1..256, got {num_classes}")
        ok[:num_classes] = True
    else:
        return None
    if ignore_index is not None and 0 <= ignore_index < 256:
        ok[ignore_index] = True
    return ok


@dataclass
class Problem:
    """One problem found by :func:`validate`: its 1-based line number and what is wrong."""

    line: int
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {"line": self.line, "message": self.message}


@dataclass
class ValidationReport:
    """What :func:`validate` found: number of lines, lines without problem, every problem."""

    path: str
    lines: int
    ok_lines: int
    problems: list[Problem]

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.path, "lines": self.lines, "ok_lines": self.ok_lines,
                "problems": [p.to_dict() for p in self.problems]}


def _mask_header(path: Path) -> tuple[str, tuple[int, int]]:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return im.mode, im.size
    except FileNotFoundError:
        raise SegprepError(path, "no such file") from None
    except (UnidentifiedImageError, OSError) as exc:
        raise SegprepError(path, f"unreadable image ({exc})") from None


def mask_mode_problem(mode: str) -> str | None:
    """The one rule for the mode of a manifest's mask (``validate``, ``stats``, ``split
    --stratify`` apply it alike): ``None`` when ``mode`` is accepted (:data:`MASK_MODES`), else
    what is wrong, e.g. for a 16-bit mask (``I;16``)."""
    if mode in MASK_MODES:
        return None
    return f"has mode {mode}, expected a single-channel 8-bit mask ({' or '.join(MASK_MODES)})"


def check_mask_mode(path: PathLike) -> tuple[int, int]:
    """Apply :func:`mask_mode_problem` to a mask file's header (no decode).

    Returns:
        the mask's ``(width, height)``.

    Raises:
        SegprepError: unreadable file, or a mode other than :data:`MASK_MODES`.
    """
    mode, size = _mask_header(Path(path))
    problem = mask_mode_problem(mode)
    if problem:
        raise SegprepError(path, problem)
    return size


def duplicate_lines(records: Sequence[Record]) -> list[tuple[int, int, str]]:
    """Lines listing an image already listed (the one rule for duplicates: ``validate`` reports
    them, ``stats`` refuses them rather than counting the image once or twice).

    Args:
        records: a manifest's records in file order (:func:`read_odgt`: record ``i`` is line
            ``i + 1``).

    Returns:
        ``(line, first_line, fpath_img)`` for each repeated image, 1-based line numbers.
    """
    seen: dict[str, int] = {}
    out = []
    for i, r in enumerate(records, start=1):
        if r.fpath_img in seen:
            out.append((i, seen[r.fpath_img], r.fpath_img))
        else:
            seen[r.fpath_img] = i
    return out


def mask_histogram(path: PathLike) -> np.ndarray:
    """Pixel count of every value of a mask (palette PNGs: of every palette index).

    Returns:
        ``(256,)`` int64 for 8-bit masks (``(65536,)`` for 16-bit ones).

    Raises:
        SegprepError: missing/corrupt file, or a multi-channel (RGB) image.
    """
    from segprep.io import read_label

    arr, _pal = read_label(path)
    if arr.ndim != 2:
        raise SegprepError(path, f"mask has {arr.shape[2]} channels, expected a single-channel "
                                 "(L or P) mask")
    return histogram(arr)


def histogram(arr: np.ndarray) -> np.ndarray:
    """Exact count of every value of a ``(H, W)`` uint8 (``(256,)`` int64) or uint16 (``(65536,)``
    int64) array.

    uint8 arrays under 2**24 pixels go through OpenCV's ``calcHist`` (its float32 bins are exact
    below 2**24; about 2.5x faster than ``np.bincount``, which first widens to int64); others
    through ``np.bincount``.
    """
    if arr.dtype == np.uint8 and arr.size < 2**24:
        import cv2

        h = cv2.calcHist([np.ascontiguousarray(arr)], [0], None, [256], [0, 256])
        return h.ravel().astype(np.int64)
    n = 65536 if arr.dtype == np.uint16 else 256
    return np.bincount(arr.ravel(), minlength=n).astype(np.int64)


def _check_job(item: tuple[int, str, str, int, int, str, bytes | None]) -> list[str]:
    """Check one manifest line's files; returns its problems (never raises for bad input)."""
    _line, fimg, fsegm, width, height, root, allowed = item
    problems = []
    img, mask = resolve(fimg, root), resolve(fsegm, root)
    try:
        iw, ih = image_size(img)
        if (iw, ih) != (width, height):
            problems.append(f"image {img} is {iw}x{ih}, the line says {width}x{height}")
    except SegprepError as exc:
        problems.append(f"image {exc.where}: {exc.message}")
    try:
        mode, (mw, mh) = _mask_header(mask)
    except SegprepError as exc:
        problems.append(f"mask {exc.where}: {exc.message}")
        return problems
    if (mw, mh) != (width, height):
        problems.append(f"mask {mask} is {mw}x{mh}, the line says {width}x{height}")
    mode_problem = mask_mode_problem(mode)
    if mode_problem:
        problems.append(f"mask {mask} {mode_problem}")
        return problems
    if allowed is not None:
        try:
            hist = mask_histogram(mask)
        except SegprepError as exc:
            problems.append(f"mask {exc.where}: {exc.message}")
            return problems
        ok = np.frombuffer(allowed, dtype=bool)
        bad = np.flatnonzero((hist > 0) & ~ok)
        if bad.size:
            shown = ", ".join(f"{v} ({hist[v]} px)" for v in bad[:8])
            more = f" and {bad.size - 8} more" if bad.size > 8 else ""
            problems.append(f"mask {mask} holds value(s) outside the allowed set: {shown}{more}")
    return problems


def _check_chunk(chunk: Sequence[tuple[int, str, str, int, int, str, bytes | None]]
                 ) -> list[tuple[int, list[str]]]:
    return [(item[0], _check_job(item)) for item in chunk]


def validate(path: PathLike, root: PathLike | None = None, allowed: np.ndarray | None = None,
             jobs: int | None = None, quiet: bool = False) -> ValidationReport:
    """Check every line of an ``.odgt`` manifest and the files it lists.

    Per line: it parses as a JSON object with ``fpath_img``, ``fpath_segm`` (non-empty strings),
    ``width``, ``height`` (positive ints); it is not a duplicate of an earlier image; the image and
    the mask exist and their header sizes equal the recorded ``width``x``height``; the mask is
    single-channel 8-bit (:data:`MASK_MODES`); and, when ``allowed`` is given, every mask value
    is allowed (the mask is decoded, palette PNGs by index). Files are checked in parallel.

    Args:
        path: the manifest.
        root: where relative paths resolve (default: the manifest's folder).
        allowed: ``(256,)`` bool table of valid mask values (:func:`allowed_values`), or ``None``.

    Returns:
        a :class:`ValidationReport`; problems sorted by line number.

    Raises:
        SegprepError: the manifest itself cannot be read.
    """
    root = Path(root) if root is not None else default_root(path)
    problems: list[Problem] = []
    items = []
    seen: dict[str, int] = {}
    n = 0
    bad_lines: set[int] = set()
    allowed_bytes = None if allowed is None else np.asarray(allowed, bool).tobytes()
    for i, text in iter_lines(path):
        n = i
        try:
            rec = parse_line(text)
        except ValueError as exc:
            problems.append(Problem(i, str(exc)))
            bad_lines.add(i)
            continue
        if rec.fpath_img in seen:
            problems.append(Problem(i, f"duplicate image {rec.fpath_img} (first on line "
                                       f"{seen[rec.fpath_img]})"))
            bad_lines.add(i)
        else:
            seen[rec.fpath_img] = i
        items.append((i, rec.fpath_img, rec.fpath_segm, rec.width, rec.height, str(root),
                      allowed_bytes))
    if n == 0:
        problems.append(Problem(0, "empty manifest"))
    if allowed is None:  # header reads only
        n_jobs = resolve_jobs(jobs, len(items), work=len(items), serial_below=SERIAL_BELOW)
    else:
        n_jobs = decode_jobs(jobs, [Record("", "", it[3], it[4]) for it in items], len(items))
    for out in run_batch(_check_chunk, chunked(items, n_jobs), jobs=n_jobs, desc="validate",
                         quiet=quiet, unit="chunk", prefer="processes"):
        results = out.value if out.ok else [(it[0], [out.error or "unexpected error"])
                                            for it in out.item]
        for line, msgs in results:
            for m in msgs:
                problems.append(Problem(line, m))
                bad_lines.add(line)
    problems.sort(key=lambda p: p.line)
    return ValidationReport(str(path), n, n - len(bad_lines), problems)


# ----------------------------------------------------------------------------------- CSAIL export
def csail_lut(ignore_index: int = 255, num_classes: int | None = None) -> np.ndarray:
    """``(256,)`` int16 LUT trainId → CSAIL mask value: ``v + 1``, ``ignore_index`` → 0, and -1
    for values that have no 8-bit CSAIL value (255 when it is not the ignore index) or are
    ``>= num_classes``.

    CSAIL's loader (``mit_semseg/dataset.py``, ``segm_transform``) reads the mask and subtracts 1,
    so 0 becomes its ignore label -1 and ``v + 1`` becomes class ``v`` again.
    """
    lut = np.arange(1, 257, dtype=np.int16)
    lut[lut > 255] = -1
    if num_classes is not None:
        lut[num_classes:] = -1
    if 0 <= ignore_index < 256:
        lut[ignore_index] = 0
    return lut


def csail_targets(records: Sequence[Record], root: PathLike, outdir: PathLike
                  ) -> list[tuple[Path, Path]]:
    """``(source mask, exported mask)`` of each record.

    The exported mask is ``outdir/<fpath_segm>`` when every ``fpath_segm`` is relative and stays
    below the root (no ``..``); otherwise ``outdir/<path under the masks' common folder>``, so that
    nothing is ever written outside ``outdir``. Its suffix is ``.png`` (a GIF or TIFF mask is
    exported as a PNG of that name: ``a_mask.gif`` → ``a_mask.png``).

    Raises:
        SegprepError: an exported path would be a source mask itself (``outdir`` is where the
            masks already are), or two masks would be written to one path.
    """
    outdir = Path(os.path.abspath(outdir))
    srcs = [Path(os.path.abspath(resolve(r.fpath_segm, root))) for r in records]
    plain = all(not os.path.isabs(r.fpath_segm)
                and ".." not in Path(os.path.normpath(r.fpath_segm)).parts for r in records)
    if plain:
        rels = [Path(os.path.normpath(r.fpath_segm)) for r in records]
    else:
        common = Path(os.path.commonpath([str(s.parent) for s in srcs]))
        rels = [s.relative_to(common) for s in srcs]
    # the exported masks are PNGs whatever the source format (a Carvana *_mask.gif)
    rels = [rel if rel.suffix.lower() == ".png" else rel.with_suffix(".png") for rel in rels]
    pairs = [(s, outdir / rel) for s, rel in zip(srcs, rels)]
    src_set = {os.path.realpath(s) for s in srcs}
    seen: dict[Path, Path] = {}
    for s, d in pairs:
        if os.path.realpath(d) in src_set:
            raise SegprepError(d, "export would overwrite a source mask; choose another OUTDIR")
        if d in seen and seen[d] != s:
            raise SegprepError(d, f"two masks would be exported here ({seen[d]} and {s})")
        seen[d] = s
    return pairs


def _export_job(item: tuple[str, str, bytes, bool]) -> bool:
    """Write one CSAIL mask; returns True when skipped (exists)."""
    from segprep.io import read_label, write_png

    src, dst, lut_bytes, overwrite = item
    if not overwrite and os.path.exists(dst):
        return True
    arr, _pal = read_label(src)
    if arr.ndim != 2:
        raise SegprepError(src, f"mask has {arr.shape[2]} channels, expected a single-channel mask")
    if arr.dtype != np.uint8:
        raise SegprepError(src, f"mask is {arr.dtype}, expected 8-bit trainIds")
    lut = np.frombuffer(lut_bytes, np.int16)
    hist = histogram(arr)
    bad = np.flatnonzero((hist > 0) & (lut < 0))
    if bad.size:
        raise SegprepError(src, "value(s) with no CSAIL equivalent (>= --num-classes, or 255 "
                                f"when not the ignore index): {', '.join(map(str, bad[:8]))}")
    write_png(dst, lut.astype(np.uint8)[arr])
    return False


def export_csail_jobs(records: Sequence[Record], root: PathLike, outdir: PathLike,
                      ignore_index: int = 255, num_classes: int | None = None,
                      overwrite: bool = False) -> tuple[list[tuple[str, str, bytes, bool]],
                                                        list[Record]]:
    """Plan a CSAIL export: the per-mask jobs (for :func:`segprep.io.run_batch` with
    :func:`export_csail_job`) and the records of the exported manifest (paths relative to
    ``outdir``, images pointing at the original files)."""
    lut = csail_lut(ignore_index, num_classes).tobytes()
    pairs = csail_targets(records, root, outdir)
    jobs = [(str(s), str(d), lut, overwrite) for s, d in pairs]
    out = [Record(relative_to_root(resolve(r.fpath_img, root), outdir),
                  relative_to_root(d, outdir), r.width, r.height, r.extra)
           for r, (_s, d) in zip(records, pairs)]
    return jobs, out


export_csail_job = _export_job
