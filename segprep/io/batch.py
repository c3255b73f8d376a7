"""The one batch core: :func:`run_batch`, its jobs policy, per-item outcomes and the summary line.

Every batch command (gen-gt, the converters, odgt create/validate/stats/export-csail, evaluate,
submit's checks, predict over folders) hands its work list to :func:`run_batch`; nothing else in
segprep starts a pool. The jobs policy lives in :func:`resolve_jobs` and nowhere else.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from segprep.io.items import Outcome, call_item, describe, single_threaded_libraries

__all__ = ["BatchSummary", "Outcome", "Prefer", "blas_on_one_thread", "chunked",
           "default_jobs", "describe", "resolve_jobs", "run_batch",
           "single_threaded_libraries"]

Prefer = Literal["threads", "processes"]
"""How :func:`run_batch` runs ``jobs > 1`` workers: threads of this process (the default; the
per-file work — PNG codecs, LUTs, numba ``nogil`` kernels — releases the GIL) or separate
processes (:func:`_process_map`)."""


def default_jobs() -> int:
    """All usable cores of this process (``sched_getaffinity``; ``cpu_count`` elsewhere)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)


def resolve_jobs(jobs: int | None, n_items: int, *, work: float | None = None,
                 serial_below: float | None = None) -> int:
    """The jobs policy of every batch command, in one place.

    - ``jobs=None`` (no ``-j``): all usable cores (:func:`default_jobs`), except that a batch whose
      total ``work`` (any unit the caller counts in: pixels, files) is below ``serial_below``
      runs in this process, where starting workers would cost more than they save;
    - ``jobs >= 1``: exactly that many workers;
    - never more workers than items, never fewer than one.

    Raises:
        ValueError: ``jobs < 1`` (the CLI's ``-j`` refuses it before this point).
    """
    if jobs is not None and jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    if jobs is None:
        if work is not None and serial_below is not None and work < serial_below:
            return 1
        jobs = default_jobs()
    return max(1, min(jobs, n_items))


def chunked(items: Sequence[Any], jobs: int, per_worker: int = 8,
            max_size: int = 64) -> list[tuple[Any, ...]]:
    """Split a work list into chunks for :func:`run_batch`: about ``per_worker`` chunks per
    worker, at most ``max_size`` items each, so that per-task overhead stays small next to the
    work on small files (480x360 CamVid masks) while the progress bar still moves."""
    size = max(1, min(max_size, -(-len(items) // max(1, per_worker * max(1, jobs)))))
    return [tuple(items[i:i + size]) for i in range(0, len(items), size)]


def run_batch(fn: Callable[[Any], Any], items: Sequence[Any], *, jobs: int | None = None,
              desc: str = "", quiet: bool = False, unit: str = "file",
              prefer: Prefer = "threads", ordered: bool = False, scheduler: str | None = None,
              probe: str | Sequence[str] | None = None, opencv: bool = True
              ) -> Iterator[Outcome]:
    """Apply ``fn`` to every item, in parallel, with a tqdm progress bar.

    Exceptions never escape: each item yields an :class:`Outcome` carrying its value or a one-line
    error (``SegprepError`` messages as they are; ``OSError`` as ``<file>: <reason>``; other
    exceptions with their type). ``jobs=1`` (or a single item) runs in this process.

    Args:
        fn: a function of one item (module-level, i.e. picklable, for processes).
        items: the work list.
        jobs: workers, see :func:`resolve_jobs` (``None``: all cores).
        desc: progress-bar label.
        quiet: no progress bar (it is also off when stderr is not a terminal).
        unit: progress-bar unit name.
        prefer: ``"threads"`` (a ``concurrent.futures`` pool of this process; OpenCV's own
            threads are set to 1 meanwhile) or ``"processes"`` (a ``concurrent.futures`` process
            pool whose workers never outlive this process, see :func:`_process_map`).
        ordered: yield outcomes in the order of ``items`` (default: completion order).
        scheduler: run on a Dask cluster instead (``tcp://HOST:PORT`` or ``local:N``; see
            :mod:`segprep.io.cluster`): ``fn`` is sent once to every worker, items travel in
            chunks, only per-item values and errors come back; ``jobs`` and ``prefer`` do not
            apply. Without it, Dask is never imported.
        probe: with ``scheduler``, path(s) every worker must see before any work is submitted
            (default: the first item's file, as :func:`describe` names it, when it exists here).
        opencv: whether ``fn`` may use OpenCV (its thread pool is then set to one thread while
            workers run, as numpy's BLAS always is: :func:`single_threaded_libraries`); False
            spares importing it (12-35 ms, in every worker process) where ``fn`` never does.

    Yields:
        one :class:`Outcome` per item.

    Raises:
        SegprepError: with ``scheduler`` only, before any item runs: Dask is not installed, the
            scheduler cannot be reached, or a worker cannot see ``probe``.
    """
    items = list(items)
    if scheduler and items:
        yield from _cluster_map(fn, items, scheduler, desc, quiet, unit, ordered, probe)
        return
    n = resolve_jobs(jobs, len(items)) if items else 1
    bar = _progress(len(items), desc, quiet, unit)
    try:
        if n == 1:
            for item in items:
                value, err = call_item(fn, item)
                bar.update(1)
                yield Outcome(item, value, err)
        elif prefer == "threads":
            yield from _thread_map(fn, items, n, bar, ordered, opencv)
        else:
            yield from _process_map(fn, items, n, bar, ordered, opencv)
    finally:
        bar.close()


def _cluster_map(fn: Callable, items: list, scheduler: str, desc: str, quiet: bool, unit: str,
                 ordered: bool, probe: str | Sequence[str] | None) -> Iterator[Outcome]:
    """The ``scheduler`` path of :func:`run_batch` (:func:`segprep.io.cluster.map_outcomes`)."""
    from segprep.io import cluster

    if probe is None:
        first = describe(items[0])
        probe = [first] if os.path.exists(first) else []
    elif isinstance(probe, (str, os.PathLike)):
        probe = [str(probe)]
    probe = [str(p) for p in probe if os.path.exists(p)]  # a path missing here is a bad file
    session = cluster.connect(scheduler)  # before the progress bar: errors come out clean
    if probe:
        cluster.check_workers(session, probe)
    bar = _progress(len(items), desc, quiet, unit)
    try:
        yield from cluster.map_outcomes(fn, items, scheduler=scheduler, bar=bar, ordered=ordered)
    finally:
        bar.close()


def _progress(total: int, desc: str, quiet: bool, unit: str) -> Any:
    if quiet or not sys.stderr.isatty():
        return _NoBar()  # tqdm is not even imported (~35 ms of a CLI start)
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, dynamic_ncols=True)


class _NoBar:
    """The progress bar when there is none to show."""

    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def _thread_map(fn: Callable, items: list, n: int, bar: Any, ordered: bool,
                opencv: bool = True) -> Iterator[Outcome]:
    """The threads path of :func:`run_batch`: a ``concurrent.futures`` pool with at most
    ``4 * n`` items in flight (bounded memory).

    Not joblib's threading backend: measured on gen-gt (205 frames, 2 threads) it kept 1.06 cores
    busy (18.4 ms/frame) where this pool keeps 1.53 (10.3 ms/frame).
    """
    from concurrent.futures import ThreadPoolExecutor

    restore = single_threaded_libraries(opencv)  # from this (the main) thread: see there
    try:
        with ThreadPoolExecutor(max_workers=n, thread_name_prefix="segprep") as pool:
            yield from _pool_map(lambda: pool, fn, items, n, bar, ordered)
    finally:
        restore()


@functools.lru_cache(maxsize=1)
def _blas_controller() -> Any:
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()  # finds the loaded libraries once (a search costs ≈ 3 ms)


@contextlib.contextmanager
def blas_on_one_thread() -> Iterator[None]:
    """Run the block with numpy's BLAS on one thread, for code that multiplies many small
    matrices (the shape networks of :mod:`segprep.convert.region_net`): there BLAS threads cost
    CPU time and wall time (``decode_colors`` of a BDD100K frame: 16–19 ms with two threads,
    12–15 ms with one). Only from the main thread: run_batch's worker threads and processes
    already run single-threaded (:func:`single_threaded_libraries`), and a limit set and restored
    by concurrent threads could leave the process with the wrong thread count."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    with _blas_controller().limit(limits=1, user_api="blas"):
        yield


def _pool_map(get_pool: Callable[[], Any], fn: Callable, items: list, n: int, bar: Any,
              ordered: bool) -> Iterator[Outcome]:
    """Feed ``items`` to a ``concurrent.futures`` executor, at most ``4 * n`` in flight.

    ``get_pool()`` returns the executor; it is called again after a process pool broke (a worker
    killed by the OOM killer, or a crash in a C library). The items that were in flight then are
    run again one at a time in the new pool, so that only the item that kills a worker on its
    own fails (one line), and the others go on.
    """
    from concurrent.futures import FIRST_COMPLETED, wait
    from concurrent.futures.process import BrokenProcessPool

    todo = iter(enumerate(items))
    pending: dict[int, Outcome] = {}
    next_out = 0
    running: dict[Any, int] = {}
    suspects: list[int] = []  # in flight when a pool broke: rerun alone
    alone: Any = None  # the future of a suspect running alone
    pool = get_pool()

    def submit(i: int) -> Any:
        nonlocal pool
        try:
            fut = pool.submit(_indexed_call, fn, i, items[i])
        except BrokenProcessPool:
            pool = get_pool()
            fut = pool.submit(_indexed_call, fn, i, items[i])
        running[fut] = i
        return fut

    try:
        while True:
            if suspects:
                if not running:
                    alone = submit(suspects.pop(0))
            else:
                for i, _item in todo:
                    submit(i)
                    if len(running) >= 4 * n:
                        break
            if not running:
                return
            done, _ = wait(list(running), return_when=FIRST_COMPLETED)
            broken = False
            outcomes: list[tuple[int, Outcome]] = []
            for fut in done:
                i = running.pop(fut)
                try:
                    _, value, err = fut.result()
                except BrokenProcessPool:
                    broken = True
                    if fut is not alone:
                        suspects.append(i)
                        continue
                    value, err = None, (f"{describe(items[i])}: the worker process died while "
                                        "working on it (killed, or out of memory)")
                outcomes.append((i, Outcome(items[i], value, err)))
            if broken:  # every other future of that pool is broken too: rerun them alone
                suspects.extend(sorted(running.values()))
                running.clear()
                pool = get_pool()
            for i, outcome in outcomes:
                bar.update(1)
                if not ordered:
                    yield outcome
                else:
                    pending[i] = outcome
            while next_out in pending:
                yield pending.pop(next_out)
                next_out += 1
    finally:
        for fut in running:  # the consumer stopped early: drop what has not started
            fut.cancel()


def _watch_parent(parent: int, opencv: bool = True) -> None:
    """Initializer of the worker processes: OpenCV and BLAS on one thread
    (:func:`single_threaded_libraries`), ignore Ctrl-C (the parent handles it and stops the
    pool; the workers printing their own ``KeyboardInterrupt`` tracebacks is what it avoids) and
    exit as soon as the parent is gone, even when it was killed with SIGKILL (no idle worker is
    ever left behind)."""
    import signal
    import threading

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    single_threaded_libraries(opencv)  # n workers share the cores (the worker's main thread)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.25)
        os._exit(1)

    threading.Thread(target=watch, name="segprep-parent-watch", daemon=True).start()


def _process_map(fn: Callable, items: list, n: int, bar: Any, ordered: bool,
                 opencv: bool = True) -> Iterator[Outcome]:
    """The processes path of :func:`run_batch`: a ``concurrent.futures.ProcessPoolExecutor`` of
    ``n`` spawned workers, at most ``4 * n`` items in flight.

    Not joblib/loky: after the parent was killed (SIGKILL), loky's workers stayed alive, idle
    (still there 30 s later; loky ends idle workers after 300 s), and its resource tracker warned
    about leaked ``/dev/shm`` folders; a worker killed by the OOM killer ended the command with
    loky's traceback. Same speed within the noise (``scripts/bench_process_pool.py``). Here
    workers exit within 0.25 s of their parent (:func:`_watch_parent`), a dead worker fails the
    items it held (one line each) and the batch goes on in a new pool, and Ctrl-C stops the pool
    at once.
    """
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    # multiprocessing's resource tracker (started with this interpreter's -W options) cleans up
    # the pool's semaphores after a kill -9 of this process; it need not print a warning then
    quiet_tracker = "ignore::UserWarning:multiprocessing.resource_tracker"
    if quiet_tracker not in sys.warnoptions:
        sys.warnoptions.append(quiet_tracker)
    pools: list[ProcessPoolExecutor] = []

    def new_pool() -> ProcessPoolExecutor:
        if pools:
            pools[-1].shutdown(wait=False, cancel_futures=True)
        pools.append(ProcessPoolExecutor(max_workers=n, mp_context=mp.get_context("spawn"),
                                         initializer=_watch_parent,
                                         initargs=(os.getpid(), opencv)))
        return pools[-1]

    finished = False
    try:
        yield from _pool_map(new_pool, fn, items, n, bar, ordered)
        finished = True
    finally:
        for pool in pools:
            if not finished:  # Ctrl-C, an error, or the consumer stopped early: stop at once
                for proc in list((getattr(pool, "_processes", None) or {}).values()):
                    proc.terminate()
            pool.shutdown(wait=finished, cancel_futures=True)


def _indexed_call(fn: Callable, i: int, item: Any) -> tuple[int, Any, str | None]:
    value, err = call_item(fn, item)
    return i, value, err


@dataclass
class BatchSummary:
    """Counts of a batch command, printed as its one-line summary."""

    done: int = 0
    skipped: int = 0
    errors: list[str] = field(default_factory=list)
    start: float = field(default_factory=time.perf_counter)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def failed(self) -> int:
        return len(self.errors)

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.start

    def add(self, outcome: Outcome, skipped: bool = False) -> None:
        """Count one outcome (``skipped`` when its outputs already existed)."""
        if not outcome.ok:
            self.errors.append(outcome.error or "")
        elif skipped:
            self.skipped += 1
        else:
            self.done += 1

    def line(self, what: str = "files") -> str:
        """``<what>: N done, N skipped, N failed[, extra] in S s``."""
        extra = "".join(f", {k} {v}" for k, v in self.extra.items())
        return (f"{what}: {self.done} done, {self.skipped} skipped, {self.failed} failed{extra} "
                f"in {self.seconds:.1f} s")
