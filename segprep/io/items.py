"""What :func:`segprep.io.run_batch` and its Dask path (:mod:`segprep.io.cluster`) share: the
per-item :class:`Outcome`, how an item is named in an error line (:func:`describe`), the one
error mapping of a work function (:func:`call_item`), and the single-threaded libraries that
workers sharing cores run with (:func:`single_threaded_libraries`).

Both the batch core and the cluster path import this module; neither imports the other at
module level, and the cluster path never imports the batch core.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from segprep.errors import SegprepError


@dataclass
class Outcome:
    """The result of one item of :func:`segprep.io.run_batch`: ``value`` on success, else ``error``."""

    item: Any
    value: Any = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def describe(item: Any) -> str:
    """How an item is named in an error line: its path, never an internal object's repr.

    Work items name their file through a ``where`` attribute (jobs of the converters), or are a
    path, or a tuple whose first element is one.
    """
    where = getattr(item, "where", None)
    if where is not None:
        return str(where)
    if isinstance(item, tuple) and item:
        return describe(item[0])
    return str(item)


def call_item(fn: Callable, item: Any) -> tuple[Any, str | None]:
    """``(fn(item), None)``, or ``(None, one error line)`` when it raised: ``SegprepError``
    messages as they are, ``OSError`` as ``<file>: <reason>``, anything else with its type."""
    try:
        return fn(item), None
    except SegprepError as exc:
        return None, str(exc)
    except MemoryError:
        return None, f"{describe(item)}: out of memory"
    except OSError as exc:  # an unwritable output folder, a full disk
        name = exc.filename or describe(item)
        return None, f"{name}: {exc.strerror or exc}"
    except Exception as exc:  # a bug or an unexpected library error: report, keep going
        return None, f"{describe(item)}: {type(exc).__name__}: {exc}"


def single_threaded_libraries(opencv: bool = True) -> Callable[[], None]:
    """Run OpenCV's thread pool and numpy's BLAS on one thread in this process, while segprep's
    own workers share the cores: their pools on top of ``n`` workers would run ``n`` × their
    threads for nothing (with BLAS threads under two workers ``bdd100k convert --palette id``,
    whose shape networks multiply small matrices, fell from 79 to 35 frames/s). Call it from the
    main thread: OpenBLAS applies a limit set there to every thread, one set from another thread
    not reliably.

    Args:
        opencv: also OpenCV's (imports it; False spares that where the work never uses it).

    Returns:
        a function that restores the previous thread counts.
    """
    from threadpoolctl import ThreadpoolController

    cv2: Any = None
    if opencv:
        import cv2

        cv2_threads = cv2.getNumThreads()
        cv2.setNumThreads(1)
    # after importing OpenCV, which brings its own OpenBLAS (a library loaded later keeps its
    # threads)
    blas = ThreadpoolController().limit(limits=1, user_api="blas")

    def restore() -> None:
        blas.restore_original_limits()
        if cv2 is not None:
            cv2.setNumThreads(cv2_threads)

    return restore
