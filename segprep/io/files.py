"""Finding a batch's input files, and the guard that its outputs never replace them."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from segprep.errors import SegprepError

PathLike = str | os.PathLike


def find_files(root: PathLike, suffix: str | tuple[str, ...],
               exclude: Sequence[PathLike | None] = ()) -> list[Path]:
    """All files under ``root`` (recursively, following symlinked folders) whose name ends with
    ``suffix`` (or one of several), sorted. Hidden files (``.name``, e.g. atomic-write temp
    files) are left out.

    Args:
        root: the folder to search.
        suffix: a name ending, or a tuple of them (matched case-sensitively).
        exclude: folders not to descend into, typically the command's output folder when it lies
            inside its input folder, so that a rerun never reads its own outputs back as inputs.
            ``root`` itself is never excluded.

    Raises:
        SegprepError: ``root`` does not exist or is not a readable directory.
    """
    root = Path(root)
    if not root.is_dir():
        raise SegprepError(root, "no such directory")
    if not os.access(root, os.R_OK | os.X_OK):
        raise SegprepError(root, "directory is not readable")
    top = os.path.realpath(root)
    skip = {os.path.realpath(e) for e in exclude if e is not None} - {top}
    out: list[Path] = []
    for dirpath, dirs, files in os.walk(root, followlinks=True):
        if skip:
            dirs[:] = [d for d in dirs if os.path.realpath(os.path.join(dirpath, d)) not in skip]
        out.extend(Path(dirpath) / f for f in files if f.endswith(suffix) and not f.startswith("."))
    return sorted(out)


def refuse_overwriting_inputs(inputs: Iterable[PathLike], outputs: Iterable[PathLike]) -> None:
    """Refuse a batch whose outputs would replace any of its own inputs, whatever the flags.

    Paths are compared after resolving symlinks and ``..`` (``os.path.realpath``), so
    ``convert in in`` and ``convert in ./in/../in`` are caught alike. Call it once, before any
    file is written.

    Raises:
        SegprepError: naming the first output that resolves to an input file.
    """
    ins = {os.path.realpath(p) for p in inputs}
    for out in outputs:
        if os.path.realpath(out) in ins:
            raise SegprepError(out, "this output would replace one of the command's input files; "
                                    "choose another output folder")




def ensure_output_dir(path: PathLike) -> Path:
    """Create an output folder (and its parents) and check that files can be written in it, once
    before a batch starts, so an unwritable output is one error line, not one per file.

    Raises:
        SegprepError: the folder cannot be created (a file stands in its way, no permission) or
            is not writable.
    """
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise SegprepError(path, "cannot create the output folder: a file of that name "
                                 "exists") from None
    except OSError as exc:
        raise SegprepError(path, f"cannot create the output folder: "
                                 f"{exc.strerror or exc}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise SegprepError(path, "output folder is not writable")
    return path
