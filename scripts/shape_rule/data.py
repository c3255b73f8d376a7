"""The region cache of ``scripts/train_shape_rule.py``: Cityscapes frames per city, every shared-color
region measured once with segprep's own features (:mod:`segprep.convert.shape.features`) and
thumbnails (:mod:`segprep.convert.shape.net`), cached per city, and the training samples drawn
from it.
"""

from __future__ import annotations

import random
import sys
import time
from pathlib import Path

import numpy as np
from measure_shape_resolution import cs_to_bdd_lut  # noqa: E402  (the one measurement LUT)

from segprep import class_maps  # noqa: E402
from segprep.convert.shape.features import (  # noqa: E402
    CONTOUR_DEFAULTS,
    NEIGHBOUR_GROUPS,
    RegionFeatures,
    model_inputs,
    neighbour_groups,
    region_features,
)
from segprep.convert.shape.net import (  # noqa: E402
    region_thumbnails,
)
from segprep.io import find_files, read_png, run_batch  # noqa: E402

PAIRS = {  # name -> BDD100K labels sharing one color, in rule order
    "person/sign": ("person", "parking sign"),
    "pole/polegroup": ("pole", "polegroup"),
    "void": ("unlabeled", "ego vehicle", "static"),
}


SCALARS = ("area", "x", "y", "w", "h", "rel_area", "bottom", "rel_height", "extent", "solidity",
           "fit", "multirun", "foot", "slender", "head", "spread", "strokes", "tall_cols", "base",
           "corners")


COLUMNS = SCALARS + ("touch_top", "touch_bottom", "touch_left", "touch_right") + tuple(
    f"near_{g}" for g in NEIGHBOUR_GROUPS)


NET_PAIRS = ("person/sign", "pole/polegroup")
"""The colors whose regions the cache also keeps as thumbnails (for ``net-*`` models)."""


SEED = 13  # draws the test cities; also the default seed of the models (--seed)


MODEL_SEED = [SEED]


def city_frames(data: Path) -> dict[str, list[Path]]:
    """City → its official ``*_gtFine_labelIds.png`` files."""
    out: dict[str, list[Path]] = {}
    roots = [data / "cityscapes-train-labelids", data / "cityscapes" / "gtFine" / "train",
             data / "cityscapes" / "gtFine" / "val"]
    for root in roots:
        for f in find_files(root, "_gtFine_labelIds.png"):
            out.setdefault(f.parent.name, []).append(f)
    return {c: sorted(v) for c, v in sorted(out.items())}


def test_cities(cities) -> list[str]:
    """The cities kept out of all tuning: lindau (val) and three train cities drawn once."""
    train = sorted(c for c in cities if c not in ("aachen", "lindau"))
    return sorted(random.Random(SEED).sample(train, 3)) + ["lindau"]


def frame_regions(item: tuple[int, str]) -> tuple[int, dict]:
    """Per shared color of frame ``item = (index, path)``: ``(X (n, F) float64, Y (n, k) int64
    true pixels per label, (H, W), T)`` with ``T`` the regions' ``region_thumbnails`` (uint8, for
    :data:`NET_PAIRS`; None for the others)."""
    index, path = item
    bdd = class_maps.load("bdd100k")
    truth = cs_to_bdd_lut()[read_png(path)]
    groups = neighbour_groups(bdd)
    out = {}
    for pair, names in PAIRS.items():
        ids = _bdd_ids(names)
        mask = np.isin(truth, ids)
        labels, f = region_features(mask, contours=True, values=truth, value_groups=groups)
        n = len(f)
        lut = np.full(256, len(ids), np.int64)
        lut[ids] = np.arange(len(ids))
        y = np.zeros((n + 1, len(ids) + 1), np.int64)
        np.add.at(y, (labels[mask], lut[truth[mask]]), 1)
        thumbs = None
        if pair in NET_PAIRS:
            thumbs = region_thumbnails(labels, f, truth, mask, groups)
        out[pair] = (features_matrix(f), y[1:, :len(ids)], (f.height, f.width), thumbs)
    return index, out


def features_matrix(f: RegionFeatures) -> np.ndarray:
    """``(N, len(COLUMNS))`` float64 table of a :class:`RegionFeatures`."""
    cols = [np.asarray(getattr(f, k), float) for k in SCALARS]
    cols += [f.touches[:, j].astype(float) for j in range(4)]
    nb = f.neighbours if f.neighbours is not None else np.zeros((len(f), len(NEIGHBOUR_GROUPS)))
    cols += [nb[:, j] for j in range(nb.shape[1])]
    return np.stack(cols, axis=1) if len(f) else np.zeros((0, len(COLUMNS)))


CONTOURS = {"person/sign": True, "pole/polegroup": True, "void": False}
"""Which learned rules read the contour features (the void regions are few but large: their
contours would cost time for little)."""


def as_features(x: np.ndarray, height: int, width: int, contours: bool = True) -> RegionFeatures:
    """Inverse of :func:`features_matrix` (to replay a rule on cached regions); without
    ``contours`` the contour features are what ``region_features(contours=False)`` gives."""
    kw = {k: x[:, j] for j, k in enumerate(SCALARS)}
    if not contours:
        kw.update({k: np.full(len(x), v) for k, v in CONTOUR_DEFAULTS.items()})
    for k in ("area", "x", "y", "w", "h"):
        kw[k] = kw[k].astype(np.int64)
    j = len(SCALARS)
    return RegionFeatures(height=height, width=width, touches=x[:, j:j + 4] > 0.5,
                          neighbours=x[:, j + 4:], **kw)


def extract(args) -> int:
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    for city, files in city_frames(Path(args.data)).items():
        dest = cache / f"{city}.npz"
        if dest.exists() and not args.force:
            continue
        t0 = time.perf_counter()
        arrays: dict = {}
        per: dict[str, tuple[list, ...]] = {p: ([], [], [], []) for p in PAIRS}
        size = None
        for out in run_batch(frame_regions, [(i, str(f)) for i, f in enumerate(files)],
                                jobs=args.jobs, desc=city, unit="frame", ordered=True):
            if not out.ok:
                print(out.error, file=sys.stderr)
                return 1
            i, value = out.value
            for pair, (x, y, hw, t) in value.items():
                per[pair][0].append(x)
                per[pair][1].append(y)
                per[pair][2].append(np.full(len(x), i, np.int32))
                if t is not None:
                    per[pair][3].append(t)
                size = hw
        for pair, (xs, ys, fs, ts) in per.items():
            key = pair.replace("/", "_")
            arrays[f"{key}_X"] = np.concatenate(xs)
            arrays[f"{key}_Y"] = np.concatenate(ys)
            arrays[f"{key}_frame"] = np.concatenate(fs)
            if ts:
                arrays[f"{key}_T"] = np.concatenate(ts)
        arrays["size"] = np.array(size)
        arrays["frames"] = np.array([f.name for f in files])
        tmp = dest.with_suffix(".tmp.npz")
        np.savez_compressed(tmp, **arrays)
        tmp.replace(dest)
        print(f"{city}: {len(files)} frames, {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    return 0


def load_cache(cache: Path) -> dict[str, dict]:
    """City → {pair: (X, Y, frame)} (+ "size", "frames", "thumbs": {pair: T} of the
    :data:`NET_PAIRS`)."""
    out = {}
    for f in sorted(cache.glob("*.npz")):
        if f.name.endswith(".tmp.npz"):
            continue
        z = np.load(f)
        d = {p: (z[f"{p.replace('/', '_')}_X"], z[f"{p.replace('/', '_')}_Y"],
                 z[f"{p.replace('/', '_')}_frame"]) for p in PAIRS}
        missing = [p for p in NET_PAIRS if f"{p.replace('/', '_')}_T" not in z.files]
        if missing:
            raise SystemExit(f"{f}: no thumbnails of {', '.join(missing)} (a cache of an older "
                             "extract: run extract --force)")
        d["thumbs"] = {p: z[f"{p.replace('/', '_')}_T"] for p in NET_PAIRS}
        d["size"] = tuple(int(v) for v in z["size"])
        d["frames"] = list(z["frames"])
        out[f.stem] = d
    return out


def part(data: dict, city: str, pair: str) -> tuple:
    """``(X, Y, size, T)``: one city's cached regions of ``pair`` (``T`` its thumbnails, None
    outside :data:`NET_PAIRS`) — what :func:`fit_model` trains on and :func:`model_proba` reads."""
    d = data[city]
    return d[pair][0], d[pair][1], d["size"], d["thumbs"].get(pair)


def samples(parts: list[tuple], contours: bool = True, weight: str = "pixels",
            thumbs: bool = False):
    """Training samples of several cities' regions of one color (``parts``: :func:`part`): every
    (region, label) with true pixels becomes a sample of that label weighted by its pixels
    (``weight="pixels"``) or their square root (``"sqrt"``: a large region counts more than a
    small one, but less than its pixels), over the sum of those weights of that label in the
    city, so that each city and each label weighs the same (with ``pixels`` the classifier then
    maximises the mean over cities of the balanced accuracy). Returns ``(inputs, labels,
    weights)``, plus the samples' thumbnails with ``thumbs``."""
    xs, ls, ws, ts = [], [], [], []
    for x, y, size, *rest in parts:
        inp = model_inputs(as_features(x, *size, contours=contours))
        for j in range(y.shape[1]):
            sel = y[:, j] > 0
            if not sel.any():
                continue
            v = y[sel, j].astype(float)
            if weight == "sqrt":
                v = np.sqrt(v)
            elif weight != "pixels":
                raise ValueError(f"unknown sample weight {weight!r}")
            xs.append(inp[sel])
            ls.append(np.full(sel.sum(), j))
            ws.append(v / v.sum())
            if thumbs:
                ts.append(rest[0][sel])
    w = np.concatenate(ws)
    out = (np.concatenate(xs), np.concatenate(ls), w * (len(w) / w.sum()))
    return out + (np.concatenate(ts),) if thumbs else out


def pool_and_pair(args) -> tuple[dict, list[str], str]:
    """``(cache, pool cities, pair)`` of a command with ``--cache`` and ``--pair`` (the pool: every
    city but the test cities)."""
    if args.pair not in PAIRS:
        raise SystemExit(f"--pair must be one of {', '.join(PAIRS)}")
    data = load_cache(Path(args.cache))
    held = test_cities(data)
    return data, [c for c in data if c not in held], args.pair


def _bdd_ids(names) -> list[int]:
    """BDD100K label ids of label ``names``."""
    bdd = class_maps.load("bdd100k")
    return [int(bdd.ids[bdd.index_of(n)]) for n in names]

