"""``segprep camvid …``: CamVid labels → 32-class or SegNet 11-class masks."""

from __future__ import annotations

import click

from segprep.class_maps import IGNORE_INDEX
from segprep.cli.common import (
    SizeType,
    batch_options,
    finish,
    handle_errors,
    info,
    parallel_option,
    prepare_output_folders,
    scheduler_option,
)
from segprep.convert import camvid as cv
from segprep.convert.colors import UNKNOWN_POLICIES
from segprep.io import BatchSummary, run_batch
from segprep.io.batch import Prefer


@click.group("camvid")
def command() -> None:
    """CamVid tools (32-class color labels or SegNet index masks → training masks)."""


@command.command("convert")
@click.argument("src", type=click.Path(readable=False))
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--classes", type=click.Choice(["32", "11"]), required=True,
              help="32: the index of each class in the official alphabetical order (Animal 0 … "
                   "Wall 31; Void → the void value). 11: SegNet's classes (0 Sky, 1 Building, "
                   "2 Pole, 3 Road, 4 Pavement, 5 Tree, 6 SignSymbol, 7 Fence, 8 Car, "
                   "9 Pedestrian, 10 Bicyclist).")
@click.option("--mapping", type=click.Choice(cv.MAPPINGS), default="segnet", show_default=True,
              help="32 → 11 grouping (tables in class_maps/camvid11_<mapping>.csv). segnet: "
                   "reproduces SegNet's released labels; mseg: MSeg's strict one-to-one table "
                   "(everything else void); mathworks: the grouping of MathWorks' example "
                   "(only Void is void).")
@click.option("--input", "input_", type=click.Choice(cv.INPUTS), default="color",
              show_default=True,
              help="color: original 32-class color labels (*_L.png when SRC is a folder). "
                   "index: SegNet-style index masks (0-10, 11 void; every *.png of SRC); needs "
                   "--classes 11.")
@click.option("--palette", "palette_file", type=click.Path(exists=True, dir_okay=False),
              default=None,
              help="Colors of the 32 classes: label_colors.txt ('R G B Name') or class_dict.csv "
                   "(name,r,g,b), matched by class name. Default: class_maps/camvid32.csv (the "
                   "official colors).")
@click.option("--void-id", type=int, default=IGNORE_INDEX, show_default=True,
              help="Value written for void pixels (Void, classes the mapping leaves out, and "
                   "SegNet's index 11). 11 reproduces SegNet's 11-class files; 30 the 32-class "
                   "index masks that keep Void's own index.")
@click.option("--size", type=SizeType(), default=None, metavar="WxH",
              help="Resize the masks to W×H with nearest neighbour at pixel centres (labels are "
                   "never interpolated), e.g. 480x360.")
@click.option("--unknown", type=click.Choice(UNKNOWN_POLICIES), default="error",
              show_default=True,
              help="A color not in the palette: error (the file fails, naming the color, its "
                   "pixel count and the file) or ignore (its pixels become void).")
@parallel_option
@batch_options
@scheduler_option
@handle_errors
def convert(src: str, out: str, classes: str, mapping: str, input_: str,
            palette_file: str | None, void_id: int, size: tuple[int, int] | None, unknown: str,
            parallel_backend: Prefer, jobs: int | None, overwrite: bool, quiet: bool,
        scheduler: str | None) -> None:
    """Convert CamVid labels under SRC into index masks under OUT.

    SRC is a folder (searched recursively) or a single file. Masks are written as
    OUT/<subfolder>/<frame>.png with SegNet's naming (0016E5_07959_L.png → 0016E5_07959.png),
    mirroring SRC's sub-folders. Existing outputs are skipped unless --overwrite; writes are
    atomic. A bad file is reported on one line and the others still convert (exit status 1).
    """
    n_classes = int(classes)
    if input_ == "index" and n_classes != 11:
        raise click.UsageError("--input index reads SegNet's 11-class masks: use --classes 11")
    cv.check_void_id(n_classes, void_id)
    wh = size
    if palette_file is not None:
        cv.class_map_for(n_classes, mapping, palette_file)  # fail early on a bad palette
    job_list = cv.make_jobs(src, out, classes=n_classes, mapping=mapping, input=input_,
                            void_id=void_id, size=wh, palette_file=palette_file, unknown=unknown,
                            overwrite=overwrite)
    prepare_output_folders((j.out for j in job_list), overwrite)
    summary = BatchSummary()
    for outcome in run_batch(cv.convert_file, job_list, jobs=jobs, desc="camvid convert",
                             quiet=quiet, unit="frame", prefer=parallel_backend,
                             scheduler=scheduler):
        summary.add(outcome, skipped=outcome.ok and outcome.value.skipped)
    info(f"classes: {n_classes}" + (f" ({mapping} mapping)" if n_classes == 11 else "")
         + f"; void → {void_id}" + (f"; size {wh[0]}x{wh[1]}" if wh else ""), quiet)
    finish(summary, "frames")
