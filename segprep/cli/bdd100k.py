"""``segprep bdd100k …``: BDD100K color maps → trainId masks."""

from __future__ import annotations

import click

from segprep.cli.common import (
    batch_options,
    finish,
    handle_errors,
    parallel_option,
    prepare_output_folders,
    scheduler_option,
    split_csv,
)
from segprep.convert import bdd100k as bdd
from segprep.convert.colors import UNKNOWN_POLICIES
from segprep.io import BatchSummary, run_batch
from segprep.io.batch import Prefer


@click.group("bdd100k")
def command() -> None:
    """BDD100K tools (semantic-segmentation color maps → training masks)."""


@command.command("convert")
@click.argument("src", type=click.Path(readable=False))
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--palette", type=click.Choice(bdd.PALETTES), default="train", show_default=True,
              help="Colors of the input maps. train: colored by trainId — the official 2018 "
                   "*_train_color.png (RGB/RGBA, ignore = black) and the 2020+ "
                   "labels/sem_seg/colormaps/*.png (palette-mode; their indices are trainIds and "
                   "are used directly). id: the 40-class id-level palette of bdd100k "
                   "label/label.py; colors shared by several labels (person / parking sign, "
                   "pole / polegroup, unlabeled / ego vehicle / static) are resolved by the shape "
                   "and position of each region.")
@click.option("--emit", "emit", multiple=True, metavar="MASKS",
              help="Masks to write, comma-separated or repeated: train_ids (always written: "
                   "<frame>_train_id.png) and ids (also <frame>_id.png with the label ids; needs "
                   "--palette id).")
@click.option("--unknown", type=click.Choice(UNKNOWN_POLICIES), default="error",
              show_default=True,
              help="A color not in the palette: error (the file fails, naming the color, its "
                   "pixel count and the file) or ignore (its pixels become 255; the summary "
                   "counts them).")
@parallel_option
@batch_options
@scheduler_option
@handle_errors
def convert(src: str, out: str, palette: str, emit: tuple[str, ...], unknown: str,
            parallel_backend: Prefer, jobs: int | None, overwrite: bool, quiet: bool,
        scheduler: str | None) -> None:
    """Convert BDD100K color maps under SRC into trainId masks under OUT.

    SRC is a folder, searched recursively for *_train_color.png, *_color.png, <frame>.png and
    colormaps/*.png, or a single file. Each mask is written as OUT/<subfolder>/<frame>_train_id.png
    (the official 2018 name; trainIds 0-18, 255 = ignore), mirroring SRC's sub-folders. Existing
    outputs are skipped unless --overwrite, so a rerun resumes; writes are atomic. A bad file is
    reported on one line and the others still convert; the exit status is then 1.
    """
    emits = split_csv(emit)
    bad = [e for e in emits if e not in bdd.EMITS]
    if bad:
        raise click.BadParameter(f"{', '.join(bad)} (choose from {', '.join(bdd.EMITS)})",
                                 param_hint="--emit")
    job_list = bdd.make_jobs(src, out, palette=palette, emit_ids="ids" in emits, unknown=unknown,
                             overwrite=overwrite)
    prepare_output_folders((o for j in job_list for o in j.outputs), overwrite)
    summary = BatchSummary()
    unknown_px = palette_files = 0
    regions: dict[str, int] = {}
    for outcome in run_batch(bdd.convert_file, job_list, jobs=jobs, desc="bdd100k convert",
                             quiet=quiet, unit="frame", prefer=parallel_backend,
                             scheduler=scheduler):
        skipped = outcome.ok and outcome.value.skipped
        summary.add(outcome, skipped=skipped)
        if outcome.ok and not skipped:
            unknown_px += outcome.value.unknown_pixels
            palette_files += outcome.value.palette_indices
            for k, v in outcome.value.regions.items():
                regions[k] = regions.get(k, 0) + v
    if unknown == "ignore":
        summary.extra["unknown-color px → 255"] = unknown_px
    if palette_files:
        summary.extra["palette indices used directly"] = palette_files
    if regions:
        summary.extra["shared-color regions"] = " / ".join(f"{k} {v}"
                                                           for k, v in sorted(regions.items()))
    finish(summary, "frames")
