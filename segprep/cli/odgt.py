"""``segprep odgt …``: create, validate, split, count and export ``.odgt`` manifests."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import click

from segprep import datasets
from segprep.cli.common import (
    EXIT_FAILED,
    error,
    finish,
    handle_errors,
    info,
    jobs_option,
    overwrite_option,
    quiet_option,
    scheduler_option,
)
from segprep.datasets import generic
from segprep.errors import SegprepError
from segprep.io import check_output_file, write_json

CLASS_MAP_HELP = "Class map name (class_maps/<NAME>.csv, e.g. cityscapes) or path to a CSV."


@click.group("odgt")
def command() -> None:
    """.odgt manifests (CSAIL semantic-segmentation-pytorch format: one JSON object per line with
    fpath_img, fpath_segm, width, height). Relative paths resolve against a root, by default the
    folder holding the .odgt file."""


def _fail_lines(lines: list[str], limit: int = 50, where: str = "") -> None:
    for msg in lines[:limit]:
        error(msg)
    if len(lines) > limit:
        error(f"{where}: … and {len(lines) - limit} more problems" if where else
              f"… and {len(lines) - limit} more")


# ------------------------------------------------------------------------------------- create
@command.command("create")
@click.argument("dataset_root", required=False, type=click.Path(file_okay=False))
@click.option("-o", "--out", required=True, type=click.Path(dir_okay=False),
              help="The .odgt file to write.")
@click.option("--images", type=click.Path(file_okay=False),
              help="Folder of images (searched recursively); use with --masks.")
@click.option("--masks", type=click.Path(file_okay=False),
              help="Folder of masks (searched recursively); paired with images by stem.")
@click.option("--dataset", type=click.Choice(["cityscapes", "bdd100k", "camvid-segnet"]),
              default=None,
              help="Official layout under the DATASET_ROOT argument instead of --images/--masks. "
                   "cityscapes: leftImg8bit/S/<city>/*_leftImg8bit.png <-> gtFine/S/<city>/"
                   "*_gtFine_labelTrainIds.png (run `segprep cityscapes gen-gt` first, or "
                   "--mask-suffix _gtFine_labelIds.png). bdd100k: images/10k/S/*.jpg <-> "
                   "labels/sem_seg/masks/S/*.png, or the 2018 seg/images/S/*.jpg <-> "
                   "seg/labels/S/*_train_id.png. camvid-segnet: the list S.txt (the authors' "
                   "absolute paths re-rooted under DATASET_ROOT), else S/*.png <-> Sannot/*.png.")
@click.option("--split", default=None, help="Split folder for --dataset (train, val, test).")
@click.option("--image-suffix", default=None,
              help="End of image file names, removed to get the stem (e.g. _leftImg8bit.png, "
                   ".jpg). Default: any image extension (with --images), the preset's (with "
                   "--dataset).")
@click.option("--mask-suffix", default=None,
              help="End of mask file names, removed to get the stem (e.g. "
                   "_gtFine_labelTrainIds.png, _train_id.png). Default: .png (with --masks), the "
                   "preset's (with --dataset).")
@click.option("--root", type=click.Path(file_okay=False), default=None,
              help="Write paths relative to this folder (CSAIL's root_dataset). Default: the "
                   "folder of --out.")
@click.option("--absolute", is_flag=True, help="Write absolute paths instead of relative ones.")
@click.option("--allow-missing", is_flag=True,
              help="Skip images without a mask and masks without an image (default: list them "
                   "and fail).")
@jobs_option
@overwrite_option
@quiet_option
@handle_errors
def create(dataset_root: str | None, out: str, images: str | None, masks: str | None,
           dataset: str | None,
           split: str | None, image_suffix: str | None, mask_suffix: str | None,
           root: str | None, absolute: bool, allow_missing: bool, jobs: int | None,
           overwrite: bool, quiet: bool) -> None:
    """Write an .odgt manifest pairing images with their masks.

    Either --images DIR --masks DIR (paired by file stem after removing --image-suffix and
    --mask-suffix) or --dataset NAME DATASET_ROOT --split S (official layouts). width/height
    come from each image's header (no decode). Lines are sorted by path, so the file is byte-identical
    across runs. Images without a mask (or masks without an image) are listed and the command
    fails (exit 1, nothing written) unless --allow-missing. Without -j, fewer than 4000 images
    are read in-process (a header read costs less than starting workers).

    \b
    Examples:
      segprep odgt create --images leftImg8bit/train --masks gtFine/train \\
          --image-suffix _leftImg8bit.png --mask-suffix _gtFine_labelTrainIds.png -o train.odgt
      segprep odgt create --dataset camvid-segnet CamVid --split train -o CamVid/train.odgt
      segprep odgt create --dataset cityscapes $CITYSCAPES_DATASET --split val -o val.odgt
    """
    from segprep import manifest as mf

    start = time.perf_counter()
    if dataset is not None:
        if images or masks:
            raise click.UsageError("give either --dataset NAME DATASET_ROOT or --images/--masks, "
                                   "not both")
        if not dataset_root:
            raise click.UsageError("--dataset needs the dataset's root folder, e.g. "
                                   "--dataset cityscapes /data/cityscapes --split train")
        if not split:
            raise click.UsageError("--dataset needs --split (e.g. train, val)")
        pairing = datasets.preset_pairing(dataset, dataset_root, split, image_suffix, mask_suffix)
    else:
        if dataset_root:
            raise click.UsageError(f"unexpected argument {dataset_root!r} (a dataset root goes "
                                   "with --dataset NAME)")
        if not (images and masks):
            raise click.UsageError("give --images DIR and --masks DIR (or --dataset NAME "
                                   "DATASET_ROOT)")
        if split:
            raise click.UsageError("--split applies to --dataset only")
        pairing = generic.pair_by_stem(images, masks, image_suffix, mask_suffix or ".png")
    if os.path.exists(out) and not overwrite:
        info(f"{out}: exists, skipped (use --overwrite to replace it)")
        return
    if pairing.unpaired:
        if not allow_missing:
            _fail_lines([f"{p}: {why}" for p, why in pairing.unpaired])
            error(f"{out}: not written: {len(pairing.unpaired)} unpaired file(s) from "
                  f"{pairing.source} (--allow-missing skips them)")
            sys.exit(EXIT_FAILED)
        info(f"skipping {len(pairing.unpaired)} unpaired file(s) (--allow-missing)", quiet)
    if not pairing.pairs:
        raise SegprepError(pairing.source, "no image/mask pairs found")
    check_output_file(out, "-o")
    root_dir = root if root is not None else mf.default_root(out)
    records, errors = mf.make_records(pairing.pairs, root_dir, absolute, jobs, quiet)
    if errors:
        _fail_lines(errors)
        error(f"{out}: not written: {len(errors)} image(s) unreadable")
        sys.exit(EXIT_FAILED)
    n = mf.write_odgt(out, records)
    click.echo(f"{out}: {n} lines, {len(pairing.unpaired)} unpaired skipped, "
               f"in {time.perf_counter() - start:.1f} s", err=True)


# ------------------------------------------------------------------------------------- validate
def _allowed(class_map: str | None, ids: str, num_classes: int | None, ignore_index: int):
    from segprep import manifest as mf

    return mf.allowed_values(num_classes, class_map, ids, ignore_index)


@command.command("validate")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--root", type=click.Path(file_okay=False), default=None,
              help="Folder that relative paths resolve against. Default: the folder of FILE.")
@click.option("--class-map", default=None, help=CLASS_MAP_HELP + " Mask values must be ids of "
              "it (see --ids) or the ignore index.")
@click.option("--ids", type=click.Choice(["train", "label"]), default="train", show_default=True,
              help="With --class-map: check masks against its trainIds (masks for training) or "
                   "its label ids (e.g. Cityscapes *_labelIds.png; no ignore index then).")
@click.option("--num-classes", type=int, default=None,
              help="Mask values must be < K or the ignore index (instead of --class-map).")
@click.option("--ignore-index", type=int, default=255, show_default=True,
              help="Value of unlabelled pixels (with trainIds).")
@click.option("--json", "json_out", type=click.Path(dir_okay=False), default=None,
              help="Also write the report as JSON (file, lines, ok_lines, problems[line, "
                   "message]).")
@jobs_option
@quiet_option
@handle_errors
def validate(file: str, root: str | None, class_map: str | None, ids: str,
             num_classes: int | None, ignore_index: int, json_out: str | None,
             jobs: int | None, quiet: bool) -> None:
    """Check an .odgt manifest and every file it lists.

    Each line must parse as a JSON object with fpath_img, fpath_segm, width, height; the image
    and the mask must exist and their sizes equal the recorded ones; the mask must be a
    single-channel 8-bit PNG (mode L, or P whose palette indices are the values); with
    --class-map or --num-classes, every mask value must be a valid id or the ignore index (the
    masks are decoded). Without either, values are not checked. Every problem is printed as
    `segprep: error: FILE:LINE: what`; exit status 1 if there is any. Without -j, manifests of
    under 150 Mpx of masks are checked in-process (starting workers would cost more).
    """
    from segprep import manifest as mf

    start = time.perf_counter()
    allowed = _allowed(class_map, ids, num_classes, ignore_index)
    if json_out:
        check_output_file(json_out, "--json")
    report = mf.validate(file, root, allowed, jobs, quiet)
    for p in report.problems:
        error(f"{file}:{p.line}: {p.message}")
    what = "values checked" if allowed is not None else \
        "values not checked (give --class-map or --num-classes)"
    click.echo(f"{file}: {report.lines} lines, {report.ok_lines} ok, "
               f"{report.lines - report.ok_lines} with problems ({len(report.problems)} "
               f"problems); {what}; in {time.perf_counter() - start:.1f} s", err=True)
    if json_out:
        write_json(json_out, report.to_dict())
    if report.problems:
        sys.exit(EXIT_FAILED)


# ------------------------------------------------------------------------------------- split
@command.command("split")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("-o", "--out", "prefix", required=True,
              help="Output prefix: writes PREFIX_train.odgt, PREFIX_val.odgt, PREFIX_test.odgt "
                   "(a split whose fraction is 0 is not written).")
@click.option("--val", type=float, default=0.1, show_default=True,
              help="Fraction of images for validation.")
@click.option("--test", type=float, default=0.1, show_default=True,
              help="Fraction of images for test.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Random seed; the same seed and manifest give the same files.")
@click.option("--group-by", default=None, metavar="REGEX",
              help="Keep groups whole: the regex is searched in each fpath_img and its first "
                   "capture group (else the whole match) names the group. Cityscapes city: "
                   "'leftImg8bit/[^/]+/([^/]+)/'; CamVid sequence (0001TP, 0006R0, 0016E5, "
                   "Seq05VD): '([0-9A-Za-z]+)_f?[0-9]+\\.png$'; BDD100K video: "
                   "'([0-9a-f]{8})-[0-9a-f]{8}'. Every path must match.")
@click.option("--stratify", is_flag=True,
              help="Balance, across splits, the share of images containing each class "
                   "(iterative stratification). Needs --num-classes (masks are counted) or "
                   "--stats.")
@click.option("--num-classes", type=int, default=None,
              help="With --stratify: number of classes K (values < K or the ignore index).")
@click.option("--ignore-index", type=int, default=255, show_default=True,
              help="With --stratify --num-classes: value of unlabelled pixels.")
@click.option("--stats", "stats_file", type=click.Path(dir_okay=False), default=None,
              help="With --stratify: reuse the per-image classes of a `segprep odgt stats` JSON "
                   "of the same manifest instead of reading the masks.")
@click.option("--root", type=click.Path(file_okay=False), default=None,
              help="Folder that FILE's relative paths resolve against. Default: FILE's folder; "
                   "then the outputs' paths are rewritten relative to their own folder. With "
                   "--root, paths are copied as they are.")
@click.option("--allow-empty", is_flag=True,
              help="Write a requested split (fraction > 0) even when it comes out empty (its "
                   "groups are all too large for it); without it that is an error.")
@click.option("--overwrite", is_flag=True,
              help="Replace outputs of PREFIX that differ from this split, and remove a "
                   "PREFIX_val/_test.odgt that this split no longer has (default: refuse; "
                   "outputs identical to this split are left as they are).")
@jobs_option
@quiet_option
@handle_errors
def split(file: str, prefix: str, val: float, test: float, seed: int, group_by: str | None,
          stratify: bool, num_classes: int | None, ignore_index: int, stats_file: str | None,
          root: str | None, allow_empty: bool, overwrite: bool, jobs: int | None,
          quiet: bool) -> None:
    """Split an .odgt manifest into PREFIX_train/_val/_test.odgt.

    Sizes: val*N and test*N images requested, train the rest. With --group-by, the assignment of
    whole groups nearest the requested sizes: exact search up to 20 groups, a heuristic above;
    "nearest" first minimises the number of requested splits missed by at least their own size
    (an empty split is one), then the sum over splits of |achieved - requested| / requested. The
    achieved fractions are printed. A requested split that still comes out empty is an error
    unless --allow-empty. Deterministic: the same manifest (any line order) and --seed give
    byte-identical files (the seed breaks ties). An existing output identical to this split is
    kept; one that differs is an error unless --overwrite.
    """
    from segprep import manifest as mf
    from segprep import splits as sp

    records = mf.read_odgt(file)
    in_root = Path(root) if root is not None else mf.default_root(file)
    image_classes = None
    k = num_classes
    if stratify:
        if stats_file:
            from segprep.stats import load_stats

            d = load_stats(stats_file)
            image_classes = d.get("image_classes")
            if not isinstance(image_classes, dict):
                raise SegprepError(stats_file, "no image_classes (written by an older segprep?)")
            k = k or int(d["num_classes"])
        elif num_classes:
            from segprep.stats import count_records

            counts, errors = count_records(records, in_root, num_classes, ignore_index, jobs,
                                           quiet)
            if errors:
                _fail_lines(errors)
                error(f"{file}: {len(errors)} mask(s) unreadable or out of range; nothing "
                      "written")
                sys.exit(EXIT_FAILED)
            image_classes = {key: [int(c) for c in (v[:num_classes] > 0).nonzero()[0]]
                             for key, v in counts.items()}
        else:
            raise click.UsageError("--stratify needs --num-classes K or --stats FILE")
    elif stats_file or num_classes:
        raise click.UsageError("--stats and --num-classes apply to --stratify only")
    result = sp.split_records(records, val, test, seed, group_by, image_classes, k)
    n_total = len(records)
    n_groups = sum(len(g) for g in result.groups.values())
    empty = result.empty_requested()
    if empty and not allow_empty:
        smallest = min(len(v) for v in sp.group_records(
            records, sp.compile_group_by(group_by) if group_by else None).values())
        what = ", ".join(f"{s} ({result.wanted[s]:.1f} of {n_total} images requested)"
                         for s in empty)
        how = ("the nearest assignment" if result.method == "exact" else
               f"the {result.method.split(' (')[0]} assignment")
        raise SegprepError(file, f"{how} of the {n_groups} groups leaves {what} empty (smallest "
                                 f"group {smallest} images); pass --allow-empty to write it "
                                 "empty, or change --val/--test/--group-by")
    # every output decided before anything is written: identical -> keep, different -> refuse
    plan: list[tuple[str, str, list]] = []  # (split, path, records)
    conflicts: list[str] = []
    stale: list[str] = []
    kept: set[str] = set()
    for s in sp.SPLITS:
        path = f"{prefix}_{s}.odgt"
        if result.wanted[s] <= 0:
            if os.path.lexists(path):
                stale.append(path)
                if not overwrite:
                    conflicts.append(f"{path}: exists, but this split has no {s} (--{s} 0)")
            continue
        recs = result.records[s]
        if root is None:
            out_root = mf.default_root(path)
            recs = [mf.rebase(r, in_root, out_root) for r in recs]
        recs = sorted(recs, key=mf.Record.sort_key)
        if os.path.lexists(path):
            try:
                same = Path(path).read_bytes() == mf.format_odgt(recs).encode("utf-8")
            except OSError as exc:
                raise SegprepError(path, f"exists and cannot be read ({exc.strerror})") from None
            if same:
                kept.add(path)
            elif not overwrite:
                conflicts.append(f"{path}: exists and differs from this split "
                                 f"({len(recs)} images)")
        plan.append((s, path, recs))
    if conflicts:
        more = f" (and {len(conflicts) - 1} more)" if len(conflicts) > 1 else ""
        raise SegprepError(None, f"{conflicts[0]}{more}; pass --overwrite to replace the "
                                 "outputs of this prefix, or choose another -o")
    for _s, path, _recs in plan:  # every output checked before the first is written
        if path not in kept:
            check_output_file(path, "-o")
    groups_txt = f"{n_groups} groups" if group_by else "one group per image"
    info(f"{file}: {n_total} images, {groups_txt}, {result.method} assignment; distance "
         f"{result.distance[1]:.4f} (sum of |achieved - requested| / requested)")
    for s, path, recs in plan:
        ng = len(result.groups[s])
        groups = f", {ng} group{'' if ng == 1 else 's'}" if group_by else ""
        share = (f"{len(recs)} images = {100 * len(recs) / n_total:.1f} % (requested "
                 f"{100 * result.wanted[s] / n_total:.1f} %){groups}")
        if path in kept:
            click.echo(f"{path}: exists, identical to this split, kept: {share}", err=True)
            continue
        try:
            mf.write_odgt(path, recs)
        except OSError as exc:
            why = f"{exc.strerror}: {exc.filename}" if exc.filename else str(exc)
            raise SegprepError(path, f"cannot write ({why})") from None
        click.echo(f"{path}: {share}", err=True)
    for path in stale:
        try:
            os.remove(path)
        except OSError as exc:
            raise SegprepError(path, f"cannot remove ({exc.strerror or exc})") from None
        click.echo(f"{path}: removed (--overwrite; this split has no such part)", err=True)


# ------------------------------------------------------------------------------------- stats
def _print_table(st, file=None) -> None:
    names = st.class_names or [str(c) for c in range(st.num_classes)]
    mfw, ilw = st.weights("median_frequency"), st.weights("inverse_log")
    w = max(5, max(len(n) for n in names))
    click.echo(f"{'id':>3} {'class':<{w}} {'pixels':>14} {'images':>7} {'freq':>9} "
               f"{'w_medfreq':>10} {'w_invlog':>9}", file=file)
    for c in range(st.num_classes):
        click.echo(f"{c:>3} {names[c]:<{w}} {int(st.pixel_count[c]):>14,} "
                   f"{int(st.image_count[c]):>7} {st.frequency[c]:>9.5f} {mfw[c]:>10.4f} "
                   f"{ilw[c]:>9.4f}", file=file)


@command.command("stats")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--num-classes", type=int, default=None,
              help="Number of classes K: mask values are trainIds 0..K-1 or the ignore index "
                   "(default: the class map's number of train classes).")
@click.option("--ignore-index", type=int, default=255, show_default=True,
              help="Value of unlabelled pixels, excluded from every count but "
                   "num_ignored_pixels (SegNet CamVid: 11).")
@click.option("--class-map", default=None, help=CLASS_MAP_HELP + " Adds class_names.")
@click.option("-o", "--out", type=click.Path(dir_okay=False), default=None,
              help="Write the statistics as JSON (the trainer reads its class_weights) and a "
                   "bar chart next to it (same name, .png).")
@click.option("--plot", type=click.Path(dir_okay=False), default=None,
              help="Bar chart PNG path (default: next to --out; none without --out).")
@click.option("--no-plot", is_flag=True, help="Do not draw the bar chart.")
@click.option("--root", type=click.Path(file_okay=False), default=None,
              help="Folder that relative paths resolve against. Default: the folder of FILE.")
@jobs_option
@overwrite_option
@quiet_option
@scheduler_option
@handle_errors
def stats(file: str, num_classes: int | None, ignore_index: int, class_map: str | None,
          out: str | None, plot: str | None, no_plot: bool, root: str | None,
          jobs: int | None, overwrite: bool, quiet: bool, scheduler: str | None) -> None:
    """Per-class pixel and image counts, frequencies and class weights of FILE's masks.

    Weights: median-frequency balancing (SegNet; freq(c) = pixels of c / labelled pixels of the
    images containing c, w = median(freq)/freq(c)) and ENet's inverse log (w = 1/ln(1.02 + p(c)),
    p(c) = share of labelled pixels). Classes absent from every mask get weight 0. Masks are
    counted in parallel; a mask with values other than 0..K-1 and the ignore index is an error
    (exit 1, nothing written). The table goes to stdout. Without -j, manifests of under
    150 Mpx of masks are counted in-process (starting workers would cost more).
    """
    from segprep import manifest as mf
    from segprep import stats as st_mod

    start = time.perf_counter()
    names = None
    if class_map:
        from segprep import class_maps

        cm = class_maps.load(class_map)
        names = list(cm.train_names)
        if num_classes is None:
            num_classes = cm.num_classes
        elif num_classes != cm.num_classes:
            raise click.UsageError(f"--num-classes {num_classes} but class map {cm.name} has "
                                   f"{cm.num_classes} train classes")
    if num_classes is None:
        raise click.UsageError("give --num-classes K (or --class-map)")
    plot_path = None if no_plot else (plot or (str(Path(out).with_suffix(".png")) if out else None))
    # an existing output is never replaced without --overwrite (a missing chart alone is drawn)
    kept = [p for p in (out, plot_path) if p and os.path.exists(p) and not overwrite]
    write_out = bool(out) and out not in kept
    write_plot = bool(plot_path) and plot_path not in kept
    if kept and not (write_out or write_plot):
        info(f"{', '.join(kept)}: exists, skipped (use --overwrite to replace it)")
        return
    for p, opt in ((out if write_out else None, "-o"), (plot_path if write_plot else None,
                                                        "--plot")):
        if p:
            check_output_file(p, opt)
    records = mf.read_odgt(file)
    dups = mf.duplicate_lines(records)
    if dups:  # the rule of `odgt validate`: an image listed twice is an error, not counted once
        _fail_lines([f"{file}:{line}: duplicate image {img} (first on line {first})"
                     for line, first, img in dups])
        error(f"{file}: {len(dups)} duplicate line(s); nothing written")
        sys.exit(EXIT_FAILED)
    root_dir = Path(root) if root is not None else mf.default_root(file)
    result, errors = st_mod.compute_stats(records, root_dir, num_classes, ignore_index, names,
                                          jobs, quiet, odgt=file, scheduler=scheduler)
    if errors:
        _fail_lines(errors)
        error(f"{file}: {len(errors)} of {len(records)} mask(s) failed; nothing written")
        sys.exit(EXIT_FAILED)
    _print_table(result)
    if write_out and out:
        write_json(out, result.to_dict())
    if write_plot and plot_path:
        st_mod.plot_stats(result, plot_path)
    for p in kept:
        info(f"{p}: exists, kept (use --overwrite to replace it)")
    written = [p for p, w in ((out, write_out), (plot_path, write_plot)) if w and p]
    cluster = sys.modules.get("segprep.io.cluster")  # imported only with --scheduler
    workers = cluster.workers_used() if cluster is not None else None
    click.echo(f"{file}: {result.num_images} masks, {result.num_labelled_pixels:,} labelled px, "
               f"{result.num_ignored_pixels:,} ignored; "
               f"{'wrote ' + ', '.join(written) if written else 'no file written'}"
               f"{f', {workers} Dask workers' if workers is not None else ''}"
               f" in {time.perf_counter() - start:.1f} s", err=True)


# ------------------------------------------------------------------------------------- export
@command.command("export-csail")
@click.argument("file", type=click.Path(dir_okay=False))
@click.argument("outdir", type=click.Path(file_okay=False))
@click.option("--ignore-index", type=int, default=255, show_default=True,
              help="Value of unlabelled pixels in FILE's masks; it becomes 0.")
@click.option("--num-classes", type=int, default=None,
              help="If given, mask values must be < K or the ignore index.")
@click.option("--root", type=click.Path(file_okay=False), default=None,
              help="Folder that FILE's relative paths resolve against. Default: FILE's folder.")
@jobs_option
@overwrite_option
@quiet_option
@handle_errors
def export_csail(file: str, outdir: str, ignore_index: int, num_classes: int | None,
                 root: str | None, jobs: int | None, overwrite: bool, quiet: bool) -> None:
    """Write 1-based masks and a matching .odgt for CSAIL's semantic-segmentation-pytorch.

    CSAIL's loader subtracts 1 from every mask value (0 becomes -1, its ignore label), so each
    mask is written as value+1 with the ignore index mapped to 0, as 8-bit gray (mode L) PNG, to
    OUTDIR/<fpath_segm> (or, when mask paths are absolute or climb with '..', to OUTDIR/<path
    under the masks' common folder>), with the suffix .png whatever the source format.
    OUTDIR/<FILE's name> lists them, with paths relative to OUTDIR: train with
    root_dataset=OUTDIR. Existing masks are skipped unless --overwrite.
    Without -j, manifests of under 150 Mpx of masks are exported in-process.
    """
    from segprep import manifest as mf
    from segprep.io import (
        BatchSummary,
        ensure_output_dir,
        ensure_output_dirs,
        remove_stale_temps,
        run_batch,
    )

    records = mf.read_odgt(file)
    root_dir = Path(root) if root is not None else mf.default_root(file)
    jobs_list, out_records = mf.export_csail_jobs(records, root_dir, outdir, ignore_index,
                                                  num_classes, overwrite)
    ensure_output_dir(outdir)  # an unwritable OUTDIR is one error line, not one per mask
    folders = ensure_output_dirs(j[1] for j in jobs_list)
    remove_stale_temps([outdir, *folders], recursive=False)
    summary = BatchSummary()
    n_jobs = mf.decode_jobs(jobs, records, len(jobs_list))
    for outcome in run_batch(mf.export_csail_job, jobs_list, jobs=n_jobs, desc="export-csail",
                             quiet=quiet, unit="mask", prefer="processes"):
        summary.add(outcome, skipped=bool(outcome.ok and outcome.value))
    odgt_out = Path(outdir) / Path(file).name
    if summary.failed:
        info(f"{odgt_out}: not written, since some masks failed")
    else:
        mf.write_odgt(odgt_out, out_records)
        info(f"{odgt_out}: {len(out_records)} lines (train with root_dataset={outdir})", quiet)
    finish(summary, "masks")
