"""Label tables loaded from ``class_maps/*.csv`` and the lookup tables derived from them.

Every dataset's label table lives as data in one CSV file (``class_maps/<name>.csv``).  The first
line of each file is a ``#`` comment that names the official source of the table; the second line is
the header.  Required columns: ``name``, ``id``, ``r``, ``g``, ``b``.  Optional columns:
``train_id`` (defaults to ``id``), ``category``, ``category_id``, ``has_instances``,
``ignore_in_eval``.  Rows keep the order of the official table, because "first row wins" is the
convention every inverse lookup follows (as in cityscapesScripts ``helpers/labels.py``, whose
``trainId2label`` keeps the first label of each trainId).

The CSV files are installed with the package (``segprep._class_maps``, mapped from the top-level
``class_maps/`` folder in ``pyproject.toml``); a source checkout reads them in place.
"""

from __future__ import annotations

import csv
import functools
import importlib
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from segprep.errors import SegprepError

IGNORE_INDEX = 255
"""The ignore value of trainId masks (``ignore_index=255``), as in cityscapesScripts and BDD100K."""

_REQUIRED = ("name", "id", "r", "g", "b")
_TRUE = {"true", "1", "yes", "y", "t"}
_FALSE = {"false", "0", "no", "n", "f", ""}


def _class_map_dir() -> Path:
    """Folder holding the CSV tables: the installed package data, else the source checkout's."""
    try:
        module = importlib.import_module("segprep._class_maps")
        for folder in getattr(module, "__path__", []):
            path = Path(folder)
            if path.is_dir() and any(path.glob("*.csv")):
                return path
    except ModuleNotFoundError:
        pass
    return Path(__file__).resolve().parent.parent / "class_maps"


def available() -> list[str]:
    """Names of the class maps that can be loaded with :func:`load` (CSV stems), sorted."""
    return sorted(p.stem for p in _class_map_dir().glob("*.csv"))


def pack_rgb(rgb: np.ndarray) -> np.ndarray:
    """Pack RGB triplets into one integer per pixel.

    Args:
        rgb: ``(..., 3)`` (or ``(..., 4)``, alpha ignored) uint8 array.

    Returns:
        ``(...)`` int32 array ``(r << 16) | (g << 8) | b``.
    """
    rgb = np.asarray(rgb)
    return (
        (rgb[..., 0].astype(np.int32) << 16)
        | (rgb[..., 1].astype(np.int32) << 8)
        | rgb[..., 2].astype(np.int32)
    )


def _parse_bool(value: str, where: str) -> bool:
    v = value.strip().lower()
    if v in _TRUE:
        return True
    if v in _FALSE:
        return False
    raise SegprepError(where, f"not a boolean: {value!r}")


@dataclass(frozen=True, eq=False)
class ClassMap:
    """One dataset's label table, read-only, with derived lookup tables.

    Attributes:
        name: the table's name (CSV stem), e.g. ``"cityscapes"``.
        source: the header comment of the CSV (the official source of the table).
        names: label names in table order.
        ids: ``(N,)`` int64 label ids (may be negative, e.g. Cityscapes ``license plate`` = -1).
        train_ids: ``(N,)`` int64 trainIds (255 = ignore; negative = never drawn).
        categories: category names; ``category_ids``: ``(N,)`` int64.
        has_instances, ignore_in_eval: ``(N,)`` bool.
        colors: ``(N, 3)`` uint8 RGB colors.
    """

    name: str
    source: str
    names: tuple[str, ...]
    ids: np.ndarray
    train_ids: np.ndarray
    categories: tuple[str, ...]
    category_ids: np.ndarray
    has_instances: np.ndarray
    ignore_in_eval: np.ndarray
    colors: np.ndarray

    def __post_init__(self) -> None:
        for arr in (self.ids, self.train_ids, self.category_ids, self.has_instances,
                    self.ignore_in_eval, self.colors):
            arr.setflags(write=False)

    def __len__(self) -> int:
        return len(self.names)

    def __repr__(self) -> str:
        return f"ClassMap({self.name!r}, {len(self)} labels, {self.num_classes} train classes)"

    # ------------------------------------------------------------------ lookups by name / id
    def index_of(self, name: str) -> int:
        """Row index of label ``name``. Raises KeyError if unknown."""
        return self.names.index(name)

    def row_of_id(self, label_id: int) -> int:
        """Row index of the first label with id ``label_id``. Raises KeyError if none."""
        hits = np.flatnonzero(self.ids == label_id)
        if hits.size == 0:
            raise KeyError(label_id)
        return int(hits[0])

    # ------------------------------------------------------------------ train classes
    @functools.cached_property
    def num_classes(self) -> int:
        """Number of evaluated train classes (distinct trainIds in ``[0, 255)``)."""
        valid = self.train_ids[(self.train_ids >= 0) & (self.train_ids != IGNORE_INDEX)]
        return int(valid.max()) + 1 if valid.size else 0

    @functools.cached_property
    def _train_categories(self) -> tuple[str, ...] | None:
        """The category of each trainId when the table is a grouping table whose ``category``
        names the train classes (each trainId's rows share one category, a different one per
        trainId; e.g. ``camvid11_segnet``: rows Road, LaneMkgsDriv -> category Road), else None."""
        cats = []
        for t in range(self.num_classes):
            mine = {c for c, tid in zip(self.categories, self.train_ids) if tid == t}
            if len(mine) != 1:
                return None
            cats.append(mine.pop())
        return tuple(cats) if len(set(cats)) == len(cats) else None

    @functools.cached_property
    def train_names(self) -> tuple[str, ...]:
        """Name of each trainId ``0 .. num_classes-1``: the shared category of its rows in a
        grouping table (see :attr:`_train_categories`), else the first row with that trainId."""
        if self._train_categories is not None:
            return self._train_categories
        rows = self._train_rows
        return tuple(self.names[rows[t]] if t in rows else f"class_{t}"
                     for t in range(self.num_classes))

    @functools.cached_property
    def _train_rows(self) -> dict[int, int]:
        """trainId (0-255, 255 included) → index of the row that stands for it: in a grouping
        table the row named like the train class (see :attr:`_train_categories`) where there is
        one, else the first row with that trainId. Rows whose id is outside 0-255 are skipped.
        :attr:`train_names`, :attr:`train_colors` and :attr:`train_id_to_id` all follow it."""
        cats = self._train_categories or ()
        rows: dict[int, int] = {}
        for r, (n, i, t) in enumerate(zip(self.names, self.ids.tolist(), self.train_ids.tolist())):
            named = 0 <= t < len(cats) and n == cats[t]
            if 0 <= t < 256 and 0 <= i < 256 and (t not in rows or named):
                rows[t] = r
        return rows

    @functools.cached_property
    def train_colors(self) -> np.ndarray:
        """``(256, 3)`` uint8 palette indexed by trainId: the row named like the train class
        (:attr:`train_names`) if there is one, else the first row; unused entries black."""
        pal = np.zeros((256, 3), np.uint8)
        for t, r in self._train_rows.items():
            if t != IGNORE_INDEX:
                pal[t] = self.colors[r]
        pal.setflags(write=False)
        return pal

    # ------------------------------------------------------------------ 256-entry LUTs
    @functools.cached_property
    def id_to_train_id(self) -> np.ndarray:
        """``(256,)`` uint8 LUT label id → trainId; ids not in the table and negative trainIds → 255.

        Use as ``lut[label_ids]`` on a ``(H, W)`` uint8 labelIds image.
        """
        lut = np.full(256, IGNORE_INDEX, np.uint8)
        for i, t in zip(self.ids[::-1], self.train_ids[::-1]):  # reversed: first row wins
            if 0 <= i < 256:
                lut[i] = t if 0 <= t < 256 else IGNORE_INDEX
        lut.setflags(write=False)
        return lut

    @functools.cached_property
    def train_id_to_id(self) -> np.ndarray:
        """``(256,)`` uint8 LUT trainId → label id, first row winning (so 255 → the first ignored id).

        For Cityscapes 255 → 0 (``unlabeled``), as cityscapesScripts' ``trainId2label``. trainIds
        that no row has map to the id of the first row with trainId 255 (or 0 if there is none).
        In a grouping table (see :attr:`_train_categories`) the row named like the train class
        wins where there is one: ``camvid11_segnet`` Road → Road (not LaneMkgsDriv, the first row
        of the group alphabetically), SignSymbol → SignSymbol (not Misc_Text).
        """
        ignore_rows = np.flatnonzero(self.train_ids == IGNORE_INDEX)
        fallback = int(self.ids[ignore_rows[0]]) if ignore_rows.size else 0
        lut = np.full(256, max(fallback, 0), np.uint8)
        for t, r in self._train_rows.items():
            lut[t] = self.ids[r]
        lut.setflags(write=False)
        return lut

    @functools.cached_property
    def id_colors(self) -> np.ndarray:
        """``(256, 3)`` uint8 palette indexed by label id (unknown ids black)."""
        pal = np.zeros((256, 3), np.uint8)
        for i, c in zip(self.ids[::-1], self.colors[::-1]):
            if 0 <= i < 256:
                pal[i] = c
        pal.setflags(write=False)
        return pal

    @functools.cached_property
    def color_to_id(self) -> dict[tuple[int, int, int], int]:
        """RGB color → label id of the first row with that color (non-negative ids only).

        Colors shared by several labels (see :attr:`shared_colors`) are ambiguous: this lookup
        gives the first one; shape-based resolution lives in ``segprep.convert.colors``.
        """
        out: dict[tuple[int, int, int], int] = {}
        for i, c in zip(self.ids, self.colors):
            key = (int(c[0]), int(c[1]), int(c[2]))
            if i >= 0 and key not in out:
                out[key] = int(i)
        return out

    @functools.cached_property
    def color_lut(self) -> tuple[np.ndarray, np.ndarray]:
        """Sorted packed colors and their label ids, for vectorised decoding with ``np.searchsorted``.

        Returns:
            ``(keys, ids)``: ``(M,)`` int32 sorted :func:`pack_rgb` values and ``(M,)`` int64 ids.
        """
        items = sorted((pack_rgb(np.array(c, np.uint8)), i) for c, i in self.color_to_id.items())
        keys = np.array([int(k) for k, _ in items], np.int32)
        ids = np.array([i for _, i in items], np.int64)
        return keys, ids

    @functools.cached_property
    def shared_colors(self) -> dict[tuple[int, int, int], tuple[str, ...]]:
        """Colors used by more than one label (non-negative ids), with the label names in order."""
        groups: dict[tuple[int, int, int], list[str]] = {}
        for n, i, c in zip(self.names, self.ids, self.colors):
            if i >= 0:
                groups.setdefault((int(c[0]), int(c[1]), int(c[2])), []).append(n)
        return {c: tuple(ns) for c, ns in groups.items() if len(ns) > 1}

    @functools.cached_property
    def valid_ids(self) -> np.ndarray:
        """Sorted ``(M,)`` int64 array of the non-negative label ids of the table."""
        return np.unique(self.ids[self.ids >= 0])

    def to_dict(self) -> dict:
        """A JSON-serialisable copy of the table (stored in checkpoints)."""
        return {
            "name": self.name,
            "source": self.source,
            "rows": [
                {
                    "name": n, "id": int(i), "train_id": int(t), "category": c,
                    "category_id": int(ci), "has_instances": bool(h), "ignore_in_eval": bool(g),
                    "color": [int(x) for x in col],
                }
                for n, i, t, c, ci, h, g, col in zip(
                    self.names, self.ids, self.train_ids, self.categories, self.category_ids,
                    self.has_instances, self.ignore_in_eval, self.colors)
            ],
        }

    @classmethod
    def from_dict(cls, d: dict) -> ClassMap:
        """Inverse of :meth:`to_dict`."""
        rows = d["rows"]
        return cls(
            name=d["name"], source=d.get("source", ""),
            names=tuple(r["name"] for r in rows),
            ids=np.array([r["id"] for r in rows], np.int64),
            train_ids=np.array([r["train_id"] for r in rows], np.int64),
            categories=tuple(r.get("category", "") for r in rows),
            category_ids=np.array([r.get("category_id", 0) for r in rows], np.int64),
            has_instances=np.array([r.get("has_instances", False) for r in rows], bool),
            ignore_in_eval=np.array([r.get("ignore_in_eval", False) for r in rows], bool),
            colors=np.array([r["color"] for r in rows], np.uint8).reshape(-1, 3),
        )


def parse_csv(text: str, name: str, where: str | None = None) -> ClassMap:
    """Parse a class-map CSV text (see the module docstring for the format).

    Args:
        text: the file's content.
        name: the map's name.
        where: file name used in error messages (default: ``name``).

    Raises:
        SegprepError: missing header comment or column, bad number, duplicate name.
    """
    where = where or name
    lines = text.splitlines()
    comments = [ln.lstrip("#").strip() for ln in lines if ln.startswith("#")]
    if not comments:
        raise SegprepError(where, "the first line must be a '#' comment naming the official source")
    body = [ln for ln in lines if ln.strip() and not ln.startswith("#")]
    reader = csv.DictReader(io.StringIO("\n".join(body)), skipinitialspace=True)
    fields = [f.strip() for f in (reader.fieldnames or [])]
    missing = [c for c in _REQUIRED if c not in fields]
    if missing:
        raise SegprepError(where, f"missing column(s) {', '.join(missing)}")
    names, ids, tids, cats, cids, inst, ign, cols = [], [], [], [], [], [], [], []
    for lineno, row in enumerate(reader, start=len(lines) - len(body) + 2):
        row = {k.strip(): (v or "").strip() for k, v in row.items() if k is not None}
        loc = f"{where}:{lineno}"
        try:
            i = int(row["id"])
            t = int(row["train_id"]) if row.get("train_id", "") != "" else i
            rgb = [int(row[c]) for c in ("r", "g", "b")]
            ci = int(row["category_id"]) if row.get("category_id", "") != "" else 0
        except ValueError as exc:
            raise SegprepError(loc, f"bad number: {exc}") from None
        if any(not 0 <= x <= 255 for x in rgb):
            raise SegprepError(loc, f"color out of range: {rgb}")
        if row["name"] in names:
            raise SegprepError(loc, f"duplicate label name {row['name']!r}")
        names.append(row["name"])
        ids.append(i)
        tids.append(t)
        cats.append(row.get("category", ""))
        cids.append(ci)
        inst.append(_parse_bool(row.get("has_instances", ""), loc))
        ign.append(_parse_bool(row.get("ignore_in_eval", ""), loc) or t == IGNORE_INDEX or t < 0)
        cols.append(rgb)
    if not names:
        raise SegprepError(where, "no rows")
    return ClassMap(
        name=name, source=" ".join(comments), names=tuple(names),
        ids=np.array(ids, np.int64), train_ids=np.array(tids, np.int64), categories=tuple(cats),
        category_ids=np.array(cids, np.int64), has_instances=np.array(inst, bool),
        ignore_in_eval=np.array(ign, bool), colors=np.array(cols, np.uint8).reshape(-1, 3),
    )


@functools.cache
def load(name: str) -> ClassMap:
    """Load a class map by name (``class_maps/<name>.csv``) or by path to a CSV file.

    Raises:
        SegprepError: unknown name (the message lists the available ones) or a malformed table.
    """
    path = Path(name)
    if path.suffix.lower() == ".csv" and path.is_file():
        return parse_csv(path.read_text(encoding="utf-8"), path.stem, str(path))
    path = _class_map_dir() / f"{name}.csv"
    if not path.is_file():
        raise SegprepError(name, f"unknown class map; available: {', '.join(available())}")
    return parse_csv(path.read_text(encoding="utf-8"), name, str(path))
