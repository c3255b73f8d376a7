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
    except (FileExistsError, NotADirectoryError):
        blocker = next((up for up in [path, *path.parents]
                        if os.path.lexists(up) and not up.is_dir()), path)
        what = ("it is a file, not a folder" if blocker == path else
                f"{blocker} is a file, not a folder")
        raise SegprepError(path, f"cannot create the output folder: {what}") from None
    except OSError as exc:
        raise SegprepError(path, f"cannot create the output folder: "
                                 f"{exc.strerror or exc}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise SegprepError(path, "output folder is not writable")
    return path


def ensure_output_dirs(outputs: Iterable[PathLike]) -> list[Path]:
    """:func:`ensure_output_dir` for the folder of every output file of a batch (each distinct
    folder once), so that an unwritable output folder is one error line before the batch starts,
    never one per file.

    Returns:
        the distinct folders, sorted.

    Raises:
        SegprepError: the first folder that cannot be created or written.
    """
    folders: dict[str, Path] = {}  # absolute -> as given (error lines name it as the user did)
    for o in outputs:
        parent = os.path.dirname(os.fspath(o)) or "."
        folders.setdefault(os.path.abspath(parent), Path(parent))
    for key in sorted(folders):
        ensure_output_dir(folders[key])
    return [folders[k] for k in sorted(folders)]


def check_output_file(path: PathLike, option: str | None = None) -> Path:
    """Check, before a command does its work, that a single output file can be written: its
    folder can be created and written, and ``path`` is not a folder. The folder is created, and
    the temp files of ``path`` that a killed earlier run left there are removed.

    Args:
        path: the output file.
        option: the option that named it (``--json``), added to the message.

    Raises:
        SegprepError: naming ``path`` and what stands in the way.
    """
    path = Path(path)
    opt = f" ({option})" if option else ""
    if path.is_dir():
        raise SegprepError(path, f"is a directory; expected a file to write{opt}")
    parent = path.parent
    for up in [parent, *parent.parents]:  # the nearest existing ancestor must be a folder
        if os.path.lexists(up):
            if not up.is_dir():
                raise SegprepError(path, f"cannot write{opt}: {up} is a file, not a "
                                         "folder")
            break
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SegprepError(path, f"cannot write{opt}: cannot create the folder {parent} "
                                 f"({exc.strerror or exc})") from None
    if not os.access(parent, os.W_OK | os.X_OK):
        raise SegprepError(path, f"cannot write{opt}: folder {parent} is not writable")
    from segprep.io.write import remove_stale_temps

    remove_stale_temps([parent], recursive=False, name=path.name)  # left by a killed run
    return path
