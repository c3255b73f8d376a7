"""``segprep cityscapes …``: Cityscapes ground-truth generation."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import click

from segprep.cli.common import (
    batch_options,
    finish,
    handle_errors,
    info,
    parallel_option,
    prepare_output_folders,
    scheduler_option,
    split_csv,
)
from segprep.convert import cityscapes as cs
from segprep.convert.raster import RASTERS
from segprep.datasets import cityscapes as cs_data
from segprep.errors import SegprepError
from segprep.io import BatchSummary, run_batch
from segprep.io.batch import Prefer


@click.group("cityscapes")
def command() -> None:
    """Cityscapes tools (gtFine / gtCoarse polygons → training masks)."""


def _choices(kind: str, allowed: tuple[str, ...] | list[str], value: str | tuple[str, ...] | None
             ) -> list[str]:
    items = split_csv(value)
    bad = [v for v in items if v not in allowed]
    if bad:
        raise click.BadParameter(f"{', '.join(bad)} (choose from {', '.join(allowed)})",
                                 param_hint=kind)
    return list(dict.fromkeys(items))


@command.command("gen-gt")
@click.argument("root", required=False, type=click.Path(file_okay=False),
                envvar="CITYSCAPES_DATASET")
@click.option("-o", "--out", type=click.Path(file_okay=False), default=None,
              help="Write under this folder, mirroring ROOT's layout (<gt>/<split>/<city>/). "
                   "Default: in place, next to each JSON, as cityscapesScripts does.")
@click.option("--split", "splits", multiple=True, metavar="SPLITS",
              help="Splits to convert, comma-separated or repeated: any of "
                   f"{', '.join(cs_data.SPLITS)}. Default: every split folder present.")
@click.option("--gt", type=click.Choice(cs_data.GT_TYPES), default="gtFine", show_default=True,
              help="Annotation set: fine or coarse polygons.")
@click.option("--targets", multiple=True, metavar="TARGETS",
              help="Images to write, comma-separated or repeated: any of "
                   f"{', '.join(cs.TARGETS)} (files *_labelIds.png, *_labelTrainIds.png, "
                   "*_color.png, *_instanceIds.png, *_instanceTrainIds.png), or panoptic "
                   "(cityscapesScripts createPanopticImgs: <gt>/cityscapes_panoptic_<split>/"
                   "*_panoptic.png and <gt>/cityscapes_panoptic_<split>.json). Default: trainIds.")
@click.option("--panoptic-train-ids", is_flag=True,
              help="panoptic: category ids are trainIds (createPanopticImgs --use-train-id; "
                   "files cityscapes_panoptic_<split>_trainId*).")
@click.option("--source", type=click.Choice(cs.SOURCES), default="auto", show_default=True,
              help="auto: derive every target from the official *_labelIds.png / "
                   "*_instanceIds.png when they sit next to the JSON (exactly the official "
                   "release; trainIds by LUT, color by palette) and rasterise the JSON only where "
                   "they are absent (coarse or custom annotations). polygons: always rasterise "
                   "the JSON.")
@click.option("--raster", type=click.Choice(RASTERS), default="official", show_default=True,
              help="How polygons are rasterised. official: the rule the released Cityscapes PNGs "
                   "were drawn with (PIL <= 2.4.0 polygon filler), bit-identical to them. pillow: "
                   "the installed Pillow, bit-identical to what today's cityscapesScripts writes.")
@parallel_option
@batch_options
@scheduler_option
@handle_errors
def gen_gt(root: str | None, out: str | None, splits: tuple[str, ...], gt: str,
           targets: tuple[str, ...], panoptic_train_ids: bool, source: str, raster: str,
           parallel_backend: Prefer, jobs: int | None, overwrite: bool, quiet: bool,
           scheduler: str | None) -> None:
    """Generate training masks from Cityscapes polygon annotations under ROOT.

    ROOT is a Cityscapes root holding gtFine/{train,val,test}/<city>/*_gtFine_polygons.json
    (and optionally gtCoarse/); it defaults to $CITYSCAPES_DATASET. Outputs follow the official
    names, e.g. <frame>_gtFine_labelTrainIds.png. Existing outputs are skipped unless
    --overwrite, so rerunning a killed run resumes it. A bad file is reported on one line and
    the others still convert; the exit status is then 1.
    """
    if not root:
        raise click.UsageError("missing ROOT (or set CITYSCAPES_DATASET)")
    split_list = _choices("--split", cs_data.SPLITS, splits)
    target_list = _choices("--targets", [*cs.TARGETS, "panoptic"], targets) or ["trainIds"]
    panoptic = "panoptic" in target_list
    if panoptic_train_ids and not panoptic:
        raise click.UsageError("--panoptic-train-ids needs --targets panoptic")
    files = cs_data.polygon_files(root, gt, split_list or None)
    if not files:
        raise SegprepError(os.path.join(root, gt), "no *_polygons.json files found")
    job_list = cs.make_jobs(root, files, [t for t in target_list if t != "panoptic"], out,
                            source=source, raster=raster, overwrite=overwrite)
    outputs = [j.output(t) for j in job_list for t in j.targets]
    convert: Callable[[Any], Any] = cs.convert_frame
    jobs_run: list[Any] = list(job_list)
    if panoptic:
        from segprep.convert import panoptic as pan

        pan_jobs = pan.make_jobs(root, gt, job_list, out, panoptic_train_ids)
        jobs_run, convert = list(pan_jobs), pan.convert_frame
        outputs += [j.png for j in pan_jobs]
    prepare_output_folders(outputs, overwrite)
    summary = BatchSummary()
    sources = {"official": 0, "polygons": 0}
    outcomes = []  # panoptic: every frame's JSON entries, for the split JSONs
    # threads: decode, LUT, rasterise and encode all release the GIL (measured: no worker start-up)
    for outcome in run_batch(convert, jobs_run, jobs=jobs, desc="gen-gt",
                             quiet=quiet, unit="frame", prefer=parallel_backend,
                             scheduler=scheduler):
        skipped = outcome.ok and outcome.value.skipped
        if panoptic:
            outcomes.append(outcome)
        summary.add(outcome, skipped=skipped)
        if outcome.ok and not skipped:
            sources[outcome.value.source] += 1
    summary.extra = {"from official PNGs": sources["official"],
                     f"rasterised ({raster})": sources["polygons"]}
    info(f"targets: {', '.join(target_list)}; output: {out or 'next to each JSON'}", quiet)
    if panoptic:
        _panoptic_json(root, gt, out, panoptic_train_ids, outcomes, summary, quiet)
    finish(summary, "frames")


def _panoptic_json(root: str, gt: str, out: str | None, train_ids: bool, outcomes: list,
                   summary: BatchSummary, quiet: bool) -> None:
    """Write each split's panoptic JSON (only for splits whose frames all succeeded)."""
    from segprep.convert import panoptic as pan

    for split, (results, failed) in pan.group_by_split(outcomes).items():
        path = pan.split_json_path(root, gt, split, out, train_ids)
        if failed:
            summary.errors.append(f"{path}: not written ({failed} frame(s) of {split} failed)")
            continue
        pan.write_split_json(path, pan.split_document(results, train_ids=train_ids))
        info(f"panoptic: {path} ({len(results)} frames)", quiet)
