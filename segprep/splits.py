"""Seeded, grouped and optionally stratified train/val/test splits of a manifest.

* **Determinism**: records are sorted by path and groups by key before a
  ``numpy.random.default_rng(seed)`` permutation, so the same manifest (in any line order) and
  the same seed give the same split. The seed orders the heuristic and breaks ties between
  equally near assignments; it never changes how near the chosen one is.
* **Groups** (``--group-by REGEX``): the regex is searched in each image path (``fpath_img``); the
  first capture group, or the whole match when the pattern has none, is the group key (Cityscapes
  city, CamVid sequence ``0001TP``, BDD100K video id). A group is never cut: no near-duplicate
  frames of one sequence end up on both sides of a split. Without ``--group-by`` every image is
  its own group.
* **Sizes**: the requested sizes are ``w = (1 - val - test, val, test) · N`` images (real
  numbers); a split whose fraction is 0 receives nothing. The groups are assigned to the
  requested splits so as to minimise, lexicographically, the key of :func:`split_distance`:

  1. ``far``: the number of requested splits missed by at least their own size,
     ``|n_s - w_s| >= w_s`` (empty, or twice too big): an empty split counts here, so a split is
     left empty only when no assignment gives every requested split something nearer its
     request than nothing;
  2. ``dev = Σ_s |n_s - w_s| / w_s``: the sum of relative deviations, each split's miss
     measured in its own requested size (missing 10 images of a 50-image val weighs as much as
     missing 80 of a 400-image train). With two splits it is proportional to the miss in images.

  With at most :data:`EXACT_MAX_GROUPS` groups the search is exact: depth-first branch and bound
  over the number of groups of each distinct size sent to each split, with the bound of the
  continuous relaxation (the remaining images poured into the most under-filled splits, smallest
  request first), started from the heuristic's assignment and stopped (best found, reported as
  not proven) after :data:`SEARCH_NODE_BUDGET` nodes. With more groups, the heuristic: groups are
  dealt in seeded random order, each to a split it still fits in (remaining deficit at least the
  group's size), the relatively least filled one, groups that fit nowhere last, largest first, to
  the split with the largest deficit; then steepest-descent local search over moving one group
  and swapping two groups of different sizes between two splits until no move improves the key.
* **Stratification** (``--stratify``): iterative stratification (Sechidis, Tsoumakas & Vlahavas,
  ECML PKDD 2011) on groups: repeatedly take the class present in the fewest not-yet-assigned
  groups, and deal those groups (in random order) to the split that still lacks most images
  containing that class, among the requested splits not yet full (targets ``round(val·N)``,
  ``round(test·N)``). This balances the number of images in which each class is present across
  splits, rare classes first; sizes are then off by about one group.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

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
        shown = pattern.pattern if pattern is not None else None
        raise SegprepError("--group-by", f"{shown!r} does not match {len(unmatched)} of "
                                         f"{len(records)} image paths, e.g. {unmatched[0]!r}")
    return groups


EXACT_MAX_GROUPS = 20
"""Grouped splits with at most this many groups are searched exactly (branch and bound)."""

SEARCH_NODE_BUDGET = 1_000_000
"""Nodes the exact search may visit before it stops with the best assignment found."""

STOPPED = "best-found (exact search stopped at its node budget)"
""":attr:`Assignment.method` when the exact search ran out of nodes: the best assignment found
(at least as near as the heuristic's), not proven nearest."""

_EPS = 1e-9


def _check_fractions(val: float, test: float) -> None:
    for name, f in (("--val", val), ("--test", test)):
        if not 0.0 <= f < 1.0:
            raise SegprepError(name, f"must be a fraction in [0, 1), got {f}")
    if val + test >= 1.0:
        raise SegprepError("--val", f"--val + --test must be below 1, got {val + test:g}")


def target_sizes(n: int, val: float, test: float) -> np.ndarray:
    """``(3,)`` int64 images wanted in train, val, test (round half up; train gets the rest):
    the targets of ``--stratify``.

    Raises:
        SegprepError: fractions outside [0, 1) or summing to 1 or more.
    """
    _check_fractions(val, test)
    n_val = int(np.floor(val * n + 0.5))
    n_test = int(np.floor(test * n + 0.5))
    return np.array([n - n_val - n_test, n_val, n_test], np.int64)


def wanted_sizes(n: int, val: float, test: float) -> np.ndarray:
    """``(3,)`` float64 images requested in train, val, test: ``(1 - val - test, val, test) · n``.

    Raises:
        SegprepError: fractions outside [0, 1) or summing to 1 or more.
    """
    _check_fractions(val, test)
    return np.array([(1.0 - val - test) * n, val * n, test * n], np.float64)


def split_distance(counts: Sequence[float] | np.ndarray, wanted: Sequence[float] | np.ndarray
                   ) -> tuple[int, float]:
    """How far split sizes are from the requested ones (smaller is nearer; compare as tuples).

    Args:
        counts: ``(S,)`` images per split.
        wanted: ``(S,)`` images requested per split; a split with 0 requested must be empty.

    Returns:
        ``(far, dev)``: ``far`` the number of requested splits with ``|n - w| >= w`` (empty or at
        least twice too big), ``dev = Σ |n - w| / w`` over the requested splits (module
        docstring). ``(S + 1, inf)`` when a split that was not requested holds images.
    """
    far, dev = 0, 0.0
    for n, w in zip(counts, wanted):
        if w <= 0:
            if n > 0:
                return len(wanted) + 1, float("inf")
            continue
        d = abs(float(n) - float(w))
        far += d >= w - _EPS
        dev += d / w
    return int(far), float(dev)


def _better(a: tuple[int, float], b: tuple[int, float]) -> bool:
    """``a`` strictly nearer than ``b`` (``dev`` compared with a tolerance for float sums)."""
    return a[0] < b[0] or (a[0] == b[0] and a[1] < b[1] - _EPS)


@dataclass
class Assignment:
    """Result of :func:`search_groups`.

    Attributes:
        split: ``(G,)`` int64 split index (0 train, 1 val, 2 test) of each group.
        method: ``"exact"``, :data:`STOPPED` (node budget spent: best found, not proven),
            ``"heuristic"`` or ``"stratified"``.
        distance: :func:`split_distance` of the achieved sizes.
        nodes: branch-and-bound nodes visited (0 for the heuristic).
    """

    split: np.ndarray
    method: str
    distance: tuple[int, float]
    nodes: int = 0


def _sums(sizes: np.ndarray, split: np.ndarray, s_count: int) -> np.ndarray:
    return np.bincount(split, weights=sizes, minlength=s_count).astype(np.int64)


def _greedy(sizes: np.ndarray, wanted: np.ndarray, order: np.ndarray, rank: np.ndarray
            ) -> np.ndarray:
    """Seeded dealing (module docstring), onto the requested splits only."""
    allowed = np.flatnonzero(wanted > 0)
    out = np.full(sizes.size, -1, np.int64)
    deficit = wanted.astype(np.float64).copy()
    waiting = []
    for gi in order:  # pass 1, random order: where it fits, the relatively least filled split
        fits = allowed[deficit[allowed] >= sizes[gi]]
        if fits.size == 0:
            waiting.append(gi)
            continue
        rel = deficit[fits] / np.maximum(wanted[fits], 1.0)
        s = int(fits[np.argmax(rel)])  # ties: the first split (train, val, test)
        out[gi] = s
        deficit[s] -= sizes[gi]
    for gi in sorted(waiting, key=lambda x: (-sizes[x], rank[x])):  # pass 2, largest first
        s = int(allowed[np.argmax(deficit[allowed])])
        out[gi] = s
        deficit[s] -= sizes[gi]
    return out


def _vector_distance(counts: np.ndarray, wanted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`split_distance` of each row of ``counts`` ``(M, S)`` (requested splits only)."""
    req = wanted > 0
    d = np.abs(counts[:, req] - wanted[req])
    return (d >= wanted[req] - _EPS).sum(axis=1), (d / wanted[req]).sum(axis=1)


def _local_search(sizes: np.ndarray, split: np.ndarray, wanted: np.ndarray, rank: np.ndarray
                  ) -> np.ndarray:
    """Steepest descent from ``split``: move one group, or swap two groups of different sizes,
    between two requested splits, while that makes the key strictly smaller. Among equally good
    moves the first in (split pair, move, swap, size) order; the group moved is the one of that
    size with the lowest seeded rank, so the result is deterministic."""
    split = split.copy()
    s_count = wanted.size
    allowed = [int(s) for s in np.flatnonzero(wanted > 0)]
    counts = _sums(sizes, split, s_count)
    while True:
        key = split_distance(counts, wanted)
        best = None  # (key, a, b, x, y): x leaves a for b, y (or 0) leaves b for a
        for ai, a in enumerate(allowed):
            for b in allowed[ai + 1:]:
                xs = np.unique(sizes[split == a])
                ys = np.unique(sizes[split == b])
                cand = [(x, 0) for x in xs] + [(0, y) for y in ys]
                cand += [(x, y) for x in xs for y in ys if x != y]
                if not cand:
                    continue
                xy = np.array(cand, np.int64)
                delta = xy[:, 0] - xy[:, 1]  # images a -> b
                rows = np.repeat(counts[None, :].astype(np.float64), len(cand), axis=0)
                rows[:, a] -= delta
                rows[:, b] += delta
                far, dev = _vector_distance(rows, wanted)
                # lexicographic argmin with tolerance: the smallest far, then the smallest dev
                m = far == far.min()
                i = int(np.flatnonzero(m & (dev <= dev[m].min() + _EPS))[0])
                k = (int(far[i]), float(dev[i]))
                if _better(k, key) and (best is None or _better(k, best[0])):
                    best = (k, a, b, int(xy[i, 0]), int(xy[i, 1]))
        if best is None:
            return split
        _, a, b, x, y = best
        for src, dst, size in ((a, b, x), (b, a, y)):
            if size:
                members = np.flatnonzero((split == src) & (sizes == size))
                gi = int(members[np.argmin(rank[members])])
                split[gi] = dst
                counts[src] -= size
                counts[dst] += size


def _branch_and_bound(sizes: np.ndarray, wanted: np.ndarray, rank: np.ndarray, seed: int,
                      start: np.ndarray, budget: int) -> tuple[np.ndarray, bool, int]:
    """Exact search over how many groups of each distinct size go to each requested split
    (module docstring). Returns ``(split, proven, nodes)``; ``start`` is the incumbent, kept on
    ties."""
    s_count = wanted.size
    allowed = [int(s) for s in np.flatnonzero(wanted > 0)]
    others = [s for s in allowed if s != 0]  # train (0) takes what the others do not
    levels = sorted({int(x) for x in sizes}, reverse=True)
    mult = [int(np.sum(sizes == u)) for u in levels]
    remaining_after = np.cumsum([u * m for u, m in zip(levels, mult)][::-1])[::-1].tolist()
    remaining_after = remaining_after[1:] + [0]
    w = [float(x) for x in wanted]
    rng = np.random.default_rng(seed)

    def bound(a: list[int], rem: int, min_rem: int) -> tuple[int, float]:
        far, dev, under = 0, 0.0, []
        for s in allowed:
            x, ws = a[s], w[s]
            if x >= ws:
                dev += (x - ws) / ws
                far += x - ws >= ws - _EPS
            else:
                under.append((ws, ws - x))
                far += x == 0 and (rem == 0 or min_rem - ws >= ws - _EPS)
        r = float(rem)
        for ws, d in sorted(under):  # pour the rest where it weighs most: smallest request
            take = min(d, r)
            dev += (d - take) / ws
            r -= take
        return far, dev

    best_key = split_distance(_sums(sizes, start, s_count), wanted)
    best_counts: list[tuple[int, ...]] | None = None
    nodes = 0
    stopped = False
    chosen: list[tuple[int, ...]] = []

    def choices(m: int) -> list[tuple[int, ...]]:
        if len(others) == 0:
            return [()]
        if len(others) == 1:
            return [(c,) for c in range(m + 1)]
        return [(c1, c2) for c1 in range(m + 1) for c2 in range(m + 1 - c1)]

    def dfs(level: int, a: list[int]) -> None:
        nonlocal best_key, best_counts, nodes, stopped
        if stopped:
            return
        nodes += 1
        if nodes > budget:
            stopped = True
            return
        if level == len(levels):
            key = split_distance(a, w)
            if _better(key, best_key):
                best_key, best_counts = key, list(chosen)
            return
        u, m = levels[level], mult[level]
        rem = remaining_after[level]
        min_rem = levels[-1] if level + 1 < len(levels) else 0
        kids = []
        cs = choices(m)
        tie = rng.permutation(len(cs))
        for ci, c in enumerate(cs):
            b = list(a)
            for s, k in zip(others, c):
                b[s] += k * u
            b[0] += (m - sum(c)) * u
            lb = bound(b, rem, min_rem)
            if _better(lb, best_key):
                kids.append((lb, int(tie[ci]), c, b))
        kids.sort(key=lambda t: (t[0][0], t[0][1], t[1]))
        for lb, _, c, b in kids:
            if not _better(lb, best_key):  # the incumbent may have improved meanwhile
                continue
            chosen.append(c)
            dfs(level + 1, b)
            chosen.pop()
            if stopped:
                return

    dfs(0, [0] * s_count)
    if best_counts is None:
        return start, not stopped, nodes
    out = np.zeros(sizes.size, np.int64)
    for u, c in zip(levels, best_counts):
        members = np.flatnonzero(sizes == u)
        members = members[np.argsort(rank[members], kind="stable")]
        i = 0
        for s, k in zip(others, c):
            out[members[i:i + k]] = s
            i += k
    return out, not stopped, nodes


def search_groups(sizes: np.ndarray, wanted: np.ndarray, seed: int,
                  exact_max_groups: int = EXACT_MAX_GROUPS,
                  node_budget: int = SEARCH_NODE_BUDGET) -> Assignment:
    """The assignment of groups to splits nearest the requested sizes (module docstring).

    Args:
        sizes: ``(G,)`` images per group (positive ints), groups in a canonical (sorted-key)
            order.
        wanted: ``(S,)`` images requested per split (floats summing to ``sizes.sum()``; a split
            with 0 receives nothing, train (0) must be requested).
        seed: orders the heuristic and breaks ties.
        exact_max_groups: search exactly up to this many groups.
        node_budget: branch-and-bound nodes before the exact search stops.

    Returns:
        an :class:`Assignment`.
    """
    sizes = np.asarray(sizes, np.int64)
    wanted = np.asarray(wanted, np.float64)
    rng = np.random.default_rng(seed)
    order = rng.permutation(sizes.size)
    rank = np.empty(sizes.size, np.int64)
    rank[order] = np.arange(sizes.size)
    split = _local_search(sizes, _greedy(sizes, wanted, order, rank), wanted, rank)
    method, nodes = "heuristic", 0
    if 0 < sizes.size <= exact_max_groups:
        split, proven, nodes = _branch_and_bound(sizes, wanted, rank, seed, split, node_budget)
        method = "exact" if proven else STOPPED
    return Assignment(split, method, split_distance(_sums(sizes, split, wanted.size), wanted),
                      nodes)


def _stratify(sizes: np.ndarray, targets: np.ndarray, presence: np.ndarray, order: np.ndarray,
              rank: np.ndarray) -> np.ndarray:
    """Iterative stratification over groups onto the requested splits (module docstring)."""
    g = sizes.size
    allowed = np.flatnonzero(targets > 0)
    out = np.full(g, -1, np.int64)
    deficit = targets.astype(np.float64)
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
                s = int(allowed[np.argmax(deficit[allowed])])
                out[gi] = s
                deficit[s] -= sizes[gi]
            break
        c = int(np.flatnonzero(live)[np.argmin(remaining[live])])  # rarest class first
        members = np.flatnonzero(unassigned & (presence[:, c] > 0))
        for gi in members[np.argsort(rank[members])]:
            open_ = allowed[deficit[allowed] > 0]
            cand = open_ if open_.size else allowed
            # most wanted for this class; ties: largest size deficit, then split order
            best = cand[np.lexsort((cand, -deficit[cand], -want[cand, c]))[0]]
            out[gi] = best
            want[best] -= presence[gi]
            deficit[best] -= sizes[gi]
            remaining -= presence[gi]
            unassigned[gi] = False
    return out


def assign_groups(sizes: np.ndarray, targets: np.ndarray, seed: int,
                  presence: np.ndarray | None = None) -> np.ndarray:
    """Deal groups to splits.

    Args:
        sizes: ``(G,)`` images per group, groups in a canonical (sorted-key) order.
        targets: ``(S,)`` images wanted per split (sums to ``sizes.sum()``; may be fractional);
            a split with 0 receives no group.
        seed: RNG seed.
        presence: ``(G, K)`` images of each group that contain each class; enables iterative
            stratification (see the module docstring).

    Returns:
        ``(G,)`` int64 split index of each group: :func:`search_groups`'s without ``presence``.
    """
    sizes = np.asarray(sizes, np.int64)
    targets = np.asarray(targets, np.float64)
    if presence is None:
        return search_groups(sizes, targets, seed).split
    rng = np.random.default_rng(seed)
    order = rng.permutation(sizes.size)
    rank = np.empty(sizes.size, np.int64)
    rank[order] = np.arange(sizes.size)
    return _stratify(sizes, targets, presence, order, rank)


@dataclass
class SplitResult:
    """Records per split, the group keys each split received, and how the sizes were chosen.

    Attributes:
        records: split name → its records, sorted by path.
        groups: split name → its group keys.
        targets: split name → ``round(fraction · N)`` images (train: the rest).
        wanted: split name → requested images ``fraction · N`` (float).
        method: how the groups were assigned (:class:`Assignment`).
        distance: :func:`split_distance` of the achieved sizes.
    """

    records: dict[str, list[Record]]
    groups: dict[str, list[str]]
    targets: dict[str, int]
    wanted: dict[str, float] = field(default_factory=dict)
    method: str = ""
    distance: tuple[int, float] = (0, 0.0)

    def empty_requested(self) -> list[str]:
        """Splits that were asked for (fraction > 0) but hold no image."""
        return [s for s in SPLITS if self.wanted.get(s, 0) > 0 and not self.records[s]]


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
        a :class:`SplitResult`; each split's records sorted by path. A requested split may be
        empty (:meth:`SplitResult.empty_requested`): the caller decides whether to accept it.

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
    wanted = wanted_sizes(len(recs), val, test)
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
    if presence is None:
        found = search_groups(sizes, wanted, seed)
        assign, method = found.split, found.method
    else:
        assign, method = assign_groups(sizes, targets, seed, presence), "stratified"
    out: dict[str, list[Record]] = {s: [] for s in SPLITS}
    out_groups: dict[str, list[str]] = {s: [] for s in SPLITS}
    for gi, key in enumerate(keys):
        s = SPLITS[assign[gi]]
        out_groups[s].append(key)
        out[s].extend(recs[i] for i in groups[key])
    for s in SPLITS:
        out[s].sort(key=Record.sort_key)
    distance = split_distance([len(out[s]) for s in SPLITS], wanted)
    return SplitResult(out, out_groups, dict(zip(SPLITS, (int(t) for t in targets))),
                       dict(zip(SPLITS, (float(w) for w in wanted))), method, distance)


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
