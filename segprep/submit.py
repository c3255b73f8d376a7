"""Package predictions for a benchmark server, validating them first so the upload is accepted.

Cityscapes (pixel-level semantic labeling, https://www.cityscapes-dataset.com/submit/): one
prediction per image of the split, named ``<city>_<seq>_<frame>*.png`` (matched by that prefix, as
cityscapesScripts' ``getPrediction``), 2048×1024, single-channel 8-bit (PNG mode ``L``), pixel
values labelIds (0..33; ``license plate`` -1 is not a value). trainIds predictions are converted
with :attr:`segprep.class_maps.ClassMap.train_id_to_id` (255 → 0 ``unlabeled``) into the zip,
never into the prediction folder.

BDD100K semantic segmentation: one ``<image stem>.png`` per test image, 1280×720, single-channel
8-bit trainIds (0..18, 255).

Every violation is listed (one line each, naming the file); the zip is written only when there are
none, atomically (temp file + rename), entries stored flat (``<name>.png``) and uncompressed (PNG
is compressed already).

Palette PNGs are refused: a server reads their *indices*, whatever colors the palette shows, which
is the classic surprise (a prediction that looks right and scores 0). ``allow_palette=True``
accepts them and writes their indices as an 8-bit gray PNG, saying so.
"""

from __future__ import annotations

import os
import tempfile
import time
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from segprep import class_maps
from segprep.class_maps import IGNORE_INDEX, ClassMap
from segprep.errors import SegprepError
from segprep.evaluate import frame_prefix, thread_map, value_ranges
from segprep.evaluate_kernels import PNG_SIGNATURE, decode_label_png
from segprep.io import encode_png, find_files

PathLike = str | os.PathLike

CITYSCAPES_SIZE = (2048, 1024)
BDD100K_SIZE = (1280, 720)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


@dataclass
class SubmitReport:
    """Outcome of a submission check.

    Attributes:
        expected: predictions the split needs.
        found: prediction files matched to an image.
        violations: one line per problem (``<file>: <what is wrong>``); empty means valid.
        notes: things done that the user should know (conversions, palettes read as indices).
        written: the zip written, or None.
        seconds: wall time.
    """

    expected: int = 0
    found: int = 0
    violations: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    written: Path | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.violations


@dataclass
class _Check:
    """Check one prediction file; returns ``(zip entry name, bytes to store, note)``."""

    size: tuple[int, int]
    allowed: np.ndarray  # (256,) bool
    valid_text: str
    lut: np.ndarray | None  # conversion applied after the check (trainIds -> labelIds)
    allow_palette: bool
    kind: str  # "labelIds" / "trainIds"

    def __call__(self, path: Path) -> tuple[str, bytes, str | None]:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise SegprepError(path, f"cannot read: {exc.strerror or exc}") from None
        if not data.startswith(PNG_SIGNATURE):
            raise SegprepError(path, "not a PNG file")
        if len(data) < 33 or data[12:16] != b"IHDR":
            raise SegprepError(path, "corrupt PNG (no IHDR chunk)")
        width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
        depth, color = data[24], data[25]
        problems = []
        if (width, height) != self.size:
            problems.append(f"size {width}x{height}, expected {self.size[0]}x{self.size[1]}")
        kinds = {0: "gray", 2: "RGB", 3: "palette", 4: "gray+alpha", 6: "RGBA"}
        if color in (2, 4, 6):
            problems.append(f"{kinds[color]} image; expected single-channel 8-bit (mode L)")
        elif depth != 8:
            problems.append(f"{depth}-bit {kinds.get(color, 'image')}; expected 8-bit "
                            "single-channel (mode L)")
        elif color == 3 and not self.allow_palette:
            problems.append("palette PNG: the server reads its indices, not the colors shown; "
                            f"save the {self.kind} as 8-bit gray (mode L), or pass "
                            "--allow-palette to submit the indices")
        if problems:
            raise SegprepError(path, "; ".join(problems))
        decoded = decode_label_png(data, str(path))
        if decoded is None:  # interlaced 8-bit: let Pillow decode it
            from segprep.evaluate import read_label_map

            arr = read_label_map(path)
        else:
            arr = decoded[0]
        counts = np.bincount(arr.ravel(), minlength=256)
        bad = np.flatnonzero((counts > 0) & ~self.allowed)
        if bad.size:
            vals = ", ".join(f"{int(v)} ({int(counts[v])} px)" for v in bad[:8])
            more = f", … ({bad.size - 8} more)" if bad.size > 8 else ""
            raise SegprepError(path, f"invalid {self.kind} value(s) {vals}{more}; valid: "
                                     f"{self.valid_text}")
        note = None
        if self.lut is not None:
            out = encode_png(self.lut[arr])
        elif color == 3:
            out = encode_png(np.ascontiguousarray(arr, np.uint8))
            note = "palette PNG: indices written as 8-bit gray"
        else:
            out = data
        return path.name, out, note


def _write_zip(out: PathLike, entries: Sequence[tuple[str, bytes]]) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    try:
        with os.fdopen(fd, "wb") as fh, zipfile.ZipFile(fh, "w", zipfile.ZIP_STORED) as zf:
            for name, data in entries:
                info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
                info.external_attr = 0o644 << 16
                zf.writestr(info, data)
        os.replace(tmp, out)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return out


def _run(report: SubmitReport, pairs: list[Path], check: _Check, out: PathLike | None,
         jobs: int | None, quiet: bool) -> SubmitReport:
    entries: list[tuple[str, bytes]] = []
    palettes = 0
    for outcome in thread_map(check, pairs, jobs=jobs, desc="check", quiet=quiet, unit="file"):
        if outcome.ok:
            name, data, note = outcome.value
            entries.append((name, data))
            palettes += note is not None
        else:
            report.violations.append(outcome.error or "")
    if palettes:
        report.notes.append(f"{palettes} palette PNG(s): their indices are submitted as 8-bit gray")
    if check.lut is not None and entries:
        report.notes.append(f"{len(entries)} trainIds prediction(s) converted to labelIds in the "
                            "zip (255 -> 0 unlabeled)")
    if not report.violations and out is not None:
        report.written = _write_zip(out, sorted(entries))
    return report


def _match(keys: list[str], files: list[Path], report: SubmitReport, what: str,
           prefix: bool) -> list[Path]:
    """Pair each key with exactly one file (by name prefix, or by stem); record violations for
    missing, duplicate and extra files."""
    names = sorted(files, key=lambda p: p.name)
    just = [p.name for p in names]
    used: set[Path] = set()
    pairs: list[Path] = []
    if prefix:
        import bisect

        for key in keys:
            i = bisect.bisect_left(just, key)
            hits = []
            while i < len(just) and just[i].startswith(key):
                if just[i] == key or just[i][len(key)] in "_.":
                    hits.append(names[i])
                i += 1
            _pick(key, hits, what, report, used, pairs)
    else:
        by_stem: dict[str, list[Path]] = {}
        for p in names:
            by_stem.setdefault(p.name.rsplit(".", 1)[0], []).append(p)
        for key in keys:
            _pick(key, by_stem.get(key, []), what, report, used, pairs)
    extra = [p for p in names if p not in used]
    for p in extra[:20]:
        report.violations.append(f"{p}: matches no {what} image of the split (remove it)")
    if len(extra) > 20:
        report.violations.append(f"… and {len(extra) - 20} more files that match no image")
    return pairs


def _pick(key: str, hits: list[Path], what: str, report: SubmitReport, used: set[Path],
          pairs: list[Path]) -> None:
    if not hits:
        report.violations.append(f"{key}: no prediction for this {what} image")
    elif len(hits) > 1:
        report.violations.append(f"{key}: {len(hits)} predictions "
                                 f"({', '.join(h.name for h in hits[:4])}); expected exactly one")
        used.update(hits)
    else:
        used.add(hits[0])
        pairs.append(hits[0])


def cityscapes_frames(root: PathLike, split: str) -> list[str]:
    """``<city>_<seq>_<frame>`` of every image of ``split``: from ``ROOT/leftImg8bit/<split>``,
    or from ``ROOT/gtFine/<split>`` where the images are absent.

    Raises:
        SegprepError: neither folder holds frames of the split.
    """
    root = Path(root)
    img = root / "leftImg8bit" / split
    if img.is_dir():
        files = find_files(img, "_leftImg8bit.png")
        if files:
            return sorted({frame_prefix(f) for f in files})
    gt = root / "gtFine" / split
    if gt.is_dir():
        files = [f for f in find_files(gt, "") if "_gtFine_" in f.name]
        if files:
            return sorted({frame_prefix(f) for f in files})
    raise SegprepError(root, f"no images of split {split!r} (looked in leftImg8bit/{split} and "
                             f"gtFine/{split})")


def submit_cityscapes(pred_dir: PathLike, root: PathLike, out: PathLike | None, *,
                      split: str = "test", pred_ids: str = "labelIds",
                      size: tuple[int, int] = CITYSCAPES_SIZE, allow_palette: bool = False,
                      class_map: str | ClassMap = "cityscapes", jobs: int | None = None,
                      quiet: bool = False) -> SubmitReport:
    """Validate Cityscapes predictions and zip them for the server (see the module docstring).

    Args:
        pred_dir: folder of predictions (searched recursively; every file counts).
        root: Cityscapes root (``leftImg8bit/<split>`` or ``gtFine/<split>`` lists the images).
        out: zip to write (None: check only).
        split: ``test`` (1525 images) or another split.
        pred_ids: ``labelIds`` or ``trainIds`` (converted to labelIds in the zip).
        size: expected ``(width, height)``.
        allow_palette: accept palette PNGs (their indices are submitted).

    Returns:
        a :class:`SubmitReport`; ``written`` is set only when there was no violation.

    Raises:
        SegprepError: bad ``pred_ids``, missing folders, no images of the split.
    """
    t0 = time.perf_counter()
    if pred_ids not in ("labelIds", "trainIds"):
        raise SegprepError("--pred-ids", f"must be labelIds or trainIds, not {pred_ids!r}")
    cmap = class_maps.load(class_map) if isinstance(class_map, str) else class_map
    frames = cityscapes_frames(root, split)
    report = SubmitReport(expected=len(frames))
    allowed = np.zeros(256, bool)
    if pred_ids == "trainIds":
        tids = cmap.train_ids[cmap.train_ids >= 0]
        allowed[np.unique(tids)] = True
        allowed[IGNORE_INDEX] = True
        lut = np.ascontiguousarray(cmap.train_id_to_id)
    else:
        allowed[cmap.valid_ids] = True
        lut = None
    valid = f"{pred_ids} {value_ranges(np.flatnonzero(allowed))}"
    files = find_files(pred_dir, "")
    pairs = _match(frames, files, report, f"{split}", prefix=True)
    report.found = len(pairs)
    check = _Check(size, allowed, valid, lut, allow_palette, pred_ids)
    report = _run(report, pairs, check, out, jobs, quiet)
    report.seconds = time.perf_counter() - t0
    return report


def submit_bdd100k(pred_dir: PathLike, images: PathLike, out: PathLike | None, *,
                   size: tuple[int, int] = BDD100K_SIZE, allow_palette: bool = False,
                   class_map: str | ClassMap = "bdd100k", jobs: int | None = None,
                   quiet: bool = False) -> SubmitReport:
    """Validate BDD100K trainId predictions (one ``<image stem>.png`` per image of ``images``)
    and zip them.

    Raises:
        SegprepError: missing folders, no images.
    """
    t0 = time.perf_counter()
    cmap = class_maps.load(class_map) if isinstance(class_map, str) else class_map
    imgs = [f for f in find_files(images, "") if f.suffix.lower() in IMAGE_SUFFIXES]
    if not imgs:
        raise SegprepError(images, "no images (.jpg/.png)")
    stems = sorted({f.name.rsplit(".", 1)[0] for f in imgs})
    report = SubmitReport(expected=len(stems))
    allowed = np.zeros(256, bool)
    allowed[: cmap.num_classes] = True
    allowed[IGNORE_INDEX] = True
    files = find_files(pred_dir, "")
    pairs = _match(stems, files, report, "test", prefix=False)
    report.found = len(pairs)
    check = _Check(size, allowed, f"trainIds 0-{cmap.num_classes - 1}, 255", None, allow_palette,
                   "trainIds")
    report = _run(report, pairs, check, out, jobs, quiet)
    report.seconds = time.perf_counter() - t0
    return report


def parse_size(text: str) -> tuple[int, int]:
    """``"2048x1024"`` → ``(2048, 1024)``.

    Raises:
        SegprepError: not ``WxH`` with positive integers.
    """
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise SegprepError("--size", f"expected WxH (e.g. 2048x1024), got {text!r}") from None
    if w <= 0 or h <= 0:
        raise SegprepError("--size", f"expected positive sizes, got {text!r}")
    return w, h
