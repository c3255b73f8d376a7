"""Shared test fixtures: where the real sample data lives, and small helpers.

The real data (``../shared/data`` beside the project, or ``$SEGPREP_DATA``) is never copied into the
project. Without it a real-data test skips on a developer's machine but fails under CI (``CI`` set),
where the data is always present.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parent.parent


def find_data_dir() -> Path | None:
    """The real sample data folder, or None if it is not there."""
    env = os.environ.get("SEGPREP_DATA")
    for cand in ([Path(env)] if env else []) + [PROJECT.parent / "shared" / "data"]:
        if cand.is_dir():
            return cand
    return None


def require_data(*parts: str) -> Path:
    """Path of a real-data file or folder; skip the test if absent (fail under CI)."""
    root = find_data_dir()
    path = root.joinpath(*parts) if root is not None else None
    if path is None or not path.exists():
        msg = f"real sample data not found: {'/'.join(parts) or 'shared/data'} (set SEGPREP_DATA)"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    return path


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """Root of the real sample data (``../shared/data``)."""
    return require_data()


@pytest.fixture(scope="session")
def cityscapes_root() -> Path:
    """Cityscapes root with ``gtFine/{train,val,test}`` and ``leftImg8bit/train``."""
    return require_data("cityscapes")


@pytest.fixture(scope="session")
def bdd_root() -> Path:
    return require_data("bdd100k")


@pytest.fixture(scope="session")
def camvid_root() -> Path:
    return require_data("camvid")


@pytest.fixture(autouse=True)
def _restore_torch_threads():
    """``predict --threads 1`` (and the trainer) set torch's process-wide thread count: give the
    next test the count it had (only where a test imported torch)."""
    import sys

    torch = sys.modules.get("torch")
    n = torch.get_num_threads() if torch is not None else None
    yield
    torch = sys.modules.get("torch")
    if torch is not None and n is not None:
        torch.set_num_threads(n)
