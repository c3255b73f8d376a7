"""How many CPU threads torch should use on a machine that other processes may share.

Used by ``segprep train`` (when ``--threads`` is not given) and by ``segprep demo``'s training
stage. Imports neither torch nor numpy.
"""

from __future__ import annotations

import os


def cpu_load() -> float | None:
    """The 1-minute load average (runnable processes, averaged), or None where the platform has
    no ``os.getloadavg``."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):  # pragma: no cover - platforms without getloadavg
        return None


def cpu_threads() -> int:
    """CPU threads for training: the usable cores not held by other processes, at least 1.

    On a shared machine, torch's threads wait on each other when another process holds a core
    (measured on 2 cores with one other busy process: 0.9 images/s with 2 threads, 11 with 1;
    17 with 2 on an idle machine). The 1-minute load average, minus about 1 for this process,
    estimates the cores others hold. Usable cores: :func:`segprep.io.default_jobs` (the CPU
    affinity mask where the platform has one).

    Returns:
        An int in ``1 .. usable cores``.
    """
    from segprep.io import default_jobs

    cores = default_jobs()
    load = cpu_load()
    if load is None:  # pragma: no cover - platforms without getloadavg
        return cores
    return max(1, min(cores, round(cores - max(0.0, load - 1.0))))
