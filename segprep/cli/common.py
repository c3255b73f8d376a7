"""Options and reporting shared by every command, so that all commands feel the same.

Conventions: inputs positional, outputs ``--out/-o``; batch commands take ``-j/--jobs``,
``--overwrite``, ``--quiet``; errors print as ``segprep: error: <file>: <what is wrong>`` on stderr;
exit status 0 all good, 1 some files failed, 2 bad usage or nothing to do.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable, Iterable
from typing import Any

import click

from segprep.errors import SegprepError
from segprep.io import BatchSummary
from segprep.sizes import parse_pair

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def jobs_option(f: Callable) -> Callable:
    """``-j/--jobs N`` (N >= 1; default all cores): the one jobs option of every batch command,
    passed to :func:`segprep.io.run_batch` (threads unless a command says otherwise)."""
    return click.option("-j", "--jobs", type=click.IntRange(min=1), default=None,
                        show_default="all cores",
                        help="Files worked on in parallel (threads of this process; 1 = one at "
                             "a time).")(f)


class SizeType(click.ParamType):
    """A click parameter for sizes ``AxB`` (``x``, ``X`` or ``×``), parsed by
    :func:`segprep.sizes.parse_pair`; ``words`` are accepted as they are (e.g. ``native``)."""

    name = "size"

    def __init__(self, order: str = "WxH", words: tuple[str, ...] = (),
                 square_ok: bool = False) -> None:
        self.order, self.words, self.square_ok = order, words, square_ok

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None
                ) -> Any:
        if value is None or isinstance(value, tuple):
            return value
        if str(value).strip().lower() in self.words:
            return str(value).strip().lower()
        try:
            return parse_pair(value, param.opts[-1] if param else "--size", self.order,
                              self.square_ok)
        except SegprepError as exc:
            self.fail(exc.message, param, ctx)


def overwrite_option(f: Callable) -> Callable:
    return click.option("--overwrite", is_flag=True,
                        help="Replace outputs that already exist (default: skip them, so a rerun "
                             "resumes a killed run).")(f)


def quiet_option(f: Callable) -> Callable:
    return click.option("-q", "--quiet", is_flag=True,
                        help="No progress bar (it is also off when stderr is not a terminal).")(f)


parallel_option = click.option(
    "--parallel", "parallel_backend", type=click.Choice(["threads", "processes"]),
    default="threads", show_default=True,
    help="Run the -j workers as threads of this process (no start-up cost: PNG decode and "
         "encode, lookups and the numba kernels release the GIL) or as separate processes.")
"""``--parallel threads|processes`` of the per-file converters (passed to
:func:`segprep.io.run_batch`'s ``prefer``)."""


def scheduler_option(f: Callable) -> Callable:
    """``--scheduler ADDRESS`` (or ``$SEGPREP_SCHEDULER``): run the command's batch on a Dask
    cluster (:mod:`segprep.io.cluster`, via :func:`segprep.io.run_batch`'s ``scheduler``).

    The command receives ``scheduler`` (None: the local pool, Dask never imported). ``-j`` or
    ``--parallel`` given with it are refused (the cluster's workers set the parallelism); the
    cluster session (a ``local:N`` cluster) is closed when the command ends.
    """

    @functools.wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        scheduler = kwargs.get("scheduler")
        if scheduler:
            ctx = click.get_current_context()
            for name, opt in (("jobs", "-j/--jobs"), ("parallel_backend", "--parallel")):
                source = ctx.get_parameter_source(name) if name in kwargs else None
                if source in (click.core.ParameterSource.COMMANDLINE,
                              click.core.ParameterSource.ENVIRONMENT):
                    raise click.UsageError(f"{opt} and --scheduler exclude each other (the "
                                           "cluster's workers set the parallelism)")
        try:
            return f(*args, **kwargs)
        finally:
            cluster = sys.modules.get("segprep.io.cluster")
            if cluster is not None:
                cluster.close_all()

    return click.option(
        "--scheduler", metavar="ADDRESS", default=None, envvar="SEGPREP_SCHEDULER",
        show_envvar=True,
        help="Run the batch on a Dask cluster: tcp://HOST:PORT connects to a running Dask "
             "scheduler, local:N starts N worker processes on this machine. Inputs and outputs "
             "must be paths every worker sees at the same place (shared storage). Needs "
             "pip install 'segprep[dask]'.")(wrapper)


def batch_options(f: Callable) -> Callable:
    """``-j/--jobs``, ``--overwrite`` and ``--quiet`` in one decorator."""
    return jobs_option(overwrite_option(quiet_option(f)))


def prepare_output_folders(outputs: Iterable[str | os.PathLike], overwrite: bool) -> None:
    """Before a batch writes ``outputs``: check once that the folder of every output still to be
    written (all with ``overwrite``) can be created and written — one error line for an
    unwritable output folder, not one per file — and remove the temp files that a killed earlier
    run left in the output folders (:func:`segprep.io.remove_stale_temps`).

    Raises:
        SegprepError: an output folder cannot be created or written.
    """
    from segprep.io import ensure_output_dirs, remove_stale_temps

    outputs = list(outputs)
    ensure_output_dirs(o for o in outputs if overwrite or not os.path.exists(o))
    remove_stale_temps(sorted({os.path.dirname(os.path.abspath(o)) for o in outputs}),
                       recursive=False)


def error(message: str) -> None:
    """Print one ``segprep: error: …`` line on stderr."""
    click.echo(f"segprep: error: {message}", err=True)


def info(message: str, quiet: bool = False) -> None:
    """Print a status line on stderr (results go to stdout)."""
    if not quiet:
        click.echo(message, err=True)


def finish(summary: BatchSummary, what: str = "files") -> None:
    """Print the failures and the one-line summary; exit 1 if anything failed, 2 if nothing to do."""
    for msg in summary.errors:
        error(msg)
    cluster = sys.modules.get("segprep.io.cluster")  # imported only when --scheduler was given
    workers = cluster.workers_used() if cluster is not None else None
    if workers is not None:
        summary.extra["Dask workers"] = workers
    click.echo(summary.line(what), err=True)
    if summary.failed:
        sys.exit(EXIT_FAILED)
    if summary.done + summary.skipped == 0:
        sys.exit(EXIT_USAGE)


def handle_errors(f: Callable) -> Callable:
    """Turn a :class:`SegprepError` escaping a command into one error line and exit status 2."""

    @functools.wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return f(*args, **kwargs)
        except SegprepError as exc:
            error(str(exc))
            sys.exit(EXIT_USAGE)

    return wrapper


def show_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                 file: Any = None, line: str | None = None) -> None:
    """``warnings.showwarning`` of the CLI: one ``segprep: warning: …`` line, no source line."""
    click.echo(f"segprep: warning: {message}", err=True)


def split_csv(value: str | tuple[str, ...] | None) -> list[str]:
    """Split ``"a,b"`` (or repeated options) into ``["a", "b"]``."""
    if value is None:
        return []
    parts = value if isinstance(value, (list, tuple)) else [value]
    return [p.strip() for part in parts for p in str(part).split(",") if p.strip()]


def _parse_numbers(value: str | None, option: str, kind: type, what: str, example: str
                   ) -> tuple | None:
    """Comma-separated ``value`` (:func:`split_csv`) → a tuple of ``kind`` (None when not given).

    Raises:
        SegprepError: naming ``option``, when a part is not a ``kind``.
    """
    if value is None:
        return None
    try:
        return tuple(kind(p) for p in split_csv(value))
    except ValueError:
        raise SegprepError(option, f"expected {what} separated by commas (e.g. {example}), "
                                   f"got {value!r}") from None


def parse_factors(value: str | None, option: str) -> tuple[float, ...] | None:
    """``"0.75,1,1.25"`` → ``(0.75, 1.0, 1.25)`` (None when not given); their range is the
    library's to check.

    Raises:
        SegprepError: naming ``option``, when a part is not a number.
    """
    return _parse_numbers(value, option, float, "numbers", "0.75,1,1.25,1.5")


def parse_train_ids(value: str | None, option: str) -> tuple[int, ...] | None:
    """``"2,6,9"`` → ``(2, 6, 9)`` (None when not given); their range is the library's to check.

    Raises:
        SegprepError: naming ``option``, when a part is not an integer.
    """
    return _parse_numbers(value, option, int, "train_ids", "2,6,9")
