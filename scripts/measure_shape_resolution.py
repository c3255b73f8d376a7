"""Measure how well segprep resolves shared colors by shape, on real annotated frames.

Ground truth comes from the Cityscapes frames of the sample data (``gtFine/{train,val,test}``),
which hold both the official ``*_gtFine_labelIds.png`` and the ``*_gtFine_color.png``:

* ``cityscapes``: the official color PNG decoded with the Cityscapes id-level palette, compared
  with the labelIds: pole vs polegroup (153, 153, 153) and the black void labels.
* ``bdd-render``: the labelIds rendered with the BDD100K id-level palette (labels mapped by name;
  Cityscapes ``traffic sign`` painted as BDD100K ``parking sign`` so that real sign shapes share
  (220, 20, 60) with real people; rectification border / out of roi → unlabeled), then decoded:
  person vs parking sign, pole vs polegroup, void.
* ``bdd2018`` (transfer check on another camera, no tuning): the official BDD100K 2018 trainId
  masks rendered the same way (trainId → id, traffic sign → parking sign): person vs sign; and the
  pole recall (the masks have no polegroup).

For each ambiguous pair and split: pixel recall of each label and the balanced accuracy (their
mean; always answering the majority label scores 50 %), next to two references: ``oracle`` gives
every connected region the label that truly covers most of it (the ceiling of region-level
labelling) and ``naive`` is a plain extent-and-aspect rule (compact, not elongated → sign /
polegroup). ``segprep`` is what ``decode_colors`` does by default: the learned rules shipped in
``segprep/convert/shape_model.json`` (forests; person / sign and pole / polegroup averaged with the
networks of ``shape_net.npz``), trained by ``scripts/train_shape_rule.py`` on 15 Cityscapes train
cities, aachen among them (so ``train`` here is a training city; ``val``/lindau was held out, and
``bdd2018`` is a transfer check on another camera). ``--hand`` measures the hand-written rules
(``HAND_RULES``) instead. The city-by-city cross-validated figures come from
``scripts/train_shape_rule.py``; this script stays the end-to-end check (real color PNGs, the whole
decoder) and the BDD100K transfer check.

Usage: python scripts/measure_shape_resolution.py [--data ../shared/data] [-j 2] [--json out.json]
       [--regions regions.csv]   (one row per region with its features and true pixel counts)
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from segprep import class_maps  # noqa: E402
from segprep.convert.colors import decode_colors, encode_colors  # noqa: E402
from segprep.convert.shape.features import neighbour_groups, region_features  # noqa: E402
from segprep.convert.shape.resolve import classify_regions, rule_for  # noqa: E402
from segprep.convert.shape.rules import HAND_RULES  # noqa: E402
from segprep.io import find_files, read_png, run_batch  # noqa: E402

PAIRS = {  # name -> (palette label names compared, in rule order)
    "person/sign": ("person", "parking sign"),
    "pole/polegroup": ("pole", "polegroup"),
    "void": ("unlabeled", "ego vehicle", "static"),
}


def cs_to_bdd_lut() -> np.ndarray:
    """Cityscapes label id → BDD100K label id, by name (traffic sign → parking sign)."""
    cs, bdd = class_maps.load("cityscapes"), class_maps.load("bdd100k")
    rename = {"traffic sign": "parking sign", "rectification border": "unlabeled",
              "out of roi": "unlabeled"}
    lut = np.zeros(256, np.uint8)
    for n, i in zip(cs.names, cs.ids):
        if i >= 0:
            lut[i] = bdd.ids[bdd.index_of(rename.get(n, n))]
    return lut


def bdd_train_to_render_lut() -> np.ndarray:
    """BDD100K trainId → id for rendering: traffic sign → parking sign, ignore → unlabeled."""
    bdd = class_maps.load("bdd100k")
    lut = bdd.train_id_to_id.copy()
    lut[7] = bdd.ids[bdd.index_of("parking sign")]
    lut[255] = bdd.ids[bdd.index_of("unlabeled")]
    return lut


def _naive(feats, n_labels: int) -> np.ndarray:
    """Compact (extent >= 0.7) and not elongated (h / w < 1.5) → second label; else first."""
    if n_labels != 2:
        return np.zeros(len(feats), np.int64)
    return ((feats.extent >= 0.7) & (feats.h / feats.w < 1.5)).astype(np.int64)


def _compare(pred: np.ndarray, truth: np.ndarray, ids: tuple[int, ...], color_mask: np.ndarray,
             rule, frame: str, source: str, split: str, rows: list | None, cm) -> dict:
    """Confusion (truth label × predicted label) of segprep, oracle and naive on one color."""
    k = len(ids)
    lut = np.full(256, k, np.int64)  # k = "other" (not one of the labels)
    for j, i in enumerate(ids):
        lut[i] = j
    t, p = lut[truth[color_mask]], lut[pred[color_mask]]
    out = {"segprep": np.bincount(t * (k + 1) + p, minlength=(k + 1) ** 2).reshape(k + 1, k + 1)}
    if rule is not None:
        labels, feats, chosen = classify_regions(rule, color_mask, truth, cm)
    else:
        labels, feats = region_features(color_mask, values=truth,
                                        value_groups=neighbour_groups(cm))
    n = len(feats)
    tl = lut[truth]
    per_region = np.zeros((n + 1, k + 1), np.int64)
    np.add.at(per_region, (labels[color_mask], tl[color_mask]), 1)
    per_region = per_region[1:]
    for name, choice in (("oracle", per_region[:, :k].argmax(axis=1)),
                         ("naive", _naive(feats, k))):
        conf = np.zeros((k + 1, k + 1), np.int64)
        for j in range(k + 1):  # truth j, predicted choice, weighted by the region's pixels
            np.add.at(conf[j], choice, per_region[:, j])
        out[name] = conf
    if rows is not None and rule is not None:
        for r in range(n):
            rows.append({"source": source, "split": split, "frame": frame, "region": r + 1,
                         **{f"true_{ids[j]}": int(per_region[r, j]) for j in range(k)},
                         "rule": int(chosen[r]), "area": int(feats.area[r]), "x": int(feats.x[r]),
                         "y": int(feats.y[r]), "w": int(feats.w[r]), "h": int(feats.h[r]),
                         "bottom": round(float(feats.bottom[r]), 4),
                         "rel_height": round(float(feats.rel_height[r]), 4),
                         "extent": round(float(feats.extent[r]), 4),
                         "solidity": round(float(feats.solidity[r]), 4),
                         "fit": round(float(feats.fit[r]), 4),
                         "multirun": round(float(feats.multirun[r]), 4),
                         "foot": round(float(feats.foot[r]), 3),
                         "slender": round(float(feats.slender[r]), 3),
                         **{k: round(float(getattr(feats, k)[r]), 3) for k in
                            ("head", "spread", "strokes", "tall_cols", "base", "corners")}})
    return out


def measure_frame(item: tuple[str, str, str, bool, bool]) -> dict:
    """All comparisons for one frame (run in a worker)."""
    source, path, split, want_rows, hand = item
    rules = HAND_RULES if hand else None
    rows: list | None = [] if want_rows else None
    res: dict = {"split": split, "source": source, "conf": {}, "rows": rows}
    if source == "cityscapes":
        label_ids = read_png(path)
        color = read_png(path.replace("_labelIds.png", "_color.png"))
        cm = class_maps.load("cityscapes")
        pred, _ = decode_colors(color, "cityscapes", level="id", where=path, rules=rules)
        truth = label_ids
        pal_name = "cityscapes"
        pairs = {"pole/polegroup": PAIRS["pole/polegroup"], "void": PAIRS["void"]}
    else:
        bdd = class_maps.load("bdd100k")
        if source == "bdd-render":
            truth = cs_to_bdd_lut()[read_png(path)]
        else:  # bdd2018
            truth = bdd_train_to_render_lut()[read_png(path)]
        color = encode_colors(truth, "bdd100k", "id")
        pred, _ = decode_colors(color, "bdd100k", level="id", where=path, rules=rules)
        cm = bdd
        pal_name = "bdd100k"
        pairs = dict(PAIRS) if source == "bdd-render" else {"person/sign": PAIRS["person/sign"],
                                                           "pole/polegroup": PAIRS["pole/polegroup"]}
    del pal_name
    for pair, names in pairs.items():
        ids = tuple(int(cm.ids[cm.index_of(n)]) for n in names)
        c = cm.colors[cm.index_of(names[0])]
        mask = (color[..., 0] == c[0]) & (color[..., 1] == c[1]) & (color[..., 2] == c[2])
        if not mask.any():
            continue
        res["conf"][pair] = _compare(pred, truth, ids, mask, rule_for(names, rules),
                                     Path(path).name, source, split, rows, cm)
    return res


def scores(conf: np.ndarray) -> dict:
    """Per-label pixel recall and balanced accuracy of a (k+1)² confusion (last row/col other)."""
    k = conf.shape[0] - 1
    totals = conf[:k].sum(axis=1)
    rec = [float(conf[j, j] / totals[j]) if totals[j] else None for j in range(k)]
    present = [r for r in rec if r is not None]
    return {"pixels": [int(t) for t in totals], "recall": rec,
            "balanced": float(np.mean(present)) if present else None}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("-j", "--jobs", type=int, default=None)
    ap.add_argument("--json", help="write the scores as JSON here")
    ap.add_argument("--regions", help="write one CSV row per shared-color region here")
    ap.add_argument("--sources", default="cityscapes,bdd-render,bdd2018")
    ap.add_argument("--hand", action="store_true", help="measure the hand-written rules")
    args = ap.parse_args()
    data = Path(args.data)
    sources = args.sources.split(",")
    items = []
    cs_root = data / "cityscapes" / "gtFine"
    for f in find_files(cs_root, "_gtFine_labelIds.png"):
        split = f.relative_to(cs_root).parts[0]
        for s in ("cityscapes", "bdd-render"):
            if s in sources:
                items.append((s, str(f), split, bool(args.regions), args.hand))
    if "bdd2018" in sources:
        bdd_root = data / "bdd100k" / "seg" / "labels"
        for f in find_files(bdd_root, "_train_id.png"):
            items.append(("bdd2018", str(f), f.relative_to(bdd_root).parts[0], bool(args.regions),
                          args.hand))
    t0 = time.perf_counter()
    agg: dict = defaultdict(lambda: None)
    frames: dict = defaultdict(int)
    rows: list = []
    for out in run_batch(measure_frame, items, jobs=args.jobs, desc="measure", unit="frame"):
        if not out.ok:
            print(out.error, file=sys.stderr)
            return 1
        r = out.value
        frames[(r["source"], r["split"])] += 1
        rows.extend(r["rows"] or [])
        for pair, confs in r["conf"].items():
            for method, conf in confs.items():
                for split in (r["split"], "all"):
                    key = (r["source"], pair, method, split)
                    agg[key] = conf if agg[key] is None else agg[key] + conf
    result: dict = {}
    print(f"{'source':<11} {'pair':<15} {'split':<6} {'frames':>6}  {'segprep':>8}  "
          f"{'recalls':<24} {'oracle':>7} {'naive':>7}  pixels")
    for (source, pair, method, split), conf in sorted(agg.items()):
        if method != "segprep":
            continue
        s = scores(conf)
        o = scores(agg[(source, pair, "oracle", split)])
        n = scores(agg[(source, pair, "naive", split)])
        nfr = sum(v for (src, sp), v in frames.items() if src == source and split in (sp, "all"))
        fmt = lambda v: "  -  " if v is None else f"{100 * v:5.1f}"  # noqa: E731
        print(f"{source:<11} {pair:<15} {split:<6} {nfr:>6}  {fmt(s['balanced']):>8}  "
              f"{' / '.join(fmt(r) for r in s['recall']):<24} {fmt(o['balanced']):>7} "
              f"{fmt(n['balanced']):>7}  {s['pixels']}")
        result.setdefault(source, {}).setdefault(pair, {})[split] = {
            "frames": nfr, "labels": list(PAIRS[pair]), "pixels": s["pixels"],
            "recall": s["recall"], "balanced_accuracy": s["balanced"],
            "oracle_balanced_accuracy": o["balanced"], "naive_balanced_accuracy": n["balanced"]}
    print(f"{len(items)} frame decodes in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    if args.regions and rows:
        keys = sorted({k for r in rows for k in r}, key=lambda k: list(rows[0]).index(k)
                      if k in rows[0] else 99)
        with open(args.regions, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=keys)
            w.writeheader()
            w.writerows(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
