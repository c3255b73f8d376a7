"""segprep's numba kernels: compiled on first use (importing numba costs ~0.5 s, so no module
imports it at load time) and cached on disk in segprep's own cache folder, never in the package.

Where no cache folder can be written (a read-only install with an unwritable HOME, a sandbox),
kernels are compiled in memory instead, after one warning: slower to start, same results.
"""

from __future__ import annotations

import os
import tempfile
import threading
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

_LOCK = threading.Lock()
_KERNELS: dict[tuple[Callable, tuple], Any] = {}
_CACHE_OK: bool | None = None
_LEAN = False


def lean_process() -> None:
    """Declare this process a segprep command (the CLI's entry point calls this first).

    numba checks for SciPy's BLAS when it first compiles or loads a kernel, importing SciPy
    (about 0.15 s here, the largest part of a command's start after numba itself). No segprep
    kernel uses numba's linear algebra (``np.dot``, ``np.linalg``), so in a command process that
    check is answered "no BLAS" without importing SciPy. Library users are unaffected unless they
    call this; in their processes numba behaves as it always does.
    """
    global _LEAN
    _LEAN = True


def _skip_blas_check() -> None:
    """With :func:`lean_process`: load numba's array-math module while ``scipy.linalg.cython_blas``
    cannot be imported, so that numba records that it has no BLAS (its ``_check_blas`` catches
    the ImportError) without importing SciPy. Does nothing once that module is loaded."""
    import sys

    if not _LEAN or "numba.np.arraymath" in sys.modules:
        return
    name = "scipy.linalg.cython_blas"
    before = sys.modules.get(name, _ABSENT)
    if before is not _ABSENT:
        return  # SciPy's BLAS is loaded already: nothing to save
    sys.modules[name] = None  # type: ignore[assignment]  # "import name" raises ImportError
    try:
        import numba.np.arraymath  # noqa: F401
    finally:
        del sys.modules[name]


_ABSENT = object()


def cache_dir() -> Path:
    """Where compiled kernels are cached: ``$NUMBA_CACHE_DIR`` when the user set it, else
    ``$XDG_CACHE_HOME/segprep/numba`` (``~/.cache/segprep/numba``)."""
    if os.environ.get("NUMBA_CACHE_DIR"):
        return Path(os.environ["NUMBA_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "segprep" / "numba"


def _writable(folder: Path) -> bool:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
        return True
    except OSError:
        return False


def _setup_cache() -> bool:
    """Point numba's cache at :func:`cache_dir` (once); False when it cannot be written."""
    global _CACHE_OK
    if _CACHE_OK is None:
        import numba

        folder = cache_dir()
        _CACHE_OK = _writable(folder)
        if _CACHE_OK:
            # read when each kernel's cache is located
            numba.config.CACHE_DIR = str(folder)  # type: ignore[attr-defined]
        else:
            warnings.warn(f"{folder}: numba cache folder cannot be written; compiling kernels in "
                          "memory (each run starts ~1 s slower; set NUMBA_CACHE_DIR to a "
                          "writable folder)", RuntimeWarning, stacklevel=3)
    return _CACHE_OK


def kernel(fn: Callable, **options: Any) -> Any:
    """``numba.njit(nogil=True, **options)(fn)``, compiled once per process, disk-cached when
    possible (see the module docstring). Thread-safe."""
    key = (fn, tuple(sorted(options.items())))
    compiled = _KERNELS.get(key)
    if compiled is not None:
        return compiled
    with _LOCK:
        compiled = _KERNELS.get(key)
        if compiled is None:
            import numba

            _skip_blas_check()
            cache = _setup_cache()
            try:
                compiled = numba.njit(cache=cache, nogil=True, **options)(fn)
            except RuntimeError as exc:  # "cannot cache function …: no locator available"
                if not cache:
                    raise
                warnings.warn(f"{cache_dir()}: numba cannot cache {fn.__name__} ({exc}); "
                              "compiling in memory", RuntimeWarning, stacklevel=2)
                compiled = numba.njit(cache=False, nogil=True, **options)(fn)
            _KERNELS[key] = compiled
    return compiled
