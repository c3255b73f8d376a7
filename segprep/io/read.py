"""Reading images and label maps: one PNG header parser, one decoder choice, one error mapping.

PNG decoding goes through ``imagecodecs`` (libpng; about 2x faster than Pillow on 2048x1024 label
maps), with Pillow as the fallback and for palette-mode files and every other format Pillow opens
(JPEG, GIF, TIFF, BMP, WebP). Label maps keep palette indices in every format (a Carvana-style
``*_mask.gif`` is its indices, not RGB). Every failure becomes a
:class:`~segprep.errors.SegprepError` naming the file.
"""

from __future__ import annotations

import io as _io
import os
import re
import struct
import zlib
from typing import Any, NamedTuple

import numpy as np

from segprep.errors import SegprepError

_ic: Any
try:  # optional fast codec
    import imagecodecs as _ic
except ImportError:  # pragma: no cover - exercised only without imagecodecs
    _ic = None

PathLike = str | os.PathLike

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MAX_PIXELS = 1 << 30
"""Largest image (width x height) any reader decodes: 1 Gpx, 16x a 2048x1024 frame times 32. A
header claiming more is refused before anything is allocated."""


def _pil_image() -> Any:
    """Pillow's ``Image`` module, imported on first use (the imagecodecs paths never need it;
    saves ~20 ms of every CLI start)."""
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = None  # sizes are checked by check_size, before decoding
    return Image


class PngHeader(NamedTuple):
    """The IHDR fields of a PNG (PNG specification 1.2, section 11.2.2)."""

    width: int
    height: int
    bit_depth: int
    color_type: int  # 0 gray, 2 RGB, 3 palette, 4 gray+alpha, 6 RGBA
    interlace: int

    @property
    def channels(self) -> int:
        """Samples per pixel after decoding (palette: 1 index)."""
        return {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}.get(self.color_type, 0)


def png_header(data: bytes, path: PathLike = "") -> PngHeader:
    """Parse the IHDR of PNG bytes (the one PNG header parser of segprep).

    Raises:
        SegprepError: not a PNG, no IHDR, an image larger than :data:`MAX_PIXELS`.
    """
    if not data.startswith(PNG_SIGNATURE):
        raise SegprepError(path, "not a PNG file")
    if len(data) < 33 or data[12:16] != b"IHDR":
        raise SegprepError(path, "corrupt or truncated PNG (no IHDR chunk)")
    width, height, depth, color, _comp, _filt, interlace = struct.unpack_from(">IIBBBBB", data, 16)
    header = PngHeader(width, height, depth, color, interlace)
    check_size(path, width, height)
    return header


def check_size(path: PathLike, width: int, height: int) -> None:
    """Refuse an image size that is empty or larger than :data:`MAX_PIXELS` (before allocation).

    Raises:
        SegprepError: naming the file and the size.
    """
    if width <= 0 or height <= 0:
        raise SegprepError(path, f"image size {width}x{height} is empty")
    if width * height > MAX_PIXELS:
        raise SegprepError(path, f"image size {width}x{height} is larger than segprep reads "
                                 f"({MAX_PIXELS // (1 << 20)} Mpx)")


def read_bytes(path: PathLike) -> bytes:
    """A file's bytes.

    Raises:
        SegprepError: missing file, a folder, unreadable.
    """
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except FileNotFoundError:
        raise SegprepError(path, "no such file") from None
    except IsADirectoryError:
        raise SegprepError(path, "is a directory, expected a file") from None
    except OSError as exc:
        raise SegprepError(path, f"cannot read: {exc.strerror or exc}") from None


def read_png(path: PathLike, out: np.ndarray | None = None) -> np.ndarray:
    """Decode a PNG file to its stored samples (palette PNGs: see :func:`read_label`).

    Args:
        path: the file.
        out: optional array to decode into (used when its shape and dtype match the file's;
            otherwise a new array is returned).

    Returns:
        ``(H, W)`` uint8/uint16 for gray images, ``(H, W, 3|4)`` uint8 for RGB(A). Palette images
        are expanded to RGB(A) here.

    Raises:
        SegprepError: missing, unreadable or truncated file, or not a PNG.
    """
    return _decode_png(path, read_bytes(path), out)


def _decode_png(path: PathLike, data: bytes, out: np.ndarray | None = None) -> np.ndarray:
    """:func:`read_png` on bytes already read (``path`` names them in errors)."""
    header = png_header(data, path)
    if _ic is not None:
        if out is not None and not _header_fits(header, out):
            out = None
        try:
            return _ic.png_decode(data, out=out)
        except Exception as exc:  # imagecodecs raises PngError for truncation/corruption
            raise SegprepError(path, f"corrupt or truncated PNG ({exc})") from None
    return _pil_decode(path, data)


def _header_fits(header: PngHeader, out: np.ndarray) -> bool:
    """Whether a PNG (8-bit or 16-bit gray, RGB, RGBA) decodes to ``out``'s shape/dtype."""
    channels = {0: 1, 2: 3, 6: 4}.get(header.color_type)
    if channels is None or header.bit_depth not in (8, 16) or header.interlace != 0:
        return False
    shape = (header.height, header.width) if channels == 1 else (header.height, header.width,
                                                                  channels)
    return out.shape == shape and out.dtype == (np.uint8 if header.bit_depth == 8 else
                                                np.uint16) and out.flags.c_contiguous


def _reason(exc: BaseException) -> str:
    """An exception's message for an error line: without the ``<_io.BytesIO object at 0x…>``
    that Pillow names the in-memory file by (the error line names the file already)."""
    return re.sub(r"\s*<_io\.\w+ object at 0x[0-9a-fA-F]+>", "", str(exc)).strip() or \
        type(exc).__name__


def _open_pil(path: PathLike, data: bytes) -> Any:
    """Open image bytes with Pillow, checking the size before any pixel is decoded."""
    image = _pil_image()
    try:
        im = image.open(_io.BytesIO(data))
    except image.UnidentifiedImageError:
        what = "an empty file" if not data else "not an image in any format Pillow reads"
        raise SegprepError(path, what) from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise SegprepError(path, f"not an image Pillow can read ({_reason(exc)})") from None
    check_size(path, *im.size)
    return im


def _pil_decode(path: PathLike, data: bytes, keep_palette: bool = False
                ) -> np.ndarray:
    """Decode with Pillow: palette images expanded to RGB(A) unless ``keep_palette``."""
    im = _open_pil(path, data)
    try:
        with im:
            im.load()
            if im.mode == "P" and not keep_palette:
                im = im.convert("RGBA" if "transparency" in im.info else "RGB")
            elif im.mode in ("I;16", "I;16B", "I;16L"):
                return np.asarray(im, dtype=np.uint16)
            elif im.mode == "1":
                return np.asarray(im, dtype=np.uint8)
            return np.asarray(im)
    except (OSError, SyntaxError, ValueError, zlib.error) as exc:
        raise SegprepError(path, f"corrupt or truncated image ({_reason(exc)})") from None


def read_label(path: PathLike) -> tuple[np.ndarray, np.ndarray | None]:
    """Read a label map, keeping palette indices (PNG, GIF, TIFF, BMP: any format Pillow opens).

    Returns:
        ``(array, palette)``: for palette-mode images, the ``(H, W)`` uint8 index array and the
        ``(K, 3)`` uint8 palette; otherwise what :func:`read_png` (or Pillow) returns and
        ``None``.

    Raises:
        SegprepError: missing, unreadable or truncated file.
    """
    return decode_label(path, read_bytes(path))


def decode_label(path: PathLike, data: bytes) -> tuple[np.ndarray, np.ndarray | None]:
    """:func:`read_label` on the file's bytes, already read (``path`` names them in errors)."""
    if data.startswith(PNG_SIGNATURE) and png_header(data, path).color_type != 3:
        return _decode_png(path, data), None
    im = _open_pil(path, data)
    try:
        with im:
            im.load()
            if im.mode == "P":
                pal = np.array(im.getpalette() or [], np.uint8).reshape(-1, 3)
                return np.asarray(im), pal
    except (OSError, SyntaxError, ValueError, zlib.error) as exc:
        raise SegprepError(path, f"corrupt or truncated image ({_reason(exc)})") from None
    return _pil_decode(path, data), None


def read_image(path: PathLike) -> np.ndarray:
    """Read a camera image (PNG, JPEG, …) as ``(H, W, 3)`` uint8 RGB (writable, C-contiguous).

    Raises:
        SegprepError: missing, unreadable or truncated file.
    """
    data = read_bytes(path)
    if data.startswith(PNG_SIGNATURE):
        arr = _decode_png(path, data)
    else:
        arr = _pil_decode(path, data)
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    elif arr.shape[2] == 4:
        arr = arr[:, :, :3]
    elif arr.shape[2] == 2:  # gray + alpha
        arr = np.repeat(arr[:, :, :1], 3, axis=2)
    if arr.dtype != np.uint8:
        arr = (arr >> 8).astype(np.uint8) if arr.dtype == np.uint16 else arr.astype(np.uint8)
    if not arr.flags.writeable or not arr.flags.c_contiguous:
        arr = np.array(arr, order="C")
    return arr


def _header_open(path: PathLike) -> Any:
    image = _pil_image()
    try:
        return image.open(path)
    except image.UnidentifiedImageError:
        empty = os.path.getsize(path) == 0
        raise SegprepError(path, "an empty file" if empty else
                           "not an image in any format Pillow reads") from None
    except FileNotFoundError:
        raise SegprepError(path, "no such file") from None
    except IsADirectoryError:
        raise SegprepError(path, "is a directory, expected a file") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise SegprepError(path, f"unreadable image ({_reason(exc)})") from None


def image_size(path: PathLike) -> tuple[int, int]:
    """``(width, height)`` of an image from its header only (no pixel decode).

    Raises:
        SegprepError: missing or unreadable file.
    """
    with _header_open(path) as im:
        return im.size


def image_mode(path: PathLike) -> str:
    """Pillow mode string (``L``, ``P``, ``RGB``, ``I;16`` …) from the header only.

    Raises:
        SegprepError: missing or unreadable file.
    """
    with _header_open(path) as im:
        return im.mode
