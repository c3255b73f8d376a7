"""CamVid labels → 32-class or SegNet 11-class index masks.

Inputs:

* ``color``: the original 32-class color labels ``<frame>_L.png`` (palette: ``class_maps/camvid32.csv``,
  or a ``label_colors.txt`` / ``class_dict.csv`` given with ``palette_file``; colors are matched to
  the 32 classes by name);
* ``index``: SegNet-style index masks (``CamVid/trainannot/*.png``: 0 Sky … 10 Bicyclist, 11 void).

Outputs (``<frame>.png``, the SegNet naming: ``0016E5_07959_L.png`` → ``0016E5_07959.png``):

* ``classes=32``: the index of the class in the official alphabetical order (Animal 0 … Wall 31,
  as ``camvid-32_names.txt`` and fastai's ``codes.txt``); Void (index 30) → the void value.
* ``classes=11``: the SegNet classes (0 Sky, 1 Building, 2 Pole, 3 Road, 4 Pavement, 5 Tree,
  6 SignSymbol, 7 Fence, 8 Car, 9 Pedestrian, 10 Bicyclist); the 32 → 11 grouping is a table in
  ``class_maps/camvid11_<mapping>.csv``: ``segnet`` (default: reproduces SegNet's released labels),
  ``mseg`` (MSeg's strict one-to-one table) or ``mathworks`` (MathWorks' example).

The void value is 255 (``ignore_index``) unless ``void_id`` is given (11 reproduces SegNet's files;
30 the 32-class index masks of fastai). ``size`` resizes with nearest neighbour at pixel centres
(source pixel ``floor((i + 0.5) * in / out)``, as Pillow's ``NEAREST`` and torch's
``nearest-exact``).
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from segprep import class_maps
from segprep.class_maps import IGNORE_INDEX, ClassMap
from segprep.convert.colors import decode_colors
from segprep.datasets.camvid import SEGNET_VOID, label_files, output_name
from segprep.errors import SegprepError
from segprep.io import read_label, refuse_overwriting_inputs, write_png

INPUTS = ("color", "index")
MAPPINGS = ("segnet", "mseg", "mathworks")
CLASSES = (32, 11)


# ----------------------------------------------------------------------------------- tables
def read_palette_file(path: str | os.PathLike) -> list[tuple[str, tuple[int, int, int]]]:
    """Read a CamVid palette: ``label_colors.txt`` (``R G B<whitespace>Name``) or
    ``class_dict.csv`` (header ``name,r,g,b``; spaces after commas allowed).

    Returns:
        ``[(name, (r, g, b)), ...]`` in file order.

    Raises:
        SegprepError: unreadable file, a malformed line, or a value outside 0..255.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise SegprepError(path, f"cannot read: {exc.strerror or exc}") from None
    rows: list[tuple[str, tuple[int, int, int]]] = []
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    is_csv = path.suffix.lower() == ".csv" or (lines and "," in lines[0])
    try:
        if is_csv:
            reader = csv.DictReader(lines, skipinitialspace=True)
            fields = {(f or "").strip().lower(): f for f in reader.fieldnames or []}
            if not {"name", "r", "g", "b"} <= set(fields):
                raise SegprepError(path, "expected a header name,r,g,b (class_dict.csv)")
            for row in reader:
                rgb = tuple(int(str(row[fields[c]]).strip()) for c in "rgb")
                rows.append((str(row[fields["name"]]).strip(), rgb))  # type: ignore[arg-type]
        else:
            for n, ln in enumerate(lines, 1):
                parts = ln.split()
                if len(parts) < 4:
                    raise SegprepError(f"{path}:{n}", f"expected 'R G B Name', got {ln!r}")
                rows.append((" ".join(parts[3:]), (int(parts[0]), int(parts[1]), int(parts[2]))))
    except ValueError as exc:
        raise SegprepError(path, f"bad number: {exc}") from None
    for name, rgb in rows:
        if not all(0 <= v <= 255 for v in rgb):
            raise SegprepError(path, f"{name}: color out of range {rgb}")
    if not rows:
        raise SegprepError(path, "no classes")
    return rows


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


@functools.lru_cache(maxsize=16)
def class_map_for(classes: int = 32, mapping: str = "segnet", palette_file: str | None = None
                  ) -> ClassMap:
    """The class map that decodes 32-class color labels: ids = the 32 classes, trainIds = the
    output values (32: the class index, Void 255; 11: the mapping's 11-class index, void 255).

    Args:
        classes: 32 or 11.
        mapping: one of :data:`MAPPINGS` (11 classes only).
        palette_file: optional ``label_colors.txt`` / ``class_dict.csv``; its colors replace the
            table's, matched by class name (case and punctuation ignored).

    Raises:
        SegprepError: unknown classes/mapping, or a palette file whose names are not the 32
            CamVid classes.
    """
    if classes not in CLASSES:
        raise SegprepError("--classes", f"must be 32 or 11, not {classes}")
    if mapping not in MAPPINGS:
        raise SegprepError("--mapping", f"unknown mapping {mapping!r} (choose from "
                                        f"{', '.join(MAPPINGS)})")
    cm = class_maps.load("camvid32" if classes == 32 else f"camvid11_{mapping}")
    if palette_file is None:
        return cm
    rows = read_palette_file(palette_file)
    by_name = {_norm(n): rgb for n, rgb in rows}
    known = {_norm(n) for n in cm.names}
    extra = [n for n, _ in rows if _norm(n) not in known]
    missing = [n for n in cm.names if _norm(n) not in by_name]
    if extra or missing or len(by_name) != len(rows):
        what = (f"unknown class(es) {', '.join(extra)}" if extra else
                f"missing class(es) {', '.join(missing)}" if missing else "duplicate class names")
        raise SegprepError(palette_file, f"not a CamVid 32-class palette: {what}")
    colors = np.array([by_name[_norm(n)] for n in cm.names], np.uint8)
    if len({tuple(c) for c in colors.tolist()}) != len(colors):
        raise SegprepError(palette_file, "two classes share a color")
    return dataclasses.replace(cm, colors=colors, source=f"{cm.source} Colors: {palette_file}.")


def check_void_id(classes: int, void_id: int) -> int:
    """Validate ``--void-id``: 0..255 and not the value of a class of the output.

    Raises:
        SegprepError: out of range or clashing with a class.
    """
    if not 0 <= void_id <= 255:
        raise SegprepError("--void-id", f"must be in 0..255, not {void_id}")
    cm = class_maps.load("camvid32" if classes == 32 else "camvid11")
    used = set(int(t) for t in cm.train_ids if t != IGNORE_INDEX)
    if void_id in used:
        raise SegprepError("--void-id", f"{void_id} is the value of a class "
                                        f"({cm.train_names[void_id]}); choose a free value "
                                        f"(e.g. {SEGNET_VOID if classes == 11 else 30})")
    return void_id


def resize_nearest(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of a label mask at pixel centres.

    Args:
        mask: ``(H, W)`` array.
        size: ``(width, height)`` of the result.

    Returns:
        ``(height, width)`` array of the same dtype; output pixel ``(i, j)`` is input pixel
        ``(floor((i + 0.5) * H / height), floor((j + 0.5) * W / width))``.
    """
    w, h = size
    H, W = mask.shape[:2]
    if (W, H) == (w, h):
        return mask
    rows = np.minimum(((np.arange(h) + 0.5) * H / h).astype(np.int64), H - 1)
    cols = np.minimum(((np.arange(w) + 0.5) * W / w).astype(np.int64), W - 1)
    return np.ascontiguousarray(mask[rows][:, cols])


# ----------------------------------------------------------------------------------- convert
def convert_array(image: np.ndarray, *, classes: int = 11, mapping: str = "segnet",
                  input: str = "color", void_id: int = IGNORE_INDEX,
                  size: tuple[int, int] | None = None, palette_colors: np.ndarray | None = None,
                  palette_file: str | None = None, unknown: str = "error",
                  where: str | None = None) -> np.ndarray:
    """Convert one CamVid label already in memory.

    Args:
        image: ``color``: ``(H, W, 3|4)`` uint8 RGB(A) (or palette indices with
            ``palette_colors``); ``index``: ``(H, W)`` uint8 SegNet indices 0..11.
        classes, mapping, void_id, size, palette_file: see the module docstring.
        unknown: ``error`` or ``ignore`` (unknown colors → void).

    Returns:
        ``(H, W)`` (or resized) uint8 mask.

    Raises:
        SegprepError: bad input (not a color / index image, unknown colors, indices > 11).
    """
    import cv2

    where = where or "image"
    if input == "color":
        cm = class_map_for(classes, mapping, palette_file)
        ids, _ = decode_colors(image, cm, level="id", palette_colors=palette_colors,
                               unknown=unknown, resolve_shared="none",  # type: ignore[arg-type]
                               where=where)
        lut = cm.id_to_train_id.copy()
        lut[lut == IGNORE_INDEX] = void_id
        out = cv2.LUT(ids, lut)
    elif input == "index":
        if classes != 11:
            raise SegprepError("--input", "index masks hold SegNet's 11 classes: use --classes 11")
        if image.ndim != 2 or image.dtype != np.uint8:
            raise SegprepError(where, f"expected a single-channel 8-bit index mask (0-10, 11 void), "
                                      f"got shape {image.shape} {image.dtype}")
        if image.size and int(image.max()) > SEGNET_VOID:
            vals, counts = np.unique(image[image > SEGNET_VOID], return_counts=True)
            raise SegprepError(where, f"index {int(vals[0])} ({int(counts[0])} px) is not a SegNet "
                                      f"class (0-10, 11 void)")
        lut = np.arange(256, dtype=np.uint8)
        lut[SEGNET_VOID] = void_id
        out = cv2.LUT(image, lut)
    else:
        raise SegprepError("--input", f"unknown input {input!r} (choose from color, index)")
    return resize_nearest(out, size) if size else out


@dataclass(frozen=True)
class CamvidJob:
    """One label to convert (picklable)."""

    src: str
    out: str
    classes: int = 11
    mapping: str = "segnet"
    input: str = "color"
    void_id: int = IGNORE_INDEX
    size: tuple[int, int] | None = None
    palette_file: str | None = None
    unknown: str = "error"
    overwrite: bool = False

    @property
    def where(self) -> str:
        """The input file, as error lines name it."""
        return self.src


@dataclass
class CamvidResult:
    """What :func:`convert_file` did."""

    skipped: bool = False
    shape: tuple[int, ...] = ()


def make_jobs(src: str | os.PathLike, out: str | os.PathLike, **kwargs) -> list[CamvidJob]:
    """One :class:`CamvidJob` per label under ``src``; outputs mirror its sub-folders.

    Keyword arguments go to :class:`CamvidJob`.

    Raises:
        SegprepError: nothing found, two inputs writing the same output, or an output that
            would replace an input (``convert in in --input index``).
    """
    out = Path(out)
    base, files = label_files(src, kwargs.get("input", "color"), exclude=out)
    jobs: list = []
    seen: dict[str, str] = {}
    for f in files:
        target = str(out / f.parent.relative_to(base) / output_name(f))
        if target in seen:
            raise SegprepError(f, f"writes the same output as {seen[target]} ({target})")
        seen[target] = str(f)
        jobs.append(CamvidJob(str(f), target, **kwargs))
    refuse_overwriting_inputs(files, [j.out for j in jobs])
    return jobs


def convert_file(job: CamvidJob) -> CamvidResult:
    """Convert one label file and write ``job.out`` atomically (skipped if it exists, unless
    ``job.overwrite``).

    Raises:
        SegprepError: unreadable or truncated file, wrong mode, unknown color or index.
    """
    if not job.overwrite and os.path.exists(job.out):
        return CamvidResult(skipped=True)
    image, pal_colors = read_label(job.src)
    if job.input == "index" and pal_colors is not None:
        pal_colors = None  # a palette-mode index mask: its indices are the classes
    out = convert_array(image, classes=job.classes, mapping=job.mapping, input=job.input,
                        void_id=job.void_id, size=job.size, palette_colors=pal_colors,
                        palette_file=job.palette_file, unknown=job.unknown, where=job.src)
    write_png(job.out, out)
    return CamvidResult(shape=out.shape)
