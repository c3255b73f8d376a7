"""Scores of ``scripts/train_shape_rule.py``: balanced pixel accuracy, the region ceiling, the
hand-written rules replayed on cached regions, and the per-city tables.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from segprep.convert.shape.rules import (  # noqa: E402
    PersonSignRule,
    PoleGroupRule,
    VoidRule,
)
from shape_rule.data import PAIRS, as_features, load_cache  # noqa: E402


def balanced_counts(hit: np.ndarray, tot: np.ndarray) -> np.ndarray:
    """Balanced pixel accuracy from correctly labelled (``hit``) and true (``tot``) pixel counts
    per label (last axis; any leading axes are kept): the mean over the present labels of their
    recall, nan where none is present."""
    present = tot > 0
    with np.errstate(invalid="ignore"):
        return (hit / np.maximum(tot, 1)).sum(-1) / present.sum(-1)


def balanced(y: np.ndarray, choice: np.ndarray) -> float:
    """Balanced pixel accuracy of one label per region (``choice``) against true pixel counts
    ``y`` (n, k): mean over the present labels of their recall."""
    hit = np.array([y[choice == j, j].sum() for j in range(y.shape[1])])
    return float(balanced_counts(hit, y.sum(axis=0)))


def ceiling(y: np.ndarray) -> float:
    return balanced(y, y.argmax(axis=1))


RULES = {"person/sign": PersonSignRule(), "pole/polegroup": PoleGroupRule(), "void": VoidRule()}


def rule_choice(pair: str, x: np.ndarray, size, rule=None) -> np.ndarray:
    rule = rule or RULES[pair]
    return rule.classify(as_features(x, *size))


GOALS = {"person/sign": 0.02, "pole/polegroup": 0.03}
"""Issue 13's goal: at most this far below the city's region ceiling (the void trio has none)."""


def print_table(title: str, rows: dict[str, dict[str, tuple[float, float]]], goals=None) -> None:
    """rows: city → pair → (score, ceiling)."""
    pairs = list(PAIRS)
    print(f"\n{title}")
    print("| city | " + " | ".join(f"{p} | ceiling" for p in pairs) + " |")
    print("|---|" + "---|---|" * len(pairs))
    for city, r in rows.items():
        cells = []
        for p in pairs:
            s, c = r.get(p, (float("nan"), float("nan")))
            cells.append(f"{100 * s:.1f} | {100 * c:.1f}")
        print(f"| {city} | " + " | ".join(cells) + " |")
    for name, fn in (("mean", np.nanmean), ("worst", np.nanmin)):
        cells = []
        for p in pairs:
            s = [r[p][0] for r in rows.values() if p in r]
            if not s:
                cells.append("- | -")
                continue
            gap = [r[p][1] - r[p][0] for r in rows.values() if p in r]
            cities = [c for c, r in rows.items() if p in r]
            if name == "mean":
                cells.append(f"{100 * fn(s):.1f} | gap {100 * np.mean(gap):.1f}")
            else:  # the worst city's score, and the largest gap to a ceiling (with their cities)
                cells.append(f"{100 * fn(s):.1f} ({cities[int(np.nanargmin(s))]}) | gap "
                             f"{100 * np.max(gap):.1f} ({cities[int(np.argmax(gap))]})")
        print(f"| **{name}** | " + " | ".join(cells) + " |")
    cells = []
    for p in pairs:
        gap = [r[p][1] - r[p][0] for r in rows.values() if p in r]
        cells.append(f"{sum(g <= GOALS[p] + 1e-9 for g in gap)} of {len(gap)} | -" if p in GOALS
                     and gap else "- | -")
    print("| **within goal** | " + " | ".join(cells) + " |")


def report(args) -> int:
    data = load_cache(Path(args.cache))
    rows = {}
    for city, d in data.items():
        rows[city] = {p: (balanced(d[p][1], rule_choice(p, d[p][0], d["size"])), ceiling(d[p][1]))
                      for p in PAIRS if d[p][1].sum()}
    print_table("segprep's rules, every city (aachen was the old tuning city)", rows)
    return 0

