"""The ground-truth cache of the evaluators: each ground-truth frame as a *code map* (one small
integer per pixel naming its ``(value, instance id)`` pair), built once and kept on disk keyed by
the files' path, mtime and size, so that evaluating many checkpoints decodes only predictions."""

from __future__ import annotations

import hashlib
import json
import os
import struct
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from segprep.datasets.cityscapes import INSTANCE_MIN
from segprep.errors import SegprepError
from segprep.evaluation.kernels import pair_codes

_ic: Any
try:
    import imagecodecs as _ic
except ImportError:  # pragma: no cover
    _ic = None

PathLike = str | os.PathLike

CACHE_VERSION = 1
_CACHE_MAGIC = b"SEGPREP-GT\x00"


def default_cache_dir() -> Path:
    """Where ground-truth code maps are cached by default: ``$XDG_CACHE_HOME/segprep/eval-gt``
    (``~/.cache/segprep/eval-gt``)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "segprep" / "eval-gt"


@dataclass
class GtCodes:
    """A ground-truth frame as a code map.

    Attributes:
        codes: ``(H, W)`` uint8 (uint16 when more than 256 pairs) code per pixel.
        values: ``(M,)`` int64 ground-truth value (label id or trainId) of each code.
        instances: ``(M,)`` int64 instance id of each code (``> 1000``), 0 for no instance.
    """

    codes: np.ndarray
    values: np.ndarray
    instances: np.ndarray

    @property
    def num_codes(self) -> int:
        return int(self.values.size)


def build_codes(values: np.ndarray, instances: np.ndarray | None = None) -> GtCodes:
    """Code map of a ground-truth map (and of its instance map).

    Args:
        values: ``(H, W)`` uint8 or uint16 ground-truth label ids / trainIds.
        instances: optional ``(H, W)`` integer instance ids; ids ``<= 1000`` are "no instance".

    Returns:
        :class:`GtCodes` whose codes enumerate the distinct ``(value, instance)`` pairs (in
        first-seen order).

    Raises:
        ValueError: shapes differ, or a value or instance id is negative or beyond 16 bits.
    """
    values = _as_u16(np.asarray(values), "ground-truth values")
    if instances is not None:
        instances = _as_u16(np.asarray(instances), "instance ids").astype(np.uint16, copy=False)
        if instances.shape != values.shape:
            raise ValueError(f"instance map {instances.shape} and label map {values.shape} differ")
    codes, vals, insts = pair_codes(values, instances, INSTANCE_MIN)
    return GtCodes(codes, vals, insts)


def _as_u16(a: np.ndarray, what: str) -> np.ndarray:
    if a.dtype in (np.uint8, np.uint16):
        return a
    if a.size and (a.min() < 0 or a.max() > 65535):
        raise ValueError(f"{what} must lie in 0..65535")
    return a.astype(np.uint16)


class GtCache:
    """On-disk cache of :class:`GtCodes`, one file per ground-truth frame.

    A file is named by the SHA-1 of its key: the cache version, the protocol and, for every source
    file, its absolute path, mtime (ns) and size; a changed source file is a miss. The codes are
    stored zstd-compressed (``imagecodecs``; zlib where zstd is missing). A damaged or foreign
    cache file is a miss and is rewritten; a cache folder that cannot be written is not an error
    (the frame is decoded every time).

    Args:
        folder: the cache folder, or None for no cache.
    """

    def __init__(self, folder: PathLike | None):
        self.folder = Path(folder) if folder is not None else None
        self.hits = 0
        self.misses = 0
        self.write_errors = 0
        self._lock = threading.Lock()

    def __getstate__(self) -> dict:
        """Picklable (sent to Dask workers, :mod:`segprep.io.cluster`): the lock stays here."""
        state = self.__dict__.copy()
        del state["_lock"]
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    @staticmethod
    def key(kind: str, files: Sequence[PathLike]) -> str:
        parts = [f"v{CACHE_VERSION}", kind]
        for f in files:
            st = os.stat(f)
            parts.append(f"{os.path.abspath(f)}|{st.st_mtime_ns}|{st.st_size}")
        return "\n".join(parts)

    def get(self, kind: str, files: Sequence[PathLike], build: Callable[[], GtCodes]) -> GtCodes:
        """The cached codes of ``files`` (built with ``build`` and stored on a miss).

        Raises:
            SegprepError: a source file is missing (from ``os.stat`` or ``build``).
        """
        if self.folder is None:
            return build()
        try:
            key = self.key(kind, files)
        except FileNotFoundError as exc:
            raise SegprepError(exc.filename, "no such file") from None
        path = self.folder / (hashlib.sha1(key.encode()).hexdigest() + ".gt")
        codes = _load_cached(path, key)
        if codes is not None:
            with self._lock:
                self.hits += 1
            return codes
        codes = build()
        with self._lock:
            self.misses += 1
        try:
            from segprep.io import atomic_write_bytes

            atomic_write_bytes(path, _dump_cached(codes, key))
        except (OSError, SegprepError):  # atomic_write maps OSError to SegprepError
            with self._lock:
                self.write_errors += 1
        return codes


def _compress(buf: bytes) -> tuple[str, bytes]:
    if _ic is not None and getattr(_ic, "ZSTD", None) is not None and _ic.ZSTD.available:
        return "zstd", bytes(_ic.zstd_encode(buf, level=3))
    import zlib

    return "zlib", zlib.compress(buf, 1)


def _decompress(codec: str, data: bytes, size: int) -> bytes:
    if codec == "zstd":
        return bytes(_ic.zstd_decode(data, out=size))
    import zlib

    return zlib.decompress(data)


def _dump_cached(c: GtCodes, key: str) -> bytes:
    codec, payload = _compress(np.ascontiguousarray(c.codes).tobytes())
    header = json.dumps({"key": key, "shape": list(c.codes.shape), "dtype": c.codes.dtype.str,
                         "values": c.values.tolist(), "instances": c.instances.tolist(),
                         "codec": codec}).encode()
    return _CACHE_MAGIC + struct.pack("<I", len(header)) + header + payload


def _load_cached(path: Path, key: str) -> GtCodes | None:
    try:
        with open(path, "rb") as fh:
            data = fh.read()
        if not data.startswith(_CACHE_MAGIC):
            return None
        n = len(_CACHE_MAGIC)
        (hlen,) = struct.unpack_from("<I", data, n)
        header = json.loads(data[n + 4:n + 4 + hlen])
        if header.get("key") != key:
            return None
        dtype = np.dtype(header["dtype"])
        shape = tuple(header["shape"])
        size = int(np.prod(shape)) * dtype.itemsize
        raw = _decompress(header["codec"], data[n + 4 + hlen:], size)
        if len(raw) != size:
            return None
        values = np.array(header["values"], np.int64)
        instances = np.array(header["instances"], np.int64)
        if values.size != instances.size or dtype not in (np.uint8, np.uint16):
            return None
        return GtCodes(np.frombuffer(raw, dtype).reshape(shape), values, instances)
    except (OSError, ValueError, KeyError, TypeError, struct.error, RuntimeError):
        return None
    except Exception:  # a codec error from a damaged file: rebuild it
        return None


def cache_for(cache: PathLike | None | bool) -> GtCache:
    if cache is False or cache is None:
        return GtCache(None)
    if cache is True:
        return GtCache(default_cache_dir())
    return GtCache(cache)



def cache_info(cache: GtCache) -> dict:
    return {"folder": str(cache.folder) if cache.folder else None, "hits": cache.hits,
            "misses": cache.misses, "write_errors": cache.write_errors}


