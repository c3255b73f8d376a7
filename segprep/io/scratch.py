"""Per-thread reusable work arrays for the per-frame hot paths (decode, LUT, encode)."""

from __future__ import annotations

import threading

import numpy as np

_SCRATCH = threading.local()


def scratch(key: str, shape: tuple[int, ...], dtype: np.dtype | type) -> np.ndarray:
    """A reusable per-thread work array (contents undefined) for the per-frame hot paths.

    Each fresh multi-megabyte array costs its page faults again (glibc maps large blocks anew):
    measured in gen-gt, about 1,500 faults and 5 ms of system time per 2048x1024 frame, more than
    the LUT itself. A caller must be done with the array before it asks for the same ``key``
    again in the same thread, and must never hand it out of the frame being processed.
    """
    store = _SCRATCH.__dict__.setdefault("arrays", {})
    arr = store.get(key)
    dtype = np.dtype(dtype)
    if arr is None or arr.shape != tuple(shape) or arr.dtype != dtype:
        arr = store[key] = np.empty(shape, dtype)
    return arr


