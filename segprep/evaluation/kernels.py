"""Compiled kernels of the evaluator (the joint histogram and the ground-truth code maps), and
the label-PNG reader it uses.

PNG decoding is left to the libraries (libpng through ``imagecodecs``, Pillow for palette
images): the codec is not this project's business, only that the decoded samples are exact.

The joint histogram counts ``(code, prediction)`` pairs over two equally shaped maps in one pass,
adding runs of equal pairs at once (label maps are long runs): it gives the confusion matrix and
every per-instance count of the Cityscapes protocol from one scan of the pixels.

Every kernel is compiled with ``nogil=True`` (threads evaluate frames in parallel) and cached on
disk by numba; numba is imported on first use only.
"""

from __future__ import annotations

import numpy as np

from segprep.errors import SegprepError
from segprep.io import decode_label, png_header


def _joint_hist(code, pred, out):  # pragma: no cover - runs compiled by numba
    """``out[code[i] * 256 + pred[i]] += 1`` for every i, adding runs of equal pairs at once.

    ``code``: ``(N,)`` uint8/uint16; ``pred``: ``(N,)`` uint8; ``out``: ``(M * 256,)`` int64.
    Runs are found 8 pixels at a time where both maps are constant (one 64-bit compare each for
    uint8 codes). Returns 0, or 1 if a code is ``>= M`` (``out`` is then incomplete).
    """
    n = code.size
    if n == 0:
        return 0
    size = out.size
    rep = np.uint64(0x0101010101010101)
    nb = n // 8
    p64 = pred[: nb * 8].view(np.uint64)
    wide = code.itemsize == 1
    c64 = code[: nb * 8].view(np.uint64) if wide else p64
    key = (np.int64(code[0]) << 8) | np.int64(pred[0])
    crep = np.uint64(code[0]) * rep
    prep = np.uint64(pred[0]) * rep
    cur = code[0]
    run = np.int64(0)
    for j in range(nb):
        if p64[j] == prep:
            if wide:
                if c64[j] == crep:
                    run += 8
                    continue
            else:
                same = True
                for q in range(8 * j, 8 * j + 8):
                    if code[q] != cur:
                        same = False
                        break
                if same:
                    run += 8
                    continue
        for i in range(8 * j, 8 * j + 8):
            k = (np.int64(code[i]) << 8) | np.int64(pred[i])
            if k == key:
                run += 1
            else:
                if key >= size:
                    return 1
                out[key] += run
                key = k
                run = 1
                cur = code[i]
                crep = np.uint64(code[i]) * rep
                prep = np.uint64(pred[i]) * rep
    for i in range(nb * 8, n):
        k = (np.int64(code[i]) << 8) | np.int64(pred[i])
        if k == key:
            run += 1
        else:
            if key >= size:
                return 1
            out[key] += run
            key = k
            run = 1
    if key >= size:
        return 1
    out[key] += run
    return 0


def _pair_codes(values, instances, use_inst, inst_min, codes, table_keys, table_codes,
                keys):  # pragma: no cover - runs compiled by numba
    """Number the distinct ``(instance, value)`` pairs of two maps in first-seen order.

    ``values``: ``(N,)`` uint8/uint16; ``instances``: ``(N,)`` uint16 (ignored unless
    ``use_inst``; ids ``<= inst_min`` count as 0); ``codes``: ``(N,)`` uint16 output;
    ``table_keys``/``table_codes``: ``(T,)`` int64/int32 open-addressing hash table (T a power of
    two, keys -1); ``keys``: ``(65536,)`` int64 output, key ``(instance << 16) | value`` of each
    code. Returns the number of codes, or -1 if there are more than 65536.
    """
    n = values.size
    mask = table_keys.size - 1
    m = 0
    prev = np.int64(-1)
    prev_code = 0
    pv = values[0] if n else values.dtype.type(0)
    pi = instances[0] if use_inst and n else instances.dtype.type(0)
    i = 0
    while i < n:
        # 8 pixels with the previous pixel's value (and instance): the previous code
        if prev >= 0 and (i & 7) == 0 and i + 8 <= n:
            same = True
            for q in range(i, i + 8):
                if values[q] != pv or (use_inst and instances[q] != pi):
                    same = False
                    break
            if same:
                for q in range(i, i + 8):
                    codes[q] = prev_code
                i += 8
                continue
        inst = np.int64(0)
        if use_inst:
            pi = instances[i]
            inst = np.int64(pi)
            if inst <= inst_min:
                inst = np.int64(0)
        pv = values[i]
        key = (inst << 16) | np.int64(pv)
        if key != prev:
            h = (key * np.int64(2654435761)) & mask
            while True:
                k = table_keys[h]
                if k == key:
                    prev_code = table_codes[h]
                    break
                if k == -1:
                    if m >= keys.size:
                        return -1
                    table_keys[h] = key
                    table_codes[h] = m
                    keys[m] = key
                    prev_code = m
                    m += 1
                    break
                h = (h + 1) & mask
            prev = key
        codes[i] = prev_code
        i += 1
    return m


def pair_codes(values: np.ndarray, instances: np.ndarray | None = None,
               inst_min: int = 1000) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Code map of the distinct ``(instance, value)`` pairs of a label map (one pass, by hash).

    Args:
        values: ``(H, W)`` uint8/uint16 label values.
        instances: optional ``(H, W)`` uint16 instance ids; ids ``<= inst_min`` are "no instance".
        inst_min: see above (Cityscapes: 1000).

    Returns:
        ``(codes, values_of_code, instance_of_code)``: ``(H, W)`` uint8 (uint16 beyond 256 codes)
        codes numbered in first-seen (row-major) order, and ``(M,)`` int64 value and instance id
        (0: none) of each code.

    Raises:
        ValueError: shapes or dtypes do not fit, or more than 65536 distinct pairs.
    """
    values = np.ascontiguousarray(values)
    if values.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"values must be uint8/uint16, not {values.dtype}")
    if instances is not None:
        instances = np.ascontiguousarray(instances)
        if instances.shape != values.shape or instances.dtype != np.uint16:
            raise ValueError("instances must be uint16 of the values' shape")
    codes = np.empty(values.shape, np.uint16)
    table_keys = np.full(1 << 17, -1, np.int64)
    table_codes = np.zeros(1 << 17, np.int32)
    keys = np.empty(65536, np.int64)
    inst_arg = instances.reshape(-1) if instances is not None else np.zeros(1, np.uint16)
    m = _kernel("_pair_codes")(values.reshape(-1), inst_arg, instances is not None,
                               np.int64(inst_min), codes.reshape(-1), table_keys, table_codes,
                               keys)
    if m < 0:
        raise ValueError("more than 65536 distinct (instance, value) pairs")
    keys = keys[:m]
    if m <= 256:
        codes = codes.astype(np.uint8)
    return codes, keys & 0xFFFF, keys >> 16


def _kernel(name: str):
    """The numba-compiled kernel ``name`` (:func:`segprep.jit.kernel`: compiled, or loaded from
    the disk cache, once)."""
    from segprep.jit import kernel

    return kernel(globals()[name], boundscheck=False)


def warm_up(cold: bool = False) -> None:
    """Load the kernels an evaluation needs (from numba's disk cache; compiled the first time):
    the uint8 joint histogram, and with ``cold`` the code-map builders.

    Each kernel otherwise loads on its first call (~0.1-0.2 s each), under a lock, so calling this
    is optional; benchmarks call it to keep the one-off load out of their timings."""
    joint_histogram(np.zeros(4, np.uint8), np.zeros(4, np.uint8), 1)
    if cold:
        pair_codes(np.zeros(4, np.uint8), np.zeros(4, np.uint16))
        pair_codes(np.zeros(4, np.uint8))


# ----------------------------------------------------------------------------------- histogram
def joint_histogram(codes: np.ndarray, pred: np.ndarray, num_codes: int) -> np.ndarray:
    """Joint histogram of two equally shaped maps.

    Args:
        codes: ``(H, W)`` (any shape) uint8 or uint16 ground-truth codes, all ``< num_codes``.
        pred: uint8 prediction of the same shape.
        num_codes: M, the number of code values (rows of the result).

    Returns:
        ``(M, 256)`` int64: entry ``[c, v]`` counts pixels with code ``c`` and prediction ``v``.

    Raises:
        ValueError: shapes or dtypes do not fit, or a code is ``>= num_codes``.
    """
    codes = np.ascontiguousarray(codes)
    pred = np.ascontiguousarray(pred)
    if codes.shape != pred.shape:
        raise ValueError(f"shape mismatch: codes {codes.shape} vs prediction {pred.shape}")
    if pred.dtype != np.uint8 or codes.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"expected uint8/uint16 codes and uint8 prediction, got {codes.dtype} "
                         f"and {pred.dtype}")
    m = max(int(num_codes), 0)
    out = np.zeros(m * 256, np.int64)
    if _kernel("_joint_hist")(codes.reshape(-1), pred.reshape(-1), out):
        raise ValueError(f"a code is >= num_codes ({m})")
    return out.reshape(m, 256)


# ----------------------------------------------------------------------------------- PNG
def decode_label_png(data: bytes, where: str = "") -> tuple[np.ndarray, np.ndarray | None] | None:
    """Decode an 8-bit gray / 8-bit palette / 16-bit gray, non-interlaced label PNG.

    Only the 13-byte IHDR is read here, to pick the path; the decoding is
    :func:`segprep.io.decode_label` (libpng through ``imagecodecs``, Pillow for palette images,
    whose indices are kept).

    Args:
        data: the file's bytes.
        where: the file name, for error messages.

    Returns:
        ``(array, palette)``: ``(H, W)`` uint8 (gray or palette indices) or uint16 samples, and the
        ``(K, 3)`` uint8 palette of a palette PNG (else ``None``); or ``None`` when the PNG is of
        another kind (RGB, gray+alpha, bit depth < 8, interlaced): decode it with
        :func:`segprep.io.read_label` then.

    Raises:
        SegprepError: not a PNG, truncated, or corrupt.
    """
    h = png_header(data, where)
    if h.interlace != 0 or h.color_type not in (0, 3) or h.bit_depth not in (8, 16) or (
            h.color_type == 3 and h.bit_depth != 8):
        return None
    if b"IEND" not in data[-12:]:
        raise SegprepError(where, "truncated PNG (no image data end)")
    return decode_label(where, data)
