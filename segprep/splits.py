"""Seeded, grouped and optionally stratified train/val/test splits of a manifest.

* **Determinism**: records are sorted by path and groups by key before a
  ``numpy.random.default_rng(seed)`` permutation, so the same manifest (in any line order) and
  the same seed give the same split.
* **Groups** (``--group-by REGEX``): the regex is searched in each image path (``fpath_img``); the
  first capture group, or the whole match when the pattern has none, is the group key (Cityscapes
  city, CamVid sequence ``0001TP``, BDD100K video id). A group is never cut: no near-duplicate
  frames of one sequence end up on both sides of a split.
* **Sizes**: the targets are ``round(val·N)`` and ``round(test·N)`` images, train takes the rest.
  Groups are dealt in random order, each to a split it still fits in (remaining deficit, in
  images, at least the group's size), the relatively least filled one; groups that fit nowhere
  are dealt last, largest first, to the split with the largest deficit. Sizes are exact when the
  groups allow it and otherwise off by about one group.
* **Stratification** (``--stratify``): iterative stratification (Sechidis, Tsoumakas & Vlahavas,
  ECML PKDD 2011) on groups: repeatedly take the class present in the fewest not-yet-assigned
  groups, and deal those groups (in random order) to the split that still lacks most images
  containing that class, among the splits not yet full. This balances the number of images in
  which each class is present across splits, rare classes first.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from segprep.errors import SegprepError
from segprep.manifest import Record

SPLITS = ("train", "val", "test")


def compile_group_by(pattern: str) -> re.Pattern[str]:
    """Compile a ``--group-by`` regex.

    Raises:
        SegprepError: invalid regex.
    """
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise SegprepError("--group-by", f"invalid regex {pattern!r}: {exc}") from None


def group_key(pattern: re.Pattern[str], path: str) -> str | None:
    """The group of ``path``: the regex's first capture group if it has one, else the whole
    match (``re.search``); ``None`` when it does not match."""
    m = pattern.search(path)
    if m is None:
        return None
    key = m.group(1) if pattern.groups else m.group(0)
    return key if key is not None else m.group(0)


def group_records(records: Sequence[Record], pattern: re.Pattern[str] | None
                  ) -> dict[str, list[int]]:
    """Indices of ``records`` by group key (each record its own group without a pattern).

    Raises:
        SegprepError: the pattern matches some image paths but not others (the message gives the
            count and an example), since a silent fallback would leak frames across splits.
    """
    groups: dict[str, list[int]] = {}
    unmatched = []
    for i, r in enumerate(records):
        key = r.fpath_img if pattern is None else group_key(pattern, r.fpath_img)
        if key is None:
            unmatched.append(r.fpath_img)
            continue
        groups.setdefault(key, []).append(i)
    if unmatched:
        raise SegprepError("--group-by", f"{pattern.pattern!r} does not match {len(unmatched)} of "
                                         f"{len(records)} image paths, e.g. {unmatched[0]!r}")
    return groups


def target_sizes(n: int, val: float, test: float) -> np.ndarray:
    """``(3,)`` int64 images wanted in train, val, test (round half up; train gets the rest).

    Raises:
        SegprepError: fractions outside [0, 1) or summing to 1 or more.
    """
    for name, f in (("--val", val), ("--test", test)):
        if not 0.0 <= f < 1.0:
            raise SegprepError(name, f"must be a fraction in [0, 1), got {f}")
    if val + test >= 1.0:
        raise SegprepError("--val", f"--val + --test must be below 1, got {val + test:g}")
    n_val = int(np.floor(val * n + 0.5))
    n_test = int(np.floor(test * n + 0.5))
    return np.array([n - n_val - n_test, n_val, n_test], np.int64)


def assign_groups(sizes: np.ndarray, targets: np.ndarray, seed: int,
                  presence: np.ndarray | None = None) -> np.ndarray:
    """Deal groups to splits.

    Args:
        sizes: ``(G,)`` images per group, groups in a canonical (sorted-key) order.
        targets: ``(S,)`` images wanted per split (sums to ``sizes.sum()``).
        seed: RNG seed.
        presence: ``(G, K)`` images of each group that contain each class; enables iterative
            stratification (see the module docstring).

    Returns:
        ``(G,)`` int64 split index of each group.
    """
    sizes = np.asarray(sizes, np.int64)
    targets = np.asarray(targets, np.int64)
    g = sizes.size
    rng = np.random.default_rng(seed)
    order = rng.permutation(g)
    rank = np.empty(g, np.int64)
    rank[order] = np.arange(g)
    out = np.full(g, -1, np.int64)
    deficit = targets.astype(np.float64)
    s_count = deficit.size

    if presence is None:
        # pass 1, random order: a group goes where it fits (deficit >= size), to the split that
        # is relatively least filled; groups that fit nowhere wait for pass 2
        waiting = []
        for gi in order:
            fits = np.flatnonzero(deficit >= sizes[gi])
            if fits.size == 0:
                waiting.append(gi)
                continue
            rel = deficit[fits] / np.maximum(targets[fits], 1)
            s = int(fits[np.argmax(rel)])  # ties: the first split (train, val, test)
            out[gi] = s
            deficit[s] -= sizes[gi]
        # pass 2, largest first: each to the split with the largest deficit
        for gi in sorted(waiting, key=lambda x: (-sizes[x], rank[x])):
            s = int(np.argmax(deficit))
            out[gi] = s
            deficit[s] -= sizes[gi]
        return out

    presence = np.asarray(presence, np.float64)
    total = presence.sum(axis=0)  # (K,)
    frac = np.asarray(targets, np.float64) / max(float(np.sum(targets)), 1.0)
    want = frac[:, None] * total[None, :]  # (S, K) images-with-class wanted per split
    remaining = presence.sum(axis=0).copy()
    unassigned = np.ones(g, bool)
    while unassigned.any():
        live = remaining > 0
        if not live.any():
            for gi in order[unassigned[order]]:
                s = int(np.argmax(deficit))
                out[gi] = s
                deficit[s] -= sizes[gi]
            break
        c = int(np.flatnonzero(live)[np.argmin(remaining[live])])  # rarest class first
        members = np.flatnonzero(unassigned & (presence[:, c] > 0))
        for gi in members[np.argsort(rank[members])]:
            open_ = deficit > 0
            cand = np.flatnonzero(open_) if open_.any() else np.arange(s_count)
            # most wanted for this class; ties: largest size deficit, then split order
            best = cand[np.lexsort((cand, -deficit[cand], -want[cand, c]))[0]]
            out[gi] = best
            want[best] -= presence[gi]
            deficit[best] -= sizes[gi]
            remaining -= presence[gi]
            unassigned[gi] = False
    return out


@dataclass
class SplitResult:
    """Records per split and the group keys each split received."""

    records: dict[str, list[Record]]
    groups: dict[str, list[str]]
    targets: dict[str, int]


def split_records(records: Sequence[Record], val: float, test: float, seed: int = 0,
                  group_by: str | None = None,
                  image_classes: dict[str, Sequence[int]] | None = None,
                  num_classes: int | None = None) -> SplitResult:
    """Split manifest records into train / val / test.

    Args:
        records: the manifest's records (any order).
        val, test: fractions of images for val and test.
        seed: RNG seed (same seed and records → same split).
        group_by: regex whose match in ``fpath_img`` names the record's group.
        image_classes: ``fpath_segm`` → classes present in that mask; enables stratification.
        num_classes: ``K`` for ``image_classes`` (default: 1 + the largest class seen).

    Returns:
        a :class:`SplitResult`; each split's records sorted by path.

    Raises:
        SegprepError: bad fractions or regex, unmatched paths, duplicate images, or a mask
            missing from ``image_classes``.
    """
    recs = sorted(records, key=Record.sort_key)
    dup = [a.fpath_img for a, b in zip(recs, recs[1:]) if a.fpath_img == b.fpath_img]
    if dup:
        raise SegprepError(dup[0], f"listed more than once in the manifest ({len(dup)} "
                                   "duplicate(s)); run `segprep odgt validate`")
    targets = target_sizes(len(recs), val, test)
    pattern = compile_group_by(group_by) if group_by else None
    groups = group_records(recs, pattern)
    keys = sorted(groups)
    sizes = np.array([len(groups[k]) for k in keys], np.int64)
    presence = None
    if image_classes is not None:
        missing = [r.fpath_segm for r in recs if r.fpath_segm not in image_classes]
        if missing:
            raise SegprepError(missing[0], f"no class presence for {len(missing)} mask(s) of the "
                                           "manifest (stats computed from another manifest?)")
        k = num_classes or 1 + max((max(v) for v in image_classes.values() if len(v)), default=0)
        presence = np.zeros((len(keys), k), np.int64)
        for gi, key in enumerate(keys):
            for i in groups[key]:
                cls = np.asarray(image_classes[recs[i].fpath_segm], np.int64)
                cls = cls[(cls >= 0) & (cls < k)]
                presence[gi, cls] += 1
    assign = assign_groups(sizes, targets, seed, presence)
    out = {s: [] for s in SPLITS}
    out_groups = {s: [] for s in SPLITS}
    for gi, key in enumerate(keys):
        s = SPLITS[assign[gi]]
        out_groups[s].append(key)
        out[s].extend(recs[i] for i in groups[key])
    for s in SPLITS:
        out[s].sort(key=Record.sort_key)
    return SplitResult(out, out_groups, dict(zip(SPLITS, (int(t) for t in targets))))


def presence_balance(records: dict[str, Sequence[Record]],
                     image_classes: dict[str, Sequence[int]], num_classes: int) -> np.ndarray:
    """``(S, K)`` float64 share of each split's images that contain each class (NaN for an empty
    split), to compare splits with the whole set."""
    out = np.full((len(records), num_classes), np.nan)
    for si, recs in enumerate(records.values()):
        if not recs:
            continue
        m = np.zeros(num_classes)
        for r in recs:
            cls = np.asarray(image_classes[r.fpath_segm], np.int64)
            m[cls[(cls >= 0) & (cls < num_classes)]] += 1
        out[si] = m / len(recs)
    return out
