"""The subcommands of ``scripts/train_shape_rule.py`` beyond ``extract`` and ``report``: ``loco``,
``rulegrid``, ``misses``, ``noise`` and ``fit``.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
from measure_shape_resolution import cs_to_bdd_lut  # noqa: E402  (the one measurement LUT)

from segprep.convert.colors import encode_colors  # noqa: E402
from segprep.convert.shape.features import (  # noqa: E402
    MODEL_INPUTS,
    model_inputs,
    region_features,
)
from segprep.convert.shape.net import (  # noqa: E402
    THUMB_CHANNELS,
    RegionNet,
    combined_rules,
    load_shape_net,
)
from segprep.convert.shape.rules import (  # noqa: E402
    ForestRule,
    PoleGroupRule,
    load_shape_model,
)
from segprep.io import read_png, write_png  # noqa: E402
from shape_rule.data import (  # noqa: E402
    CONTOURS,
    PAIRS,
    SCALARS,
    _bdd_ids,
    as_features,
    city_frames,
    load_cache,
    part,
    pool_and_pair,
    test_cities,
)
from shape_rule.models import (  # noqa: E402
    SHIPPED,
    export_forest,
    fit_model,
    fit_predict,
    model_proba,
    model_spec,
    save_nets,
)
from shape_rule.scores import GOALS, balanced, balanced_counts, ceiling, print_table, rule_choice  # noqa: E402


def loco(args) -> int:
    data = load_cache(Path(args.cache))
    held = test_cities(data)
    pool = [c for c in data if c not in held]
    models = args.models.split(",")
    pairs = args.pairs.split(",") if args.pairs else list(PAIRS)
    tables = {m: {} for m in ["rules"] + models}
    for city in pool:
        d = data[city]
        for p in pairs:
            x, y, _ = d[p]
            if not y.sum():
                continue
            c = ceiling(y)
            tables["rules"].setdefault(city, {})[p] = (balanced(y, rule_choice(p, x, d["size"])),
                                                       c)
            train = [part(data, o, p) for o in pool if o != city]
            for m in models:
                t0 = time.perf_counter()
                pred = fit_predict(m, p, train, part(data, city, p))
                tables[m].setdefault(city, {})[p] = (balanced(y, pred), c)
                print(f"{city} {p} {m}: {100 * tables[m][city][p][0]:.1f} (ceiling {100 * c:.1f},"
                      f" rules {100 * tables['rules'][city][p][0]:.1f}) "
                      f"{time.perf_counter() - t0:.1f} s", file=sys.stderr)
    for m, rows in tables.items():
        print_table(f"{m}: leave-one-city-out over {len(pool)} cities (test cities "
                    f"{', '.join(held)} left out)", rows)
    return 0


POLE_GRID = {"band_bottom": (0.36, 0.38, 0.40, 0.42), "band_top": (0.50, 0.52, 0.55, 0.60),
             "max_rel_height": (0.2, 0.3, 0.4), "min_rel_area": (50 / 2**21, 150 / 2**21,
                                                                 400 / 2**21),
             "max_slender": (4.0, 6.0, 8.0, 12.0), "max_solidity": (0.2, 0.3, 0.4, 0.5)}


def rulegrid(args) -> int:
    """The hand-written pole/polegroup rule with its thresholds chosen by leave-one-city-out
    over a grid (each city scored with the thresholds best on average over the 14 others)."""
    import itertools

    data = load_cache(Path(args.cache))
    held = test_cities(data)
    pool = [c for c in data if c not in held]
    p = "pole/polegroup"
    keys = list(POLE_GRID)
    combos = list(itertools.product(*POLE_GRID.values()))
    feats = {c: as_features(data[c][p][0], *data[c]["size"]) for c in pool + held}
    score = np.zeros((len(combos), len(pool)))
    for i, combo in enumerate(combos):
        rule = PoleGroupRule(**dict(zip(keys, combo)))
        for j, c in enumerate(pool):
            score[i, j] = balanced(data[c][p][1], rule.classify(feats[c]))
    rows = {}
    for j, c in enumerate(pool):
        others = np.delete(score, j, axis=1).mean(axis=1)
        best = int(np.argmax(others))
        rows[c] = {p: (score[best, j], ceiling(data[c][p][1]))}
        print(c, dict(zip(keys, combos[best])), file=sys.stderr)
    print_table("pole/polegroup hand rule, thresholds by leave-one-city-out grid search", rows)
    best = int(np.argmax(score.mean(axis=1)))
    chosen = PoleGroupRule(**dict(zip(keys, combos[best])))
    print(f"\nbest on all {len(pool)} pool cities: {chosen}")
    rows = {c: {p: (balanced(data[c][p][1], chosen.classify(feats[c])), ceiling(data[c][p][1]))}
            for c in held}
    print_table("that rule on the test cities", rows)
    return 0


def misses(args) -> int:
    """Leave-one-city-out for one color and a few pool cities: print each label's missed pixels
    (regions given another label), the share of them in single-stroke regions (every row
    crossed once: a bar, the shape of one pole) and how many regions hold the label, and draw
    the largest missed regions (official labels in the Cityscapes colors, the region outlined
    in white, the model's probability of the true label below) into one PNG."""
    import cv2

    data, pool, p = pool_and_pair(args)
    cities = args.cities.split(",") if args.cities else pool
    unknown = [c for c in cities if c not in pool]
    if unknown:
        raise SystemExit(f"not pool cities (test cities stay unseen): {', '.join(unknown)}")
    files = city_frames(Path(args.data))
    member = np.isin(cs_to_bdd_lut(), _bdd_ids(PAIRS[p])).astype(np.uint8)  # Cityscapes id → in
    stroke = SCALARS.index("strokes")
    multirun = SCALARS.index("multirun")
    box = [SCALARS.index(k) for k in ("x", "y", "w", "h")]
    tiles = []
    for city in cities:
        x, y, frame = data[city][p]
        train = [part(data, o, p) for o in pool if o != city]
        proba = model_proba(fit_model("shipped", p, train), p, part(data, city, p))
        pred = proba.argmax(axis=1)
        single = (x[:, stroke] <= 1) & (x[:, multirun] == 0)
        print(f"{city} {p}: balanced {100 * balanced(y, pred):.1f} % (ceiling "
              f"{100 * ceiling(y):.1f} %)")
        for j, name in enumerate(PAIRS[p]):
            missed = (pred != j) & (y[:, j] > 0)
            tot = int(y[:, j].sum())
            if not tot:
                continue
            lost = int(y[missed, j].sum())
            print(f"  {name}: {lost:,} of {tot:,} px missed ({100 * lost / tot:.1f} %), "
                  f"{100 * y[missed & single, j].sum() / max(lost, 1):.0f} % of them in "
                  f"single-stroke regions; {int((y[:, j] > 0).sum())} regions hold it")
        worst = np.flatnonzero((y.argmax(axis=1) != pred) & (y.sum(axis=1) > 0))
        worst = worst[np.argsort(-y[worst].max(axis=1))][:args.top]
        for k in worst:
            f = int(frame[k])
            truth = read_png(files[city][f])
            # the region's label: cached rows of a frame are its regions in region_features'
            # order (raster order of their first pixel)
            label = int(np.count_nonzero(frame[:k] == f)) + 1
            regions, _ = region_features(member[truth], contours=False)
            bx, by, bw, bh = (int(v) for v in x[k, box])
            pad = max(8, bh // 4)
            y0, x0 = max(0, by - pad), max(0, bx - pad)
            y1, x1 = by + bh + pad, bx + bw + pad
            rgb = encode_colors(truth[y0:y1, x0:x1], "cityscapes")
            region = (regions[y0:y1, x0:x1] == label).astype(np.uint8)
            cnts, _ = cv2.findContours(region, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
            scale = 180.0 / max(rgb.shape[:2])
            rgb = cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
            cv2.drawContours(rgb, [(c * scale).astype(np.int32) for c in cnts], -1,
                             (255, 255, 255), 1)
            tile = np.zeros((200, 180, 3), np.uint8)
            tile[:rgb.shape[0], :rgb.shape[1]] = rgb
            true = int(y[k].argmax())
            cv2.putText(tile, f"{city[:9]} {PAIRS[p][true][:7]} p={proba[k, true]:.2f}",
                        (2, 195), cv2.FONT_HERSHEY_SIMPLEX, 0.33, (255, 255, 255), 1)
            tiles.append(tile)
    if tiles:
        cols = 6
        tiles += [np.zeros_like(tiles[0])] * (-len(tiles) % cols)
        grid = np.vstack([np.hstack(tiles[i:i + cols]) for i in range(0, len(tiles), cols)])
        write_png(args.out, grid)
        print(f"wrote {args.out} ({len(tiles)} tiles)", file=sys.stderr)
    return 0


def noise(args) -> int:
    """How much of each pool city's gap to its region ceiling is sampling noise: the model's
    leave-one-city-out labels of the city's regions are kept, and the city's frames are drawn
    again with replacement (``--resamples`` times; draws that miss a label are dropped). Prints
    per city the support of the rarer label (frames and regions holding it, the largest region's
    share of its pixels), the score, the ceiling, the gap with its 5–95 % range over the draws
    and how often the draw is within the goal; then the count of cities within the goal and the
    expected count over the draws."""
    data, pool, p = pool_and_pair(args)
    goal = GOALS.get(p, 0.0)
    rng = np.random.default_rng(args.seed)
    print(f"\n{p}, {args.model}: leave-one-city-out over {len(pool)} cities, frames drawn "
          f"{args.resamples} times per city (goal: within {100 * goal:.0f} points of the "
          "ceiling)")
    print("| city | frames | frames with the rarer label | its regions | its largest region "
          "| score | ceiling | gap | gap, 5–95 % of draws | draws within goal |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    within, expected = 0, 0.0
    for city in pool:
        x, y, frame = data[city][p]
        train = [part(data, o, p) for o in pool if o != city]
        pred = fit_predict(args.model, p, train, part(data, city, p))
        n_frames, k = len(data[city]["frames"]), y.shape[1]
        best = y.argmax(axis=1)
        tot, hit, top = (np.zeros((n_frames, k)) for _ in range(3))  # per frame and label
        for j in range(k):
            np.add.at(tot[:, j], frame, y[:, j])
            np.add.at(hit[:, j], frame, np.where(pred == j, y[:, j], 0))
            np.add.at(top[:, j], frame, np.where(best == j, y[:, j], 0))

        score = float(balanced_counts(hit.sum(0), tot.sum(0)))
        ceil = float(balanced_counts(top.sum(0), tot.sum(0)))
        gap = ceil - score
        draws = rng.integers(0, n_frames, size=(args.resamples, n_frames))
        t_d = tot[draws].sum(1)
        keep = (t_d > 0).sum(1) == (tot.sum(0) > 0).sum()
        gaps = (balanced_counts(top[draws].sum(1), t_d)
                - balanced_counts(hit[draws].sum(1), t_d))[keep]
        rare = int(np.argmin(np.where(tot.sum(0) > 0, tot.sum(0), np.inf)))
        lo, hi = np.percentile(gaps, [5, 95])
        ok = float(np.mean(gaps <= goal + 1e-9))
        within += gap <= goal + 1e-9
        expected += ok
        print(f"| {city} | {n_frames} | {int((tot[:, rare] > 0).sum())} | "
              f"{int((y[:, rare] > 0).sum())} | "
              f"{100 * y[:, rare].max() / max(y[:, rare].sum(), 1):.0f} % | "
              f"{100 * score:.1f} | {100 * ceil:.1f} | "
              f"{100 * gap:.1f} | {100 * lo:.1f} – {100 * hi:.1f} | {100 * ok:.0f} % |",
              flush=True)
    print(f"\nwithin goal: {within} of {len(pool)} cities; expected over the draws: "
          f"{expected:.1f}")
    return 0


def fit(args) -> int:
    """Train the shipped models on the pool cities (forests: checked numpy against
    scikit-learn; networks: numpy against PyTorch), write them (forests to ``--out``, networks to
    ``--out-net``), and score them once on the test cities."""
    data = load_cache(Path(args.cache))
    held = test_cities(data)
    pool = [c for c in data if c not in held]
    rules, nets, names = {}, {}, {}
    for p in PAIRS:
        parts = [part(data, c, p) for c in pool]
        names[p] = model_spec(args.model, p)[0] if args.model != "shipped" else SHIPPED[p]
        t0 = time.perf_counter()
        m = fit_model(args.model, p, parts)
        if isinstance(m, tuple):
            nets[p], m = m
        elif isinstance(m, RegionNet):
            nets[p] = m
        if p in nets:
            print(f"{p}: {names[p]}, {sum(v.size for v in nets[p].weights.values())} weights, "
                  f"numpy == PyTorch, {time.perf_counter() - t0:.0f} s", file=sys.stderr)
        if isinstance(m, RegionNet):
            continue
        entry = export_forest(m, PAIRS[p], CONTOURS[p])
        entry["max_rel_area"] = float(max(q[0][:, SCALARS.index("rel_area")].max() for q in parts))
        rule = ForestRule.from_dict(entry)
        ours = rule.classify(as_features(np.concatenate([q[0] for q in parts]), *parts[0][2],
                                         contours=CONTOURS[p]))
        theirs = m.predict(model_inputs(as_features(
            np.concatenate([q[0] for q in parts]), *parts[0][2], contours=CONTOURS[p])))
        print(f"{p}: {len(entry['trees'])} trees, "
              f"{sum(len(t['left']) for t in entry['trees'])} nodes, numpy vs scikit-learn "
              f"{int(np.count_nonzero(ours != theirs))} of {len(ours)} regions differ",
              file=sys.stderr)
        rules[p] = entry
    about = {"trained_by": f"scripts/train_shape_rule.py fit --model {args.model}",
             "seed": args.seed, "models": names,
             "trained_on": "Cityscapes gtFine official *_gtFine_labelIds.png of the cities "
                           + ", ".join(pool) + " (the sample data's cityscapes-train-labelids/ "
                           "and gtFine/train/aachen), painted with the BDD100K id-level palette "
                           "(traffic sign as parking sign); held out: " + ", ".join(held),
             "train_cities": pool, "test_cities": held}
    model = dict(about, sklearn=__import__("sklearn").__version__, rules=rules)
    dest = Path(args.out)
    tmp = dest.with_suffix(".tmp")
    tmp.write_text(json.dumps(model, separators=(",", ":")) + "\n")
    tmp.replace(dest)
    print(f"wrote {dest} ({dest.stat().st_size / 1024:.0f} KiB)", file=sys.stderr)
    load_shape_model.cache_clear()
    forests = load_shape_model(str(dest))
    shipped: dict = dict(forests)
    if nets:
        import torch

        meta = dict(about, torch=torch.__version__, rules={
            p: {"labels": list(PAIRS[p]), "max_rel_area": n.max_rel_area,
                "inputs": list(MODEL_INPUTS), "thumbnails": list(THUMB_CHANNELS),
                "channels": list(n.channels)}
            for p, n in nets.items()})
        dest_net = Path(args.out_net)
        save_nets(nets, meta, dest_net)
        print(f"wrote {dest_net} ({dest_net.stat().st_size / 1024:.0f} KiB)", file=sys.stderr)
        load_shape_net.cache_clear()
        shipped = combined_rules(load_shape_net(str(dest_net)), forests)
    rows = {}
    for city in held + pool:
        d = data[city]
        rows[city] = {}
        for p in PAIRS:
            if not d[p][1].sum():
                continue
            x, y, size, t = part(data, city, p)
            f = as_features(x, *size, contours=CONTOURS[p])
            rule = shipped[p]
            choice = rule.classify(f, t) if getattr(rule, "thumbnails", False) else \
                rule.classify(f)
            rows[city][p] = (balanced(y, choice), ceiling(y))
    for c in held:
        for p in PAIRS:
            big = data[c][p][0][:, SCALARS.index("rel_area")] > shipped[p].max_rel_area
            if big.any():
                print(f"{c} {p}: {int(big.sum())} regions larger than any training region "
                      "(hand rule)", file=sys.stderr)
    print_table("shipped model on the test cities (never seen in training or selection)",
                {c: rows[c] for c in held})
    print_table("shipped model on its training cities (fit, not a generalisation figure)",
                {c: rows[c] for c in pool})
    return 0

