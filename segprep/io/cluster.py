"""Batch work on a Dask cluster: the ``--scheduler`` path of :func:`segprep.io.run_batch`.

``--scheduler tcp://HOST:8786`` (or ``SEGPREP_SCHEDULER``) connects to a running Dask scheduler;
``local:N`` starts a ``distributed.LocalCluster`` of N single-threaded worker processes on this
machine for the run. Without a scheduler this module is never imported, and neither is Dask.

How work travels (the known pitfalls of batch jobs on Dask, avoided):

- the callable travels once: it is the result of one task that every chunk depends on, so each
  worker fetches it once and keeps it, and it is not pickled into every task (not
  ``Client.scatter``: scattered data dies with the workers that hold it, a task's result is
  recomputed);
- items (small job objects naming files: ``FrameJob``, ``BddJob``, ``(gt, pred)`` tuples …) travel
  in chunks; each task runs one chunk item after item and sends back only the small per-item
  results (a value or a one-line error); arrays never travel;
- chunk sizes come from the batch size and the workers' threads (:func:`chunk_sizes`): big chunks
  first, smaller ones towards the end (guided scheduling), so that the per-task overhead stays
  small and no worker idles at the end of the batch;
- before any work is submitted, every worker must see one input path (:func:`check_workers`):
  inputs and outputs are paths on storage that every worker mounts at the same place.

Failures as locally: a bad file is one error line (the per-item error of
:func:`segprep.io.items.call_item`); a task whose worker dies is rescheduled by Dask on another worker
(and retried :data:`RETRIES` times if it raises), and if it still cannot finish, each of its items
is reported as failed, so that rerunning the command (outputs are skipped when they exist)
finishes exactly what is missing.

Per-worker state, such as a model that must be loaded once per worker and not once per task, goes
through :func:`worker_cached`.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from segprep.errors import SegprepError
from segprep.io.items import Outcome, call_item, describe, single_threaded_libraries

SCHEDULER_ENV = "SEGPREP_SCHEDULER"
"""Environment variable read by ``--scheduler``."""
INSTALL_HINT = "pip install 'segprep[dask]'"
RETRIES = 2
"""Times Dask retries a chunk whose task raised (a worker that dies is handled by the
scheduler's own ``distributed.scheduler.allowed-failures``)."""
TASKS_PER_SLOT = 4
"""Guided scheduling: each chunk is about ``1 / (TASKS_PER_SLOT x slots)`` of the items still to
submit."""
MIN_CHUNK = 8
"""Fewest items in a chunk (the last chunks of a batch); see scripts/bench_cluster.py for the
per-task overhead measured."""
MAX_CHUNK = 256
"""Most items in a chunk: bounds the work lost with a worker, and the progress bar still moves."""
CONNECT_TIMEOUT = 10
"""Seconds to reach a scheduler, and to wait for its first worker."""

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------- addresses
def parse_scheduler(address: str) -> tuple[str, Any]:
    """``("local", N)`` for ``local:N``, ``("remote", address)`` for ``PROTOCOL://HOST:PORT``.

    Raises:
        SegprepError: naming ``--scheduler``, for anything else.
    """
    a = address.strip()
    if a.lower().startswith("local:"):
        n = a[6:]
        if not n.isdigit() or int(n) < 1:
            raise SegprepError("--scheduler", f"local:N needs a number of workers N >= 1, not "
                                              f"{address!r}")
        return "local", int(n)
    proto, _, rest = a.partition("://")
    if proto and rest:
        return "remote", a
    raise SegprepError("--scheduler", f"{address!r} is neither tcp://HOST:PORT (a running Dask "
                                      "scheduler) nor local:N (N worker processes on this machine)")


def _distributed() -> Any:
    try:
        import distributed
    except ImportError:
        raise SegprepError("--scheduler", f"needs Dask distributed: {INSTALL_HINT}") from None
    return distributed


# ----------------------------------------------------------------------------------- sessions
@dataclass
class Session:
    """A client connected to one scheduler (and the ``LocalCluster`` it started, for
    ``local:N``), kept for the whole command: the two passes of ``evaluate cityscapes
    --pred-ids auto`` share it.

    Attributes:
        address: as given (``tcp://…`` or ``local:N``).
        client: the ``distributed.Client``.
        cluster: the ``LocalCluster`` started for ``local:N``, else None.
        workers: workers connected when the last batch was submitted.
        tasks: chunks run so far; ``task_seconds``: their time inside the workers (s).
    """

    address: str
    client: Any
    cluster: Any = None
    workers: int = 0
    tasks: int = 0
    task_seconds: float = 0.0
    checked: set[str] = field(default_factory=set)

    def slots(self) -> tuple[int, int]:
        """``(workers, threads)`` connected now."""
        try:
            info = self.client.scheduler_info(n_workers=-1)["workers"]
        except TypeError:  # distributed < 2025: every worker is listed
            info = self.client.scheduler_info()["workers"]
        return len(info), sum(int(w.get("nthreads", 1)) for w in info.values())

    def close(self) -> None:
        try:
            self.client.close()
        finally:
            if self.cluster is not None:
                self.cluster.close()


_sessions: dict[str, Session] = {}


def connect(address: str) -> Session:
    """The session of ``address``, started (``local:N``) or connected on first use.

    Raises:
        SegprepError: naming ``--scheduler``: Dask missing (the extra to install), a malformed
            address, a scheduler that cannot be reached or has no worker.
    """
    kind, arg = parse_scheduler(address)
    session = _sessions.get(address)
    if session is not None and session.client.status == "running":
        return session
    distributed = _distributed()
    cluster = None
    try:
        if kind == "local":
            cluster = distributed.LocalCluster(n_workers=arg, threads_per_worker=1,
                                               processes=True, dashboard_address=None,
                                               silence_logs=logging.CRITICAL)
            client = distributed.Client(cluster, set_as_default=False)
        else:
            client = distributed.Client(arg, timeout=CONNECT_TIMEOUT, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        if cluster is not None:
            cluster.close()
        raise SegprepError("--scheduler", f"cannot connect to the Dask scheduler at {address}: "
                                          f"{exc}") from None
    session = Session(address, client, cluster)
    if kind == "remote":
        try:
            client.wait_for_workers(1, timeout=CONNECT_TIMEOUT)
        except (TimeoutError, OSError):
            session.close()
            raise SegprepError("--scheduler", f"no Dask worker is connected to {address} "
                                              f"(waited {CONNECT_TIMEOUT} s)") from None
    _sessions[address] = session
    return session


def close_all() -> None:
    """Close every session of this process (and stop the ``local:N`` clusters)."""
    while _sessions:
        _, session = _sessions.popitem()
        try:
            session.close()
        except Exception:  # closing a client whose scheduler is gone: nothing left to do
            log.debug("closing %s", session.address, exc_info=True)


atexit.register(close_all)


def workers_used() -> int | None:
    """Workers of the batches run on a cluster by this process (None: none ran), as counted when
    each batch was submitted (the most of them)."""
    counts = [s.workers for s in _sessions.values() if s.workers]
    return max(counts) if counts else None


# ------------------------------------------------------------------------------ worker state
_cache: dict[Any, Any] = {}
_cache_locks: dict[Any, threading.Lock] = {}
_cache_guard = threading.Lock()


def worker_cached(key: Any, factory: Callable[[], Any]) -> Any:
    """``factory()``, called once per process for each ``key`` and kept (thread-safe).

    On a Dask worker this is "once per worker": a task that needs a heavy object (a model loaded
    from a checkpoint, a lookup table) calls ``worker_cached(("model", path, mtime), load)``
    instead of loading it itself, and every later task on that worker gets the same object. In a
    local run it is once per process, shared by the threads.

    Args:
        key: hashable; include what makes the object differ (a path and its mtime, a device).
        factory: builds the object (called at most once per key, unless it raised).
    """
    with _cache_guard:
        if key in _cache:
            return _cache[key]
        lock = _cache_locks.setdefault(key, threading.Lock())
    with lock:
        with _cache_guard:
            if key in _cache:
                return _cache[key]
        value = factory()
        with _cache_guard:
            _cache[key] = value
        return value


def _single_threaded_libraries() -> bool:
    # several worker threads or processes share the cores: no nested pools (set from a worker
    # thread: OpenBLAS may not apply it to the others)
    single_threaded_libraries()
    return True


# ------------------------------------------------------------------------------ worker heap
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
KEPT_HEAP = (32 << 20, 256 << 20)
"""``(mmap threshold, trim threshold)`` in bytes while a chunk runs: label maps (2–8 MB arrays)
come from the heap and their memory is reused by the next frame (32 MiB: glibc's largest mmap
threshold on 64-bit)."""
_heap_guard = threading.Lock()
_heap_users = 0


def _glibc() -> Any:
    """glibc's ``mallopt`` and ``malloc_trim`` (None: another C library, another system)."""
    import ctypes

    try:
        libc = ctypes.CDLL(None)
        return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None
    except OSError:  # pragma: no cover - no dlopen
        return None


@contextlib.contextmanager
def _freed_memory_kept() -> Iterator[None]:
    """Run the block with freed memory kept for reuse, on a worker whose nanny set
    ``MALLOC_TRIM_THRESHOLD_`` (Dask's default, 64 KiB, so that workers give memory back).

    That setting also fixes glibc's mmap threshold at 128 KiB: every decoded label map is then
    a fresh ``mmap`` whose pages the kernel faults in and zeroes, frame after frame (measured:
    ``evaluate cityscapes`` 9.4 ms a frame in such a process, 6.8 ms without; gen-gt likewise).
    While segprep chunks run, the thresholds are :data:`KEPT_HEAP`; when the last one on the
    worker ends, the nanny's values come back and ``malloc_trim`` returns the heap to the system,
    as the setting intends. Nothing changes where the variable is not set (glibc's own dynamic
    thresholds then do the same) or where glibc is not the C library.
    """
    global _heap_users
    trim = os.environ.get("MALLOC_TRIM_THRESHOLD_", "")
    libc = worker_cached("segprep-glibc", _glibc) if trim.isdigit() else None
    if libc is None:
        yield
        return
    with _heap_guard:
        _heap_users += 1
        if _heap_users == 1:
            libc.mallopt(M_MMAP_THRESHOLD, KEPT_HEAP[0])
            libc.mallopt(M_TRIM_THRESHOLD, KEPT_HEAP[1])
    try:
        yield
    finally:
        with _heap_guard:
            _heap_users -= 1
            if _heap_users == 0:
                mmap = os.environ.get("MALLOC_MMAP_THRESHOLD_", "")
                libc.mallopt(M_TRIM_THRESHOLD, int(trim))
                libc.mallopt(M_MMAP_THRESHOLD, int(mmap) if mmap.isdigit() else 128 << 10)
                libc.malloc_trim(0)


# ----------------------------------------------------------------------------------- batches
def chunk_sizes(n_items: int, slots: int, tasks_per_slot: int = TASKS_PER_SLOT,
                min_size: int = MIN_CHUNK, max_size: int = MAX_CHUNK) -> list[int]:
    """Sizes of the chunks a batch of ``n_items`` is cut into for ``slots`` worker threads.

    Guided scheduling: each chunk takes ``1 / (tasks_per_slot x slots)`` of the items left,
    within ``[min_size, max_size]``, so big chunks go first (little overhead) and small ones last
    (every worker busy to the end). Sizes sum to ``n_items``.
    """
    sizes: list[int] = []
    left = n_items
    share = max(1, tasks_per_slot * max(1, slots))
    while left > 0:
        size = min(left, max(min_size, min(max_size, -(-left // share))))
        sizes.append(size)
        left -= size
    return sizes


@dataclass
class _Held:
    """The callable of a batch, as the argument of the one task that hands it to the workers."""

    fn: Callable


def _unwrap(held: _Held) -> Callable:
    return held.fn


@dataclass
class _Chunk:
    """Items of one task (a plain object: Dask does not look inside it for tasks)."""

    items: list


def _run_chunk(fn: Callable, chunk: _Chunk) -> tuple[float, list[tuple[Any, str | None]]]:
    """One task on a worker: every item of the chunk, one after the other; returns the seconds
    it took and each item's ``(value, error)``."""
    worker_cached("segprep-single-threads", _single_threaded_libraries)
    t0 = time.perf_counter()
    with _freed_memory_kept():
        out = [call_item(fn, item) for item in chunk.items]
    return time.perf_counter() - t0, out


def _look(paths: list[str]) -> tuple[list[bool], str]:
    """On a worker: which of ``paths`` exist, and the segprep version."""
    import segprep

    return [os.path.exists(p) for p in paths], segprep.__version__


def check_workers(session: Session, paths: Sequence[str]) -> None:
    """Fail early unless every worker runs this segprep version and sees ``paths``.

    Raises:
        SegprepError: naming the first path a worker cannot see (inputs and outputs must be on
            storage every worker mounts at the same path), or ``--scheduler`` when the workers
            cannot run segprep.
    """
    import segprep

    paths = [p for p in paths if p not in session.checked]
    try:
        seen = session.client.run(_look, paths)
    except Exception as exc:  # a worker without segprep: unpickling _look fails there
        raise SegprepError("--scheduler", f"the Dask workers cannot run segprep "
                                          f"({type(exc).__name__}: {exc}); install it on every "
                                          f"worker ({INSTALL_HINT})") from None
    if not seen:
        raise SegprepError("--scheduler", f"no Dask worker is connected to {session.address}")
    for addr, (_, version) in sorted(seen.items()):
        if version != segprep.__version__:
            raise SegprepError("--scheduler", f"worker {addr} runs segprep {version}, this "
                                              f"machine {segprep.__version__}; install the same "
                                              "version everywhere")
    for i, p in enumerate(paths):
        blind = sorted(addr for addr, (exists, _) in seen.items() if not exists[i])
        if blind:
            hint = ("; a relative path resolves in each worker's own current folder: give an "
                    "absolute one" if not os.path.isabs(p) else "")
            raise SegprepError(p, f"not visible on {len(blind)} of {len(seen)} Dask worker(s) "
                                  f"(e.g. {blind[0]}): inputs and outputs must be on storage "
                                  f"that every worker mounts at the same path{hint}")
    session.checked.update(paths)


def _lost(exc: BaseException) -> str:
    """Why a chunk came back without results, in a few words."""
    name = type(exc).__name__
    if name == "KilledWorker":
        return "the Dask workers running it died (KilledWorker)"
    text = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
    return f"its Dask task failed ({name}{': ' + text if text else ''})"


def map_outcomes(fn: Callable, items: list, *, scheduler: str, bar: Any,
                 ordered: bool) -> Iterator[Any]:
    """The ``scheduler`` path of :func:`segprep.io.run_batch` (same arguments, same outcomes;
    the caller has checked the workers with :func:`check_workers`).

    Yields:
        one :class:`segprep.io.items.Outcome` per item (``ordered``: in the order of ``items``).

    Raises:
        SegprepError: see :func:`connect`, before any work is submitted.
    """
    session = connect(scheduler)
    workers, threads = session.slots()
    session.workers = workers
    distributed = _distributed()
    client = session.client
    token = uuid.uuid4().hex[:12]
    fn_future = client.submit(_unwrap, _Held(fn), key=f"segprep-fn-{token}", pure=False)
    spans: dict[Any, tuple[int, int, int]] = {}
    start = 0
    for i, size in enumerate(chunk_sizes(len(items), threads)):
        fut = client.submit(_run_chunk, fn_future, _Chunk(items[start:start + size]),
                            key=f"segprep-{token}-{i}", pure=False, retries=RETRIES)
        spans[fut] = (i, start, size)
        start += size
    pending: dict[int, list] = {}
    next_out = 0
    try:
        for fut in distributed.as_completed(list(spans), loop=client.loop):
            i, start, size = spans.pop(fut)
            chunk = items[start:start + size]
            try:
                seconds, results = fut.result()
            except Exception as exc:  # the chunk's workers died (KilledWorker) or it raised
                reason = _lost(exc)
                outs = [Outcome(item, None, f"{describe(item)}: not done, {reason}; rerun the "
                                            "command to finish") for item in chunk]
            else:
                session.tasks += 1
                session.task_seconds += seconds
                outs = [Outcome(item, value, err) for item, (value, err) in zip(chunk, results)]
            fut.release()
            bar.update(size)
            if not ordered:
                yield from outs
                continue
            pending[i] = outs
            while next_out in pending:
                yield from pending.pop(next_out)
                next_out += 1
    finally:
        if spans:  # the consumer stopped early (or Ctrl-C): drop what has not run
            client.cancel(list(spans))
        client.cancel([fn_future])
