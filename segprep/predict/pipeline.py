"""The one prediction pipeline: decode → model → encode, a thread each, bounded queues between.

Stills, folders and video all go through :func:`run_pipeline`: a *source* yields
``(key, image_or_error)`` in order (decoding happens inside it, in the decode thread); the model
stage (the calling thread) batches consecutive same-size images up to ``batch_size`` and predicts
them; a *sink* ``(key, image, prediction)`` renders and writes (in the encode thread). The queues
hold ``depth`` entries each, so the decoder runs ahead of the model and the encoder behind it
without holding the whole input in memory; on a GPU the model never waits for the codecs while the
queues are full.

Errors: a source item that is an error string, or a sink raising :class:`SegprepError` /
``OSError``, is reported for that key and the others go on — unless ``fatal`` (video: one stream),
where the first one stops all three stages and is raised by :func:`run_pipeline`.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from segprep.errors import SegprepError

_END = object()


@dataclass
class StageTimes:
    """Seconds spent in each stage (summed over items) and the wall time of the whole run."""

    frames: int = 0
    decode_s: float = 0.0
    model_s: float = 0.0
    encode_s: float = 0.0
    wall_s: float = 0.0
    errors: list[tuple[Any, str]] = field(default_factory=list)
    done: list[tuple[Any, Any]] = field(default_factory=list)

    def ms_per_frame(self) -> tuple[float, float, float]:
        """``(decode, model, encode)`` milliseconds per frame (0 when no frame)."""
        n = max(1, self.frames)
        return (1e3 * self.decode_s / n, 1e3 * self.model_s / n, 1e3 * self.encode_s / n)

    @property
    def frames_per_s(self) -> float:
        return self.frames / self.wall_s if self.wall_s > 0 and self.frames else 0.0

    def line(self, what: str = "frames") -> str:
        """``N frames in S s, F frames/s; per frame: decode D ms, model M ms, encode E ms``."""
        d, m, e = self.ms_per_frame()
        return (f"{self.frames} {what} in {self.wall_s:.1f} s, {self.frames_per_s:.2f} {what}/s; "
                f"per frame: decode {d:.1f} ms, model {m:.1f} ms, encode {e:.1f} ms")


class _Stop(Exception):
    pass


def _put(q: queue.Queue, item: Any, stop: threading.Event) -> None:
    while True:
        try:
            q.put(item, timeout=0.05)
            return
        except queue.Full:
            if stop.is_set():
                raise _Stop from None


def _get(q: queue.Queue, stop: threading.Event) -> Any:
    while True:
        try:
            return q.get(timeout=0.05)
        except queue.Empty:
            if stop.is_set():
                raise _Stop from None


def run_pipeline(source: Iterable[tuple[Any, np.ndarray | str]],
                 predict: Callable[[Sequence[np.ndarray]], list[np.ndarray]],
                 sink: Callable[[Any, np.ndarray, np.ndarray], Any], *, batch_size: int = 1,
                 depth: int | None = None, fatal: bool = False,
                 progress: Callable[[int], None] | None = None) -> StageTimes:
    """Run decode → model → encode over ``source`` (see the module docstring).

    Args:
        source: yields ``(key, (H, W, 3) uint8 RGB)`` or ``(key, "error message")`` in order;
            may raise :class:`SegprepError` (fatal for the rest of the source).
        predict: same-size images → ``(H, W)`` uint8 predictions.
        sink: writes one result; its return value is kept in :attr:`StageTimes.done`.
        batch_size: images per ``predict`` call (consecutive same-size images).
        depth: capacity of each queue (default ``2 * batch_size + 2``).
        fatal: stop at the first error and raise it (else report it per key and go on).
        progress: called with the number of items finished (from the encode thread).

    Returns:
        :class:`StageTimes` with per-stage seconds, the errors ``(key, message)`` and the sink's
        results ``(key, value)``, both in input order.

    Raises:
        SegprepError: with ``fatal``, the first error; a source's own error in any case.
    """
    depth = depth or 2 * batch_size + 2
    q_in: queue.Queue = queue.Queue(depth)
    q_out: queue.Queue = queue.Queue(depth)
    stop = threading.Event()
    times = StageTimes()
    failure: list[BaseException] = []

    def guarded(stage: Callable[[], None]) -> Callable[[], None]:
        """Run ``stage`` until its end or a stop; the first failure stops every stage."""
        def run() -> None:
            try:
                stage()
            except _Stop:
                pass
            except BaseException as exc:  # noqa: BLE001 - handed to the caller
                if not failure:
                    failure.append(exc)
                stop.set()
        return run

    t0 = time.perf_counter()
    threads = [threading.Thread(target=guarded(lambda: _decode_stage(source, q_in, stop, fatal,
                                                                     times)),
                                name="segprep-decode", daemon=True),
               threading.Thread(target=guarded(lambda: _encode_stage(q_out, stop, sink, fatal,
                                                                     times, progress)),
                                name="segprep-encode", daemon=True)]
    for th in threads:
        th.start()
    guarded(lambda: _model_stage(q_in, q_out, stop, predict, batch_size, fatal, times))()
    for th in threads:
        th.join()
    times.wall_s = time.perf_counter() - t0
    if failure:
        raise failure[0]
    return times


def _decode_stage(source: Iterable[tuple[Any, np.ndarray | str]], q_in: queue.Queue,
                  stop: threading.Event, fatal: bool, times: StageTimes) -> None:
    """Decode thread: the source's items into ``q_in``, then the end marker."""
    it = iter(source)
    try:
        while not stop.is_set():
            t = time.perf_counter()
            try:
                key, img = next(it)
            except StopIteration:
                break
            times.decode_s += time.perf_counter() - t
            if isinstance(img, str) and fatal:
                raise SegprepError(None, img)
            _put(q_in, (key, img), stop)
        _put(q_in, _END, stop)
    finally:
        close = getattr(it, "close", None)
        if close is not None:
            close()


def _encode_stage(q_out: queue.Queue, stop: threading.Event,
                  sink: Callable[[Any, np.ndarray, np.ndarray], Any], fatal: bool,
                  times: StageTimes, progress: Callable[[int], None] | None) -> None:
    """Encode thread: each ``(key, image, prediction)`` through ``sink`` (an error message in
    place of the prediction is recorded for its key), until the end marker."""
    while True:
        entry = _get(q_out, stop)
        if entry is _END:
            return
        key, img, pred = entry
        if pred is None:  # an error message for this key
            times.errors.append((key, img))
        else:
            t = time.perf_counter()
            try:
                times.done.append((key, sink(key, img, pred)))
                times.frames += 1
            except (SegprepError, OSError) as exc:
                if fatal:
                    raise
                times.errors.append((key, str(exc)))
            times.encode_s += time.perf_counter() - t
        if progress is not None:
            progress(1)


def _model_stage(q_in: queue.Queue, q_out: queue.Queue, stop: threading.Event,
                 predict: Callable[[Sequence[np.ndarray]], list[np.ndarray]], batch_size: int,
                 fatal: bool, times: StageTimes) -> None:
    """The calling thread: batches of consecutive same-size images through ``predict`` into
    ``q_out`` (an inference error becomes each key's message unless ``fatal``)."""
    held = None  # an image that did not fit the previous batch (other size)
    ended = False
    while not ended:
        keys: list = []
        imgs: list[np.ndarray] = []
        while len(imgs) < batch_size:
            entry = held if held is not None else _get(q_in, stop)
            held = None
            if entry is _END:
                ended = True
                break
            key, img = entry
            if isinstance(img, str):
                _put(q_out, (key, img, None), stop)
                continue
            if imgs and img.shape != imgs[0].shape:
                held = entry
                break
            keys.append(key)
            imgs.append(img)
        if not imgs:
            continue
        t = time.perf_counter()
        try:
            preds = predict(imgs)
        except RuntimeError as exc:  # e.g. out of memory on a huge image
            msg = f"inference failed: {str(exc).splitlines()[0] if str(exc) else exc}"
            if fatal:
                raise SegprepError(None, msg) from None
            times.model_s += time.perf_counter() - t
            for k in keys:
                _put(q_out, (k, msg, None), stop)
            continue
        times.model_s += time.perf_counter() - t
        for k, img, p in zip(keys, imgs, preds):
            _put(q_out, (k, img, p), stop)
    _put(q_out, _END, stop)
