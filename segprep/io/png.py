"""segprep's PNG encoder: chunks written here, rows UP-filtered in numpy, deflate by zlib-ng."""

from __future__ import annotations

import struct
import zlib
from typing import Any

import numpy as np

from segprep.io.read import PNG_SIGNATURE, _pil_image
from segprep.io.scratch import scratch

_ic: Any
try:  # optional fast codec
    import imagecodecs as _ic
except ImportError:  # pragma: no cover - exercised only without imagecodecs
    _ic = None

_PNG_COLOR_TYPE = {1: 0, 3: 2, 4: 6}  # channels -> PNG colour type (gray, RGB, RGBA)
PNG_LEVEL = 2
"""zlib-ng level of :func:`encode_png`: on real 2048x1024 label maps level 2 is as small as the
official files (8.7 vs 8.1 KiB) at 2.7 ms per frame; level 1 is 3x larger for 0.4 ms less."""


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return (struct.pack(">I", len(data)) + kind + data
            + struct.pack(">I", zlib.crc32(data, zlib.crc32(kind))))


def _zlibng_available() -> bool:
    return _ic is not None and bool(getattr(getattr(_ic, "ZLIBNG", None), "available", False))


def encode_png(array: np.ndarray, palette: np.ndarray | None = None) -> bytes:
    """Encode a label or image array as PNG bytes.

    The PNG is written here (IHDR, optional PLTE, one IDAT, IEND; PNG specification 1.2,
    non-interlaced) with every row UP-filtered (vectorised) and the stream compressed by
    zlib-ng level :data:`PNG_LEVEL` through imagecodecs: 2-3x faster than libpng's encoder at
    level 1 on label maps, files as small as the official ones. Without zlib-ng, Pillow encodes.
    Any PNG decoder reads the samples back exactly.

    Args:
        array: ``(H, W)`` uint8 or uint16 (16-bit gray), or ``(H, W, 3|4)`` uint8 (RGB, RGBA).
        palette: optional ``(K, 3)`` uint8 palette, ``K <= 256``; ``array`` must then be
            ``(H, W)`` uint8 and is written as a palette-mode PNG.

    Returns:
        The PNG file's bytes.

    Raises:
        ValueError: an array shape, dtype or palette PNG cannot hold.
    """
    array = np.asarray(array)
    channels = 1 if array.ndim == 2 else (array.shape[2] if array.ndim == 3 else 0)
    if channels not in _PNG_COLOR_TYPE or array.dtype not in (np.uint8, np.uint16) or (
            array.dtype == np.uint16 and channels != 1) or 0 in array.shape:
        raise ValueError(f"cannot write a {array.dtype} array of shape {array.shape} as PNG")
    if palette is not None:
        palette = np.asarray(palette, np.uint8).reshape(-1, 3)
        if channels != 1 or array.dtype != np.uint8 or not 0 < len(palette) <= 256:
            raise ValueError("a palette PNG needs an (H, W) uint8 array and 1-256 colours")
    if not _zlibng_available():  # pragma: no cover - exercised only without imagecodecs
        return _pil_encode(array, palette)
    height, width = array.shape[:2]
    if array.dtype == np.uint16:
        array = array.astype(">u2")  # PNG samples are big-endian
    rows = np.ascontiguousarray(array).reshape(height, -1).view(np.uint8)
    raw = scratch("png_encode_rows", (height, rows.shape[1] + 1), np.uint8)
    raw[:, 0] = 2  # filter type UP: each byte minus the byte above it (mod 256)
    raw[0, 1:] = rows[0]
    np.subtract(rows[1:], rows[:-1], out=raw[1:, 1:])
    bit_depth = 16 if array.dtype.itemsize == 2 else 8
    color_type = 3 if palette is not None else _PNG_COLOR_TYPE[channels]
    parts = [PNG_SIGNATURE,
             _png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, bit_depth, color_type,
                                             0, 0, 0))]
    if palette is not None:
        parts.append(_png_chunk(b"PLTE", palette.tobytes()))
    # deflate worst case: the input plus 5 bytes per 16 KiB block plus the zlib wrapper
    bound = raw.size + 5 * (raw.size // 16384 + 1) + 64
    zbuf = scratch("png_encode_zlib", (bound,), np.uint8)
    idat = bytes(_ic.zlibng_encode(raw, level=PNG_LEVEL, out=zbuf))
    parts += [_png_chunk(b"IDAT", idat),
              _png_chunk(b"IEND", b"")]
    return b"".join(parts)


def _pil_encode(array: np.ndarray, palette: np.ndarray | None) -> bytes:
    import io as _io

    if array.dtype == np.uint16:
        im = _pil_image().fromarray(array, mode="I;16")
    else:
        im = _pil_image().fromarray(np.ascontiguousarray(array))
    if palette is not None:
        im = im.copy()
        im.putpalette(palette.reshape(-1).tolist())
    buf = _io.BytesIO()
    im.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


