"""Package predictions for a benchmark server, validating them first so the upload is accepted.

Cityscapes (pixel-level semantic labeling, https://www.cityscapes-dataset.com/submit/): one
prediction per image of the split, matched to its frame by
:func:`segprep.datasets.cityscapes.match_predictions` (the rule ``evaluate`` uses), 2048×1024,
single-channel 8-bit (PNG mode ``L``), pixel values labelIds (0..33; ``license plate`` -1 is not
a value). trainIds predictions are converted with
:attr:`segprep.class_maps.ClassMap.train_id_to_id` (255 → 0 ``unlabeled``) into the zip, never
into the prediction folder. ``pred_ids="auto"`` (the CLI default) decides from the values of
all predictions which of the two they hold (:mod:`segprep.evaluation.pred_ids`), says so in the
report's notes, and refuses when the files disagree or the evidence is unclear.

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
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from segprep import class_maps
from segprep.class_maps import IGNORE_INDEX, ClassMap
from segprep.datasets import bdd100k as bdd_data
from segprep.datasets import cityscapes as cs_data
from segprep.datasets.generic import IMAGE_EXTENSIONS, Match, match_by_stem, stem
from segprep.errors import SegprepError
from segprep.evaluation.kernels import decode_label_png
from segprep.evaluation.label_maps import read_label_map, value_ranges
from segprep.evaluation.pred_ids import decide, valid_values
from segprep.io import encode_png, find_files, png_header, read_bytes, run_batch, write_zip

PathLike = str | os.PathLike

PRED_IDS = ("auto", "labelIds", "trainIds")


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

    def read(self, path: Path) -> tuple[bytes, np.ndarray, int]:
        """``(file bytes, decoded (H, W) values, PNG color type)`` after the format checks.

        Raises:
            SegprepError: every format problem of the file, in one line.
        """
        data = read_bytes(path)
        h = png_header(data, path)
        problems = []
        if (h.width, h.height) != self.size:
            problems.append(f"size {h.width}x{h.height}, expected {self.size[0]}x{self.size[1]}")
        kinds = {0: "gray", 2: "RGB", 3: "palette", 4: "gray+alpha", 6: "RGBA"}
        if h.color_type in (2, 4, 6):
            problems.append(f"{kinds[h.color_type]} image; expected single-channel 8-bit "
                            "(mode L)")
        elif h.bit_depth != 8:
            problems.append(f"{h.bit_depth}-bit {kinds.get(h.color_type, 'image')}; expected "
                            "8-bit single-channel (mode L)")
        elif h.color_type == 3 and not self.allow_palette:
            problems.append("palette PNG: the server reads its indices, not the colors shown; "
                            f"save the {self.kind} as 8-bit gray (mode L), or pass "
                            "--allow-palette to submit the indices")
        if problems:
            raise SegprepError(path, "; ".join(problems))
        decoded = decode_label_png(data, str(path))
        arr = read_label_map(path) if decoded is None else decoded[0]  # None: interlaced
        return data, arr, h.color_type

    def histogram(self, path: Path) -> np.ndarray:
        """``(256,)`` histogram of a prediction's values (for ``--pred-ids auto``)."""
        return np.bincount(self.read(path)[1].ravel(), minlength=256)

    def __call__(self, path: Path) -> tuple[str, bytes, str | None]:
        data, arr, color = self.read(path)
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


def _run(report: SubmitReport, pairs: list[Path], check: _Check, out: PathLike | None,
         jobs: int | None, quiet: bool) -> SubmitReport:
    entries: list[tuple[str, bytes]] = []
    palettes = 0
    for outcome in run_batch(check, pairs, jobs=jobs, desc="check", quiet=quiet, unit="file"):
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
        report.written = write_zip(out, sorted(entries))
    return report


def _record(match: Match, what: str, report: SubmitReport) -> list[Path]:
    """The matched files, each problem of the match recorded as a violation line."""
    for key in match.missing:
        report.violations.append(f"{key}: no prediction for this {what} image")
    for key, hits in match.multiple.items():
        report.violations.append(f"{key}: {len(hits)} predictions "
                                 f"({', '.join(h.name for h in hits[:4])}); expected exactly one")
    for p in match.extra[:20]:
        report.violations.append(f"{p}: matches no {what} image of the split (remove it)")
    if len(match.extra) > 20:
        report.violations.append(f"… and {len(match.extra) - 20} more files that match no image")
    return [f for f in match.files if f is not None]


def _reading(pred_ids: str, cmap: ClassMap) -> tuple[np.ndarray, np.ndarray | None]:
    """``(allowed values, trainIds -> labelIds LUT or None)`` of Cityscapes predictions."""
    allowed = valid_values(cmap, pred_ids)
    if pred_ids == "trainIds":
        return allowed, np.ascontiguousarray(cmap.train_id_to_id)
    return allowed, None


def submit_cityscapes(pred_dir: PathLike, root: PathLike, out: PathLike | None, *,
                      split: str = "test", pred_ids: str = "auto",
                      size: tuple[int, int] = cs_data.SIZE, allow_palette: bool = False,
                      class_map: str | ClassMap = "cityscapes", jobs: int | None = None,
                      quiet: bool = False) -> SubmitReport:
    """Validate Cityscapes predictions and zip them for the server (see the module docstring).

    Args:
        pred_dir: folder of predictions (searched recursively; every file counts).
        root: Cityscapes root (``leftImg8bit/<split>`` or ``gtFine/<split>`` lists the images).
        out: zip to write (None: check only).
        split: ``test`` (1525 images) or another split.
        pred_ids: ``labelIds``, ``trainIds`` (converted to labelIds in the zip) or ``auto``
            (decided from all predictions' values; the decision is in ``report.notes``).
        size: expected ``(width, height)``.
        allow_palette: accept palette PNGs (their indices are submitted).

    Returns:
        a :class:`SubmitReport`; ``written`` is set only when there was no violation.

    Raises:
        SegprepError: bad ``pred_ids``, missing folders, no images of the split, or ``auto``
            that cannot decide (naming ``--pred-ids``).
    """
    t0 = time.perf_counter()
    if pred_ids not in PRED_IDS:
        raise SegprepError("--pred-ids", f"must be one of {', '.join(PRED_IDS)}, not {pred_ids!r}")
    cmap = class_maps.load(class_map) if isinstance(class_map, str) else class_map
    frames = cs_data.split_frames(root, split)
    report = SubmitReport(expected=len(frames))
    pairs = _record(cs_data.match_predictions(frames, find_files(pred_dir, "")), split, report)
    report.found = len(pairs)
    if pred_ids == "auto":
        probe = _Check(size, np.ones(256, bool), "", None, allow_palette, "predictions")
        hists, names = [], []
        for outcome in run_batch(probe.histogram, pairs, jobs=jobs, desc="read", quiet=quiet):
            if outcome.ok:
                hists.append(outcome.value)
                names.append(str(outcome.item))
            else:
                report.violations.append(outcome.error or "")
        if report.violations:
            report.seconds = time.perf_counter() - t0
            return report
        decision = decide(hists, names, cmap)
        report.notes.append(decision.reason)
        pred_ids = decision.kind
    allowed, lut = _reading(pred_ids, cmap)
    valid = f"{pred_ids} {value_ranges(np.flatnonzero(allowed))}"
    check = _Check(size, allowed, valid, lut, allow_palette, pred_ids)
    report = _run(report, pairs, check, out, jobs, quiet)
    report.seconds = time.perf_counter() - t0
    return report


def submit_bdd100k(pred_dir: PathLike, images: PathLike, out: PathLike | None, *,
                   size: tuple[int, int] = bdd_data.SIZE, allow_palette: bool = False,
                   class_map: str | ClassMap = "bdd100k", jobs: int | None = None,
                   quiet: bool = False) -> SubmitReport:
    """Validate BDD100K trainId predictions (one ``<image stem>.png`` per image of ``images``)
    and zip them.

    Raises:
        SegprepError: missing folders, no images.
    """
    t0 = time.perf_counter()
    cmap = class_maps.load(class_map) if isinstance(class_map, str) else class_map
    imgs = [f for f in find_files(images, "") if f.name.lower().endswith(IMAGE_EXTENSIONS)]
    if not imgs:
        raise SegprepError(images, "no images (.jpg/.png)")
    stems = sorted({stem(f) for f in imgs})
    report = SubmitReport(expected=len(stems))
    allowed = np.zeros(256, bool)
    allowed[: cmap.num_classes] = True
    allowed[IGNORE_INDEX] = True
    pairs = _record(match_by_stem([(s,) for s in stems], find_files(pred_dir, "")), "test",
                    report)
    report.found = len(pairs)
    check = _Check(size, allowed, f"trainIds 0-{cmap.num_classes - 1}, 255", None, allow_palette,
                   "trainIds")
    report = _run(report, pairs, check, out, jobs, quiet)
    report.seconds = time.perf_counter() - t0
    return report
