"""The pair count of the panoptic evaluation, straight from two PNGs' filtered rows.

:func:`pair_table_png` gives what :func:`segprep.evaluation.panoptic.pair_table` gives for the
decoded images, without ever holding them: one numba pass over both inflated streams undoes the
PNG row filters (PNG specification 1.2, section 9) into two rows per image and counts the
``(ground-truth id, predicted id)`` pairs of each row as it is decoded.

Label maps are flat almost everywhere, and the pass spends its time only where they are not.
Up and None rows are plain vectorised byte loops. In a Sub or Paeth row, a pixel whose filtered
bytes are zero (Paeth: under a pixel equal to its left neighbour) repeats the pixel on its left:
a vectorised mask finds the other pixels, which alone get the filter arithmetic, and the runs
between them are filled. The pairs of a row are counted at the pixels where either image changes
from its left neighbour, found by one vectorised XOR of each row with itself shifted by a pixel,
scanned 64 bytes at a time; ids are looked up in small hash tables. Average rows are decoded byte
by byte, as :func:`segprep.io.png_fast.decode` does.

Measured on the 205 shared Cityscapes frames (2048x1024, Pillow-written RGB, one core): about
1.3-1.7 ms a frame for both decodes and the count, plus 0.55 ms of libdeflate inflate, against
13.3 ms for ``png_fast.decode`` twice and ``pair_table`` (``scripts/bench_panoptic.py`` has the
end-to-end figures).
"""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np

from segprep.errors import SegprepError
from segprep.io import png_fast
from segprep.io.scratch import scratch

_PAD = 8
"""Zero bytes left of each row buffer: the "left" and "upper left" bytes of a row's first pixel,
which the PNG filters take as 0."""


_INLINED = ("_hash_table", "_lookup", "_filt", "_fill", "_changes", "_unfilter_row",
            "_count_row")
"""The helpers of :func:`_png_pairs`, callees first: compiled with ``inline="always"`` (numba
inlines them into its IR, as it would closures) and bound under their names before it is
compiled, since numba resolves the globals a kernel calls when it compiles it."""
_SOURCES: dict[str, Callable] = {}


def _kernel(name: str):
    """The numba-compiled kernel ``name`` (:func:`segprep.jit.kernel`), its helpers first."""
    from segprep.jit import kernel

    g = globals()
    for helper in _INLINED:
        source = _SOURCES.setdefault(helper, g[helper])
        g[helper] = kernel(source, inline="always", boundscheck=False)
    return kernel(g[name], boundscheck=False)


def _hash_table(keys):  # pragma: no cover - runs compiled by numba
    """Open addressing of ``keys`` (slot: key index, -1 empty), 4 slots per key or more."""
    size = 16
    while size < 4 * keys.size:
        size *= 2
    slots = np.full(size, -1, np.int64)
    for k in range(keys.size):
        h = (keys[k] * 2654435761) & (size - 1)
        while slots[h] >= 0:
            h = (h + 1) & (size - 1)
        slots[h] = k
    return slots


def _lookup(slots, keys, v):  # pragma: no cover - runs compiled by numba
    """The index of ``v`` in ``keys`` (hashed in ``slots`` by :func:`_hash_table`), or
    ``keys.size``."""
    mask = slots.size - 1
    h = (v * 2654435761) & mask
    while True:
        k = slots[h]
        if k < 0:
            return keys.size
        if keys[k] == v:
            return k
        h = (h + 1) & mask


def _filt(raw, src, cur, prev, s, e, bpp, f):  # pragma: no cover - runs compiled by numba
    """Undo filter ``f`` (1 Sub, 3 Average or 4 Paeth) on bytes ``s`` to ``e`` of a row, in
    order: ``raw[src:]`` the filtered row, ``cur``/``prev`` the row buffers (bytes from
    :data:`_PAD`)."""
    P = _PAD
    for i in range(s, e):
        rv = np.int32(raw[src + i])
        a = np.int32(cur[P + i - bpp])
        if f == 1:
            cur[P + i] = np.uint8((rv + a) & 255)
            continue
        b = np.int32(prev[P + i])
        if f == 3:
            cur[P + i] = np.uint8((rv + ((a + b) >> 1)) & 255)
            continue
        c = np.int32(prev[P + i - bpp])
        pa = abs(b - c)  # |p - a| with p = a + b - c
        pb = abs(a - c)
        pc = abs(a + b - c - c)
        if pa <= pb and pa <= pc:
            pred = a
        elif pb <= pc:
            pred = b
        else:
            pred = c
        cur[P + i] = np.uint8((rv + pred) & 255)


def _fill(cur, s, e, bpp):  # pragma: no cover - runs compiled by numba
    """Bytes ``s`` to ``e`` of ``cur``: the pixel before ``s`` repeated (a loop of constant
    stride per pixel size, which is vectorised)."""
    n = (e - s) // bpp
    dst = cur[s:e]
    v0 = cur[s - bpp]
    v1 = cur[s - bpp + 1]
    v2 = cur[s - bpp + 2]
    if bpp == 3:
        for x in range(n):
            dst[3 * x] = v0
            dst[3 * x + 1] = v1
            dst[3 * x + 2] = v2
    else:
        v3 = cur[s - 1]
        for x in range(n):
            dst[4 * x] = v0
            dst[4 * x + 1] = v1
            dst[4 * x + 2] = v2
            dst[4 * x + 3] = v3


def _changes(diff, nbytes, bpp, ev):  # pragma: no cover - runs compiled by numba
    """The pixels ``x >= 1`` whose bytes are not all zero in ``diff`` (``nbytes`` bytes, then at
    least 64 zero bytes) into ``ev``; returns their count. Scans 64 bytes, then 8, at a time."""
    words = diff[:8 * ((nbytes + 63) // 64) * 8].view(np.uint64)
    low7 = np.uint64(0x7F7F7F7F7F7F7F7F)
    high = np.uint64(0x8080808080808080)
    byte_index = np.uint64(0x0001020304050607)
    one = np.uint64(1)
    seven = np.uint64(7)
    top = np.uint64(56)
    n = 0
    lastx = np.int64(-1)
    for blk in range(0, words.size, 8):
        acc = np.uint64(0)
        for w in range(blk, blk + 8):
            acc |= words[w]
        if acc == 0:
            continue
        for w in range(blk, blk + 8):
            v = words[w]
            if v == 0:
                continue
            # bit 7 of each non-zero byte, visited lowest first (little-endian: in order)
            m = (((v & low7) + low7) | v) & high
            while m != 0:
                bit = m & (~m + one)
                m ^= bit
                # the byte of that bit: 1 << 8k times 0x0001020304050607 has k on top
                b = 8 * w + np.int64(((bit >> seven) * byte_index) >> top)
                x = (b * 2863311531) >> 33 if bpp == 3 else b >> 2
                ev[n] = x  # kept when new and not the first pixel (branch-free)
                n += np.int64((x != lastx) & (x > 0))
                lastx = x
    return n


def _unfilter_row(raw, cur, prev, y, width, bpp, diff, uev):  # pragma: no cover - numba
    """Undo the filter of row ``y`` of ``raw`` (inflated image data) into ``cur`` (``prev``: the
    row above, both from byte :data:`_PAD`); ``diff``/``uev``: work space. Returns False for an
    unknown filter type."""
    P = _PAD
    stride = width * bpp
    src = y * (stride + 1) + 1
    f = raw[src - 1]
    # slices, not offset indices: loops over them are vectorised (an index that might be
    # negative is not)
    if f == 0:
        dst = cur[P:P + stride]
        rs = raw[src:src + stride]
        for i in range(stride):
            dst[i] = rs[i]
    elif f == 2:
        dst = cur[P:P + stride]
        rs = raw[src:src + stride]
        up = prev[P:P + stride]
        for i in range(stride):
            dst[i] = np.uint8(rs[i] + up[i])
    elif f == 1 or f == 4:
        # Sub: a pixel of zero bytes repeats its left neighbour; Paeth: so does one under a
        # pixel equal to its own left neighbour (b == c). Only the other pixels (and the first)
        # need the filter arithmetic; the runs between them are filled.
        rs = raw[src:src + stride]
        if f == 1:
            for i in range(stride):
                diff[i] = rs[i]
        else:
            up = prev[P:P + stride]
            upleft = prev[P - bpp:P + stride - bpp]
            for i in range(stride):
                diff[i] = rs[i] | (up[i] ^ upleft[i])
        for i in range(stride, stride + 64):
            diff[i] = 0
        ne = _changes(diff, stride, bpp, uev)
        _filt(raw, src, cur, prev, 0, bpp, bpp, f)
        x = 1
        for q in range(ne + 1):
            xe = uev[q] if q < ne else width
            if xe > x:
                _fill(cur, P + x * bpp, P + xe * bpp, bpp)
            if q < ne:
                _filt(raw, src, cur, prev, xe * bpp, xe * bpp + bpp, bpp, f)
                x = xe + 1
    elif f == 3:
        _filt(raw, src, cur, prev, 0, stride, bpp, f)
    else:
        return False
    return True


def _count_row(gcur, gbpp, pcur, pbpp, width, diff, gev, pev, ghash, gt_keys, phash,
               pred_keys, table, unknown):  # pragma: no cover - runs compiled by numba
    """Add the ``(gt id, pred id)`` pairs of one decoded row pair (``gcur``/``pcur`` from byte
    :data:`_PAD`) to ``table``, counted at the pixels where either map changes from its left
    neighbour, in increasing order; ``diff``/``gev``/``pev``: work space."""
    P = _PAD
    ncol = pred_keys.size + 1
    gstride = width * gbpp
    pstride = width * pbpp
    gh = gcur[P:P + gstride]
    gl = gcur[P - gbpp:P + gstride - gbpp]
    ph = pcur[P:P + pstride]
    pl = pcur[P - pbpp:P + pstride - pbpp]
    if gbpp == pbpp:  # one scan of both maps' changes
        for i in range(gstride):
            diff[i] = (gh[i] ^ gl[i]) | (ph[i] ^ pl[i])
        ng = _changes(diff, gstride, gbpp, gev)
        npv = 0
    else:
        for i in range(gstride):
            diff[i] = gh[i] ^ gl[i]
        for i in range(gstride, gstride + 64):
            diff[i] = 0
        ng = _changes(diff, gstride, gbpp, gev)
        for i in range(pstride):
            diff[i] = ph[i] ^ pl[i]
        for i in range(pstride, pstride + 64):
            diff[i] = 0
        npv = _changes(diff, pstride, pbpp, pev)
    cell = 0
    last = 0
    i = 0
    j = 0
    x = 0
    while True:
        a = P + x * gbpp
        g = (np.int64(gcur[a]) | (np.int64(gcur[a + 1]) << 8)
             | (np.int64(gcur[a + 2]) << 16))
        a = P + x * pbpp
        p = (np.int64(pcur[a]) | (np.int64(pcur[a + 1]) << 8)
             | (np.int64(pcur[a + 2]) << 16))
        # every listed pixel starts a new run (its ids may equal the last ones: a change of the
        # alpha byte only, or of the other map); no branch on which id changed
        table[cell] += x - last
        last = x
        gi = _lookup(ghash, gt_keys, g)
        pj = _lookup(phash, pred_keys, p)
        if pj == pred_keys.size and unknown[1] == 0:
            unknown[0] = p
            unknown[1] = 1
        cell = gi * ncol + pj
        while i < ng and gev[i] <= x:
            i += 1
        while j < npv and pev[j] <= x:
            j += 1
        nx = width
        if i < ng:
            nx = gev[i]
        if j < npv and pev[j] < nx:
            nx = pev[j]
        if nx == width:
            break
        x = nx
    table[cell] += width - last


def _png_pairs(graw, gbpp, praw, pbpp, height, width, rows, gt_keys, pred_keys, table,
               unknown):  # pragma: no cover - runs compiled by numba
    """Undo the row filters of two 8-bit RGB(A) PNGs of the same size and count their id pairs.

    ``graw``/``praw``: inflated image data (each row: filter byte, then ``width * bpp`` bytes);
    ``gbpp``/``pbpp``: 3 or 4 bytes per pixel; ``rows``: ``(4, _PAD + 4 * width)`` uint8 work
    rows (ground truth: 0 and 1, prediction: 2 and 3, alternating as current and previous);
    ``gt_keys``/``pred_keys``/``table``/``unknown``: as ``panoptic._pair_table``.

    Returns 0, or ``y + 1`` (ground truth) / ``-(y + 1)`` (prediction) for a row ``y`` whose
    filter type is unknown.
    """
    for r in range(4):
        for i in range(rows.shape[1]):
            rows[r, i] = 0
    ghash = _hash_table(gt_keys)
    phash = _hash_table(pred_keys)
    diff = np.zeros(4 * width + 128, np.uint8)
    gev = np.empty(width + 1, np.int64)
    uev = np.empty(width + 1, np.int64)
    pev = np.empty(width + 1, np.int64)
    for y in range(height):
        gcur = rows[y & 1]
        pcur = rows[2 + (y & 1)]
        if not _unfilter_row(graw, gcur, rows[1 - (y & 1)], y, width, gbpp, diff, uev):
            return y + 1
        if not _unfilter_row(praw, pcur, rows[3 - (y & 1)], y, width, pbpp, diff, uev):
            return -(y + 1)
        _count_row(gcur, gbpp, pcur, pbpp, width, diff, gev, pev, ghash, gt_keys, phash,
                   pred_keys, table, unknown)
    return 0


def rgb_png(data: bytes, where: str | os.PathLike) -> png_fast.Idat | None:
    """The container of an 8-bit, non-interlaced RGB or RGBA PNG (what :func:`pair_table_png`
    reads), or None for any other kind of PNG.

    Raises:
        SegprepError: not a PNG, truncated, a bad CRC (:func:`segprep.io.png_fast.parse_idat`).
    """
    info = png_fast.parse_idat(data, where)
    if info.depth == 8 and info.color in (2, 6) and info.interlace == 0:
        return info
    return None


def pair_table_png(gt: png_fast.Idat, pred: png_fast.Idat, gt_keys: np.ndarray,
                   pred_keys: np.ndarray, gt_where: str | os.PathLike = "",
                   pred_where: str | os.PathLike = "") -> tuple[np.ndarray, int | None]:
    """:func:`segprep.evaluation.panoptic.pair_table` of two PNGs, read from their image data.

    Args:
        gt, pred: :func:`rgb_png` containers of the same width and height.
        gt_keys, pred_keys: sorted unique int64 ids (G and P of them).
        gt_where, pred_where: the files, for error messages.

    Returns:
        ``(table, unknown)`` exactly as ``pair_table`` returns them for the decoded images.

    Raises:
        SegprepError: corrupt or truncated image data, an unknown filter type (naming the file
            and the row).
        ValueError: sizes that differ (the caller checks them first).
    """
    if (gt.width, gt.height) != (pred.width, pred.height):
        raise ValueError("pair_table_png: images of different sizes")
    graw = png_fast.inflate(gt, gt_where, "panoptic_png_gt")
    praw = png_fast.inflate(pred, pred_where, "panoptic_png_pred")
    width, height = gt.width, gt.height
    rows = scratch("panoptic_png_rows", (4, _PAD + 4 * width), np.uint8)
    table = np.zeros((gt_keys.size + 1) * (pred_keys.size + 1), np.int64)
    unknown = np.zeros(2, np.int64)
    bad = _kernel("_png_pairs")(graw, 3 if gt.color == 2 else 4, praw,
                                3 if pred.color == 2 else 4, height, width, rows,
                                gt_keys, pred_keys, table, unknown)
    if bad:
        where = gt_where if bad > 0 else pred_where
        raise SegprepError(where, f"corrupt PNG (unknown filter type in row {abs(bad) - 1})")
    return (table.reshape(gt_keys.size + 1, pred_keys.size + 1),
            int(unknown[0]) if unknown[1] else None)
