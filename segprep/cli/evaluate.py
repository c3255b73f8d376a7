"""``segprep evaluate …``: score predictions as the benchmark servers do."""

from __future__ import annotations

import sys

import click

from segprep.cli.common import (
    EXIT_FAILED,
    error,
    handle_errors,
    info,
    jobs_option,
    quiet_option,
    scheduler_option,
)
from segprep.errors import SegprepError


@click.group("evaluate")
def command() -> None:
    """Evaluate predictions: Cityscapes (cityscapesScripts protocol, iIoU included), BDD100K
    (bdd100k toolkit) or any .odgt manifest.

    Ground truth is cached as compact code maps (default under ~/.cache/segprep/eval-gt, keyed by
    each file's path, mtime and size), so later evaluations against the same ground truth decode
    only the predictions. A bad prediction file is reported on one line (file, value, pixel
    count); then no scores are printed and the exit status is 1.
    """


def cache_options(f):
    f = click.option("--no-cache", is_flag=True,
                     help="Do not read or write the ground-truth cache.")(f)
    f = click.option("--cache", "cache_dir", type=click.Path(file_okay=False), default=None,
                     help="Ground-truth cache folder [default: $XDG_CACHE_HOME/segprep/eval-gt "
                          "or ~/.cache/segprep/eval-gt].")(f)
    return f


def output_options(f):
    f = click.option("--plot", type=click.Path(dir_okay=False), default=None,
                     help="Write the row-normalised confusion matrix of the evaluated classes "
                          "as a PNG here.")(f)
    f = click.option("--json", "json_out", type=click.Path(dir_okay=False), default=None,
                     help="Write the results as JSON here (Cityscapes: cityscapesScripts' keys "
                          "and layout; BDD100K: the toolkit's keys).")(f)
    return f


def _cache_arg(cache_dir: str | None, no_cache: bool):
    if no_cache:
        return False
    return cache_dir if cache_dir else True


def _check_outputs(json_out: str | None, plot: str | None) -> None:
    """Refuse an unwritable --json/--plot before the evaluation runs (one error line)."""
    from segprep.io import check_output_file

    for path, opt in ((json_out, "--json"), (plot, "--plot")):
        if path:
            check_output_file(path, opt)


def _finish(report, json_out: str | None, plot: str | None, quiet: bool) -> None:
    from segprep.cli.eval_report import (
        category_table,
        class_table,
        format_table,
        json_text,
        plot_confusion,
        summary_line,
    )
    from segprep.io import atomic_write_text

    cluster = sys.modules.get("segprep.io.cluster")  # imported only when --scheduler was given
    workers = cluster.workers_used() if cluster is not None else None
    if workers is not None:
        report.notes.append(f"evaluated on {workers} Dask worker(s); the ground-truth cache is "
                            "each worker's, its hits and misses are not counted here")
    for n in report.notes:
        info(f"segprep: note: {n}")
    for w in report.warnings:
        info(f"segprep: warning: {w}")
    cache = getattr(report, "cache", None) or {}
    if cache.get("write_errors"):
        info(f"segprep: warning: {cache.get('folder')}: ground-truth cache cannot be written "
             f"({cache['write_errors']} frame(s) not cached); scores are unaffected")
    if report.errors:
        for e in report.errors:
            error(e)
        click.echo(f"{report.protocol}: {len(report.errors)} of {report.frames} frames failed; "
                   "no scores (fix or remove the files listed above)", err=True)
        sys.exit(EXIT_FAILED)
    click.echo(format_table(class_table(report)))
    if report.protocol == "cityscapes":
        click.echo()
        click.echo(format_table(category_table(report)))
    click.echo(summary_line(report))
    if json_out:
        atomic_write_text(json_out, json_text(report))
        info(f"results written to {json_out}", quiet)
    if plot:
        plot_confusion(report, plot)
        info(f"confusion matrix written to {plot}", quiet)


@command.command("cityscapes")
@click.option("--pred", "pred_dir", required=True, type=click.Path(file_okay=False),
              help="Folder of predictions, searched recursively: one <city>_<seq>_<frame>*.png "
                   "per ground-truth frame (e.g. <frame>_leftImg8bit.png).")
@click.option("--gt", "gt_root", required=True, type=click.Path(file_okay=False),
              envvar="CITYSCAPES_DATASET", show_envvar=True,
              help="Cityscapes root holding gtFine/<split>/<city>/*_gtFine_labelIds.png and "
                   "*_gtFine_instanceIds.png.")
@click.option("--split", default="val", show_default=True, help="Split folder under gtFine/.")
@click.option("--pred-ids", type=click.Choice(["auto", "labelIds", "trainIds"]), default="auto",
              show_default=True,
              help="What prediction pixels hold: labelIds 0-33 (the official format) or trainIds "
                   "0-18/255 (mapped to labelIds first; 255 -> 0 unlabeled). auto decides from "
                   "the values of all predictions, says what it decided, and refuses when the "
                   "files disagree or the evidence is unclear.")
@output_options
@cache_options
@jobs_option
@quiet_option
@scheduler_option
@handle_errors
def cityscapes(pred_dir: str, gt_root: str, split: str, pred_ids: str, json_out: str | None,
               plot: str | None, cache_dir: str | None, no_cache: bool, jobs: int | None,
               quiet: bool, scheduler: str | None) -> None:
    """Cityscapes pixel-level semantic labeling, as cityscapesScripts'
    evalPixelLevelSemanticLabeling: class IoU and iIoU, category IoU and iIoU (same numbers, same
    JSON keys)."""
    from segprep.evaluation import evaluate_cityscapes

    _check_outputs(json_out, plot)
    report = evaluate_cityscapes(pred_dir, gt_root, split, pred_ids=pred_ids, jobs=jobs,
                                 cache=_cache_arg(cache_dir, no_cache), quiet=quiet,
                                 scheduler=scheduler)
    _finish(report, json_out, plot, quiet)


@command.command("bdd100k")
@click.option("--pred", "pred_dir", required=True, type=click.Path(file_okay=False),
              help="Folder of trainId predictions <stem>.png (searched recursively).")
@click.option("--gt", "gt_dir", required=True, type=click.Path(file_okay=False),
              help="Folder of ground-truth trainId masks (0-18, 255 ignore): <stem>.png or "
                   "<stem>_train_id.png.")
@click.option("--missing", type=click.Choice(["miss", "error"]), default="miss",
              show_default=True,
              help="A ground-truth frame without prediction: count its pixels as misses (as the "
                   "bdd100k toolkit) or stop with an error.")
@output_options
@cache_options
@jobs_option
@quiet_option
@scheduler_option
@handle_errors
def bdd100k(pred_dir: str, gt_dir: str, missing: str, json_out: str | None, plot: str | None,
            cache_dir: str | None, no_cache: bool, jobs: int | None, quiet: bool,
            scheduler: str | None) -> None:
    """BDD100K semantic segmentation, as the bdd100k toolkit's eval.seg: 19 classes, ignore 255,
    a prediction >= 19 is a miss, mIoU over the classes present in the ground truth (Acc is
    per-class precision, as the toolkit computes it)."""
    from segprep.evaluation import evaluate_bdd100k

    _check_outputs(json_out, plot)
    report = evaluate_bdd100k(pred_dir, gt_dir, jobs=jobs, cache=_cache_arg(cache_dir, no_cache),
                              quiet=quiet, missing=missing, scheduler=scheduler)
    _finish(report, json_out, plot, quiet)


@command.command("odgt")
@click.argument("odgt_file", type=click.Path(dir_okay=False))
@click.option("--pred", "pred_dir", required=True, type=click.Path(file_okay=False),
              help="Folder of predictions named <image stem>.png (searched recursively).")
@click.option("--num-classes", "-k", type=int, required=True, help="Number of classes K.")
@click.option("--ignore-index", type=int, default=255, show_default=True,
              help="Ground-truth value that is not counted.")
@click.option("--root", type=click.Path(file_okay=False), default=None,
              help="Root of the manifest's relative paths [default: the manifest's folder].")
@click.option("--class-map", default=None,
              help="Label table (name or CSV) whose train classes name the K classes.")
@click.option("--missing", type=click.Choice(["error", "miss"]), default="error",
              show_default=True,
              help="A record without prediction: stop with an error, or count its pixels as "
                   "misses.")
@output_options
@cache_options
@jobs_option
@quiet_option
@scheduler_option
@handle_errors
def odgt(odgt_file: str, pred_dir: str, num_classes: int, ignore_index: int, root: str | None,
         class_map: str | None, missing: str, json_out: str | None, plot: str | None,
         cache_dir: str | None, no_cache: bool, jobs: int | None, quiet: bool,
         scheduler: str | None) -> None:
    """Any dataset listed in an .odgt manifest: the masks (fpath_segm) against predictions named
    after each image. Predictions outside [0, K) are misses. mIoU averages the classes with a
    defined IoU (NaN classes skipped, as Cityscapes)."""
    from segprep.evaluation import evaluate_odgt

    if num_classes < 1:
        raise SegprepError("--num-classes", "must be at least 1")
    _check_outputs(json_out, plot)
    report = evaluate_odgt(odgt_file, pred_dir, num_classes, root=root, ignore_index=ignore_index,
                           class_map=class_map, jobs=jobs, cache=_cache_arg(cache_dir, no_cache),
                           quiet=quiet, missing=missing, scheduler=scheduler)
    _finish(report, json_out, plot, quiet)


@command.command("cityscapes-panoptic")
@click.option("--gt-json", required=True, type=click.Path(dir_okay=False),
              help="Ground-truth COCO panoptic JSON, e.g. gtFine/cityscapes_panoptic_val.json "
                   "(segprep cityscapes gen-gt --targets panoptic).")
@click.option("--gt-folder", required=True, type=click.Path(file_okay=False),
              help="Folder of the ground-truth PNGs, e.g. gtFine/cityscapes_panoptic_val/.")
@click.option("--pred-json", required=True, type=click.Path(dir_okay=False),
              help="Prediction COCO panoptic JSON (annotations matched by image_id).")
@click.option("--pred-folder", required=True, type=click.Path(file_okay=False),
              help="Folder of the prediction PNGs (RGB, segment id = R + 256 G + 256^2 B).")
@click.option("--json", "json_out", type=click.Path(dir_okay=False), default=None,
              help="Write the results as JSON here (cityscapesScripts' keys: All, Things, "
                   "Stuff, per_class).")
@jobs_option
@quiet_option
@scheduler_option
@handle_errors
def cityscapes_panoptic(gt_json: str, gt_folder: str, pred_json: str, pred_folder: str,
                        json_out: str | None, jobs: int | None, quiet: bool,
                        scheduler: str | None) -> None:
    """Cityscapes panoptic segmentation, as cityscapesScripts' evalPanopticSemanticLabeling:
    PQ, SQ, RQ per class and for All / Things / Stuff (same numbers, same JSON keys)."""
    from segprep.cli.eval_report import (
        format_table,
        panoptic_class_table,
        panoptic_json_text,
        panoptic_summary_table,
    )
    from segprep.evaluation import panoptic
    from segprep.io import atomic_write_text

    _check_outputs(json_out, None)
    report = panoptic.evaluate_panoptic(gt_json, gt_folder, pred_json, pred_folder, jobs=jobs,
                                        quiet=quiet, scheduler=scheduler)
    for w in report.warnings:
        info(f"segprep: warning: {w}")
    if report.errors:
        for e in report.errors:
            error(e)
        click.echo(f"cityscapes-panoptic: {len(report.errors)} problem(s); no scores (fix the "
                   "files listed above)", err=True)
        sys.exit(EXIT_FAILED)
    click.echo(format_table(panoptic_class_table(report)))
    click.echo()
    click.echo(format_table(panoptic_summary_table(report)))
    r = report.results or {}
    cluster = sys.modules.get("segprep.io.cluster")  # imported only when --scheduler was given
    workers = cluster.workers_used() if cluster is not None else None
    on = f" on {workers} Dask worker(s)" if workers is not None else ""
    click.echo(f"cityscapes-panoptic: PQ {100 * r['All']['pq']:.2f}, SQ {100 * r['All']['sq']:.2f}"
               f", RQ {100 * r['All']['rq']:.2f} (%) — {report.frames} frames in "
               f"{report.seconds:.2f} s{on}")
    if json_out:
        atomic_write_text(json_out, panoptic_json_text(report))
        info(f"results written to {json_out}", quiet)
