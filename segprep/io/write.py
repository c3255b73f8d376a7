"""The one atomic writer (a temp file in the same folder, then a rename; the usual permissions)
for files, JSON, PNGs, camera images and zip archives.

A killed run never leaves a truncated output: only ``.<name>.<pid>.<random>.tmp`` files, which
:func:`remove_stale_temps` clears on the next run once their process is gone. Every failure to
write (unwritable folder, a file where a folder should be, a full disk) becomes one
:class:`~segprep.errors.SegprepError` naming the output.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, Any

import numpy as np

from segprep.errors import SegprepError
from segprep.io.png import encode_png
from segprep.io.read import _pil_image

PathLike = str | os.PathLike


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()
_TEMP_RE = re.compile(r"^\..+\.(\d+)\.[^.]+\.tmp$")


def atomic_write(path: PathLike, write: Callable[[IO[bytes]], Any]) -> None:
    """Call ``write(fh)`` on a temp file beside ``path``, then ``os.replace`` it onto ``path``.

    The temp file is ``.<name>.<pid>.<random>.tmp`` in the same folder (a rename within one file
    system is atomic), created 0600 by ``mkstemp`` and given the usual permissions
    (``0666 & ~umask``) before the rename. Parent folders are created.

    Raises:
        SegprepError: the file cannot be written (naming ``path`` and the reason).
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp",
                                   dir=path.parent)
    except OSError as exc:
        raise SegprepError(path, f"cannot write: {_why(path, exc)}") from None
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the usual permissions
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise SegprepError(path, f"cannot write: {_why(path, exc)}") from None
        raise


def _why(path: Path, exc: OSError) -> str:
    """The reason an output cannot be written, in words: ``EEXIST``/``ENOTDIR`` from creating its
    folder mean that a file stands where a folder is needed; name that file."""
    if isinstance(exc, (FileExistsError, NotADirectoryError)):
        for up in path.parents:
            if os.path.lexists(up):
                if not up.is_dir():
                    return f"{up} is a file, not a folder"
                break
    return str(exc.strerror or exc)


def atomic_write_bytes(path: PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temp file + rename): never a truncated file."""
    atomic_write(path, lambda fh: fh.write(data))


def atomic_write_text(path: PathLike, text: str) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def write_json(path: PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON (key order kept) atomically, ending with a newline."""
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def write_zip(path: PathLike, entries: Iterable[tuple[str, bytes]]) -> Path:
    """Write a zip archive of ``(name, data)`` entries atomically, stored (no compression:
    PNG data is compressed already), every entry dated 2020-01-01 and mode 0644 so that the
    same entries always give the same bytes.

    Returns:
        ``path`` as a ``Path``.
    """
    def write(fh: IO[bytes]) -> None:
        with zipfile.ZipFile(fh, "w", zipfile.ZIP_STORED) as zf:
            for name, data in entries:
                info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
                info.external_attr = 0o644 << 16
                zf.writestr(info, data)

    atomic_write(path, write)
    return Path(path)


def write_png(path: PathLike, array: np.ndarray, palette: np.ndarray | None = None) -> None:
    """Encode ``array`` (see :func:`segprep.io.png.encode_png`) and write it atomically."""
    atomic_write_bytes(path, encode_png(array, palette))


def write_image(path: PathLike, rgb: np.ndarray, quality: int = 95) -> None:
    """Write an ``(H, W, 3)`` uint8 RGB image atomically; format from the suffix (PNG, JPEG)."""
    path = Path(path)
    if path.suffix.lower() == ".png":
        write_png(path, rgb)
        return
    import io as _io

    image = _pil_image()
    buf = _io.BytesIO()
    fmt = image.registered_extensions().get(path.suffix.lower(), "PNG")
    image.fromarray(np.ascontiguousarray(rgb)).save(buf, format=fmt, quality=quality)
    atomic_write_bytes(path, buf.getvalue())


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def remove_stale_temps(folders: Iterable[PathLike], recursive: bool = True,
                       name: str | None = None) -> int:
    """Delete the temp files that a killed segprep run left under ``folders``.

    Only names of :func:`atomic_write`'s pattern (``.<name>.<pid>.<random>.tmp``) whose process
    no longer runs are removed, so a concurrent run's files in flight are left alone.

    Args:
        folders: where to look.
        recursive: also in their sub-folders.
        name: only the temp files of this output file name (e.g. ``stats.json``).

    Returns:
        the number of files removed.
    """
    removed = 0
    for folder in folders:
        if not os.path.isdir(folder):
            continue
        top = os.fspath(folder)
        walk: Iterable[tuple[str, list[str], list[str]]] = (
            os.walk(top) if recursive else [(top, [], os.listdir(top))])
        for dirpath, _dirs, files in walk:
            for fname in files:
                if name is not None and not fname.startswith(f".{name}."):
                    continue
                m = _TEMP_RE.match(fname)
                if m and int(m.group(1)) != os.getpid() and not _alive(int(m.group(1))):
                    try:
                        os.unlink(os.path.join(dirpath, fname))
                        removed += 1
                    except OSError:
                        pass
    return removed
