"""A run's folder: ``metrics.csv``, ``curves.png``, the per-epoch checkpoint
(written by :func:`segprep.train.loop.save_epoch`: ``last.pt``, ``best.pt``,
``best_scores.json``), and what a resume or
``--overwrite`` does to it (:func:`repair_run`, :func:`clear_run`)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from segprep.errors import SegprepError
from segprep.train.config import CSV_FIELDS


def read_rows(path: Path, upto_epoch: int) -> list[dict]:
    if not path.is_file():
        return []
    with open(path, newline="", encoding="utf-8") as fh:
        return [r for r in csv.DictReader(fh) if int(r["epoch"]) <= upto_epoch]


def write_rows(path: Path, rows: list[dict]) -> None:
    import io

    from segprep.io import atomic_write_text

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buf.getvalue())


def plot_curves(rows: list[dict], path: Path) -> None:
    """``curves.png``: train loss and val mIoU per epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ep = [int(r["epoch"]) for r in rows]
    loss = [float(r["train_loss"]) for r in rows]
    val = [(int(r["epoch"]), float(r["val_miou"])) for r in rows if r.get("val_miou") not in
           ("", None)]
    from matplotlib.ticker import MaxNLocator

    fig, ax = plt.subplots(1, 2, figsize=(10, 3.6))
    for a in ax:
        a.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax[0].plot(ep, loss, marker=".")
    ax[0].set_xlabel("epoch")
    ax[0].set_ylabel("train loss")
    ax[0].grid(alpha=0.3)
    if val:
        ax[1].plot([v[0] for v in val], [v[1] for v in val], marker=".", color="C1")
    ax[1].set_xlabel("epoch")
    ax[1].set_ylabel("val mIoU")
    ax[1].grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def format_scores(scores, names: list[str]) -> str:
    """A per-class IoU table (one line per class, then mIoU and pixel accuracy)."""
    width = max(10, max(len(n) for n in names))
    lines = [f"{'class':<{width}}  IoU"]
    for n, v in zip(names, scores.iou):
        lines.append(f"{n:<{width}}  {'  n/a' if not np.isfinite(v) else f'{v:.4f}'}")
    lines.append(f"{'mIoU':<{width}}  {scores.miou:.4f}")
    lines.append(f"{'pixel acc':<{width}}  {scores.pixel_accuracy:.4f}")
    return "\n".join(lines)



# ----------------------------------------------------------------------------- run folder
RUN_FILES = ("last.pt", "best.pt", "best_scores.json", "metrics.csv", "args.json", "curves.png")
"""The files a run writes into its folder (and ``tb/``); ``--overwrite`` removes these only."""

_HOLDS_RUN = ("last.pt", "best.pt", "best_scores.json")


def holds_run(run_dir: Path) -> bool:
    """Whether ``run_dir`` holds a run's checkpoint or scores (so a new run would mix with it)."""
    return any((run_dir / name).exists() for name in _HOLDS_RUN)


def remove_stale_temps(run_dir: Path) -> list[Path]:
    """Delete the temp files (``.NAME.*.tmp``) that atomic writes killed mid-way left behind.

    Returns:
        The files removed.
    """
    removed = []
    for name in RUN_FILES:
        for tmp in run_dir.glob(f".{name}.*.tmp"):
            try:
                tmp.unlink()
                removed.append(tmp)
            except FileNotFoundError:  # pragma: no cover - removed meanwhile
                pass
    return removed


def clear_run(run_dir: Path) -> None:
    """``--overwrite``: remove a previous run's files (:data:`RUN_FILES`, ``tb/``, temp files);
    anything else in the folder (e.g. the manifests ``train_camvid.sh`` keeps there) stays."""
    import shutil

    for name in RUN_FILES:
        path = run_dir / name
        if path.is_file() or path.is_symlink():
            path.unlink()
    if (run_dir / "tb").is_dir():
        shutil.rmtree(run_dir / "tb")
    remove_stale_temps(run_dir)


def repair_run(run_dir: Path, ckpt: dict, source: Path) -> tuple[dict, list[str]]:
    """Make ``best.pt`` and ``best_scores.json`` agree with the checkpoint a resume starts from.

    Every epoch writes ``metrics.csv``, then ``last.pt`` (the resume point), then ``best.pt``
    (a hard link to ``last.pt``) and ``best_scores.json`` when the mIoU improved; a kill between
    these leaves the later ones stale or missing. ``last.pt`` records which epoch ``best.pt``
    holds and its scores, so: a ``best.pt`` of the wrong epoch (or missing) is rebuilt from
    ``last.pt`` when that is the best epoch; ``best_scores.json`` is rewritten from the scores in
    ``last.pt``. A best model that cannot be rebuilt (deleted by hand) is forgotten, so the next
    validation writes a new ``best.pt``.

    Args:
        run_dir: the run folder.
        ckpt: the checkpoint loaded from ``source``.
        source: the file ``ckpt`` came from.

    Returns:
        ``(ckpt, notes)``: the checkpoint (``best_miou`` / ``best_epoch`` cleared if the best
        model is lost) and one line per repair made.
    """
    from segprep.io import write_json
    from segprep.train.checkpoint import link_checkpoint, load_checkpoint

    notes: list[str] = []
    best_epoch = ckpt.get("best_epoch")
    if best_epoch is None:
        return ckpt, notes
    best = run_dir / "best.pt"
    held = None
    if best.is_file():
        try:
            held = int(load_checkpoint(best)["epoch"])
        except SegprepError:
            held = None
    if held != best_epoch:
        if int(ckpt["epoch"]) == int(best_epoch) and source.resolve() != best.resolve():
            link_checkpoint(source, best)
            notes.append(f"best.pt (epoch {best_epoch}) rebuilt from {source.name}")
        else:
            notes.append(f"best.pt of epoch {best_epoch} is missing and cannot be rebuilt; the "
                         "next validation writes a new one")
            ckpt = dict(ckpt, best_miou=None, best_epoch=None, best_scores=None)
            return ckpt, notes
    scores = ckpt.get("best_scores")
    if scores:
        path = run_dir / "best_scores.json"
        try:
            current = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            current = None
        if current != scores:
            write_json(path, scores)
            notes.append(f"best_scores.json (epoch {best_epoch}) rewritten from {source.name}")
    return ckpt, notes
