"""Options and reporting shared by every command, so that all commands feel the same.

Conventions: inputs positional, outputs ``--out/-o``; batch commands take ``-j/--jobs``,
``--overwrite``, ``--quiet``; errors print as ``segprep: error: <file>: <what is wrong>`` on stderr;
exit status 0 all good, 1 some files failed, 2 bad usage or nothing to do.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from segprep.errors import SegprepError
from segprep.io import BatchSummary, atomic_write_text, default_jobs

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def jobs_option(f: Callable) -> Callable:
    return click.option("-j", "--jobs", type=int, default=None, show_default="all cores",
                        help="Worker processes (1 = run in this process).")(f)


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
"""``--parallel threads|processes`` of the per-file converters (passed to ``parallel_map``'s
``prefer``)."""


def batch_options(f: Callable) -> Callable:
    """``-j/--jobs``, ``--overwrite`` and ``--quiet`` in one decorator."""
    return jobs_option(overwrite_option(quiet_option(f)))


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


def write_json(path: str | Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON atomically (used by ``--json FILE`` options)."""
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def resolve_jobs(jobs: int | None) -> int:
    return default_jobs() if not jobs else jobs


def split_csv(value: str | tuple[str, ...] | None) -> list[str]:
    """Split ``"a,b"`` (or repeated options) into ``["a", "b"]``."""
    if value is None:
        return []
    parts = value if isinstance(value, (list, tuple)) else [value]
    return [p.strip() for part in parts for p in str(part).split(",") if p.strip()]
