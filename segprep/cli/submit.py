"""``segprep submit …``: validate predictions and zip them for a benchmark server."""

from __future__ import annotations

import sys

import click

from segprep.cli.common import (
    EXIT_FAILED,
    SizeType,
    error,
    handle_errors,
    info,
    jobs_option,
    quiet_option,
)
from segprep.io import check_output_file


@click.group("submit")
def command() -> None:
    """Validate predictions and package them for a benchmark server (Cityscapes, BDD100K).

    Every violation is listed, one line each; the zip is written only when there is none (and
    atomically), so what you upload is accepted the first time.
    """


def _finish(report, out: str | None, quiet: bool) -> None:
    for note in report.notes:
        info(f"segprep: note: {note}")
    for v in report.violations:
        error(v)
    head = (f"{report.found} of {report.expected} expected predictions matched, "
            f"{len(report.violations)} violation(s), {report.seconds:.1f} s")
    if report.violations:
        click.echo(f"submission refused: {head}; {out or 'no zip'} not written", err=True)
        sys.exit(EXIT_FAILED)
    if report.written:
        click.echo(f"submission ok: {head}; wrote {report.written}", err=True)
    else:
        click.echo(f"submission ok: {head} (--check: no zip written)", err=True)


def _out_option(f):
    f = click.option("--check", "check_only", is_flag=True,
                     help="Only validate; write no zip.")(f)
    return click.option("-o", "--out", type=click.Path(dir_okay=False), default=None,
                        help="The zip to write (required unless --check).")(f)


@command.command("cityscapes")
@click.argument("pred_dir", type=click.Path(file_okay=False))
@click.option("--root", required=True, type=click.Path(file_okay=False),
              envvar="CITYSCAPES_DATASET", show_envvar=True,
              help="Cityscapes root; the images of the split are listed from "
                   "leftImg8bit/<split>, or from gtFine/<split> where the images are absent.")
@click.option("--split", default="test", show_default=True,
              help="Split to submit (test has 1525 images).")
@click.option("--pred-ids", type=click.Choice(["auto", "labelIds", "trainIds"]), default="auto",
              show_default=True,
              help="What prediction pixels hold; trainIds (0-18, 255) are converted to labelIds "
                   "in the zip (255 -> 0 unlabeled), never in PRED_DIR. auto decides from the "
                   "values of all predictions (trainIds read as labelIds would put most pixels "
                   "on void classes), says what it decided, and refuses when the files disagree "
                   "or the evidence is unclear.")
@click.option("--size", type=SizeType(), default="2048x1024", show_default=True,
              help="Expected prediction size WxH.")
@click.option("--allow-palette", is_flag=True,
              help="Accept palette PNGs and submit their indices (default: refuse them, since "
                   "the server reads indices, not the colors they show).")
@_out_option
@jobs_option
@quiet_option
@handle_errors
def cityscapes(pred_dir: str, root: str, split: str, pred_ids: str, size: tuple[int, int],
               allow_palette: bool, out: str | None, check_only: bool, jobs: int | None,
               quiet: bool) -> None:
    """Check Cityscapes predictions in PRED_DIR and zip them for the evaluation server.

    Checks: exactly one <city>_<seq>_<frame>*.png per image of the split (no missing, duplicate
    or extra files), size, single-channel 8-bit PNG, values within the valid labelIds (0-33).
    """
    from segprep.submit import submit_cityscapes

    if not out and not check_only:
        raise click.UsageError("give -o/--out submission.zip (or --check to only validate)")
    if out and not check_only:
        check_output_file(out, "-o")
    report = submit_cityscapes(pred_dir, root, None if check_only else out, split=split,
                               pred_ids=pred_ids, size=size,
                               allow_palette=allow_palette, jobs=jobs, quiet=quiet)
    _finish(report, out, quiet)


@command.command("bdd100k")
@click.argument("pred_dir", type=click.Path(file_okay=False))
@click.option("--images", required=True, type=click.Path(file_okay=False),
              help="Folder of the test images (.jpg); one <image stem>.png prediction each.")
@click.option("--size", type=SizeType(), default="1280x720", show_default=True,
              help="Expected prediction size WxH.")
@click.option("--allow-palette", is_flag=True,
              help="Accept palette PNGs and submit their indices (default: refuse them).")
@_out_option
@jobs_option
@quiet_option
@handle_errors
def bdd100k(pred_dir: str, images: str, size: tuple[int, int], allow_palette: bool,
            out: str | None,
            check_only: bool, jobs: int | None, quiet: bool) -> None:
    """Check BDD100K trainId predictions in PRED_DIR (one <image stem>.png per test image,
    single-channel 8-bit, values 0-18 or 255) and zip them."""
    from segprep.submit import submit_bdd100k

    if not out and not check_only:
        raise click.UsageError("give -o/--out submission.zip (or --check to only validate)")
    if out and not check_only:
        check_output_file(out, "-o")
    report = submit_bdd100k(pred_dir, images, None if check_only else out, size=size,
                            allow_palette=allow_palette, jobs=jobs, quiet=quiet)
    _finish(report, out, quiet)
