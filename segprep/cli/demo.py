"""``segprep demo``: generate a synthetic Cityscapes-format dataset and run the whole pipeline on
it (see :mod:`segprep.cli.demo_pipeline`)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from segprep.cli.common import SizeType, error, jobs_option


@click.command("demo", context_settings={"max_content_width": 100})
@click.option("-o", "--out", type=click.Path(file_okay=False), default="segprep-demo",
              show_default=True,
              help="Output folder: the dataset, manifests, run, predictions, evaluation, "
                   "submission, logs/, commands.sh and summary.json. It must be empty, new, or a "
                   "previous demo's output (which is then reused).")
@click.option("--frames", type=click.IntRange(min=10), default=40, show_default=True,
              help="Synthetic frames in all: 60 % train (of which 20 % are held out for model "
                   "selection by `odgt split`), 20 % val (evaluated), 20 % test (submitted).")
@click.option("--epochs", type=click.IntRange(min=1), default=None,
              help="Training epochs (still capped by --train-minutes). Default: as many as fit "
                   "in --train-minutes, with the learning-rate schedule fitted to that budget.")
@click.option("--train-minutes", type=click.FloatRange(min=0.05), default=1.5,
              show_default=True,
              help="Wall-time budget of the training stage (the trainer's --time-budget).")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed of the synthetic dataset, the split and the training.")
@click.option("--size", "image_size", type=SizeType(), default="512x256", show_default=True, metavar="WxH",
              help="Synthetic image size (the 35 Cityscapes labels at a small size; "
                   "the submission is checked at this size).")
@click.option("--crop", "crop", type=SizeType("HxW"), default="128x256", show_default=True, metavar="HxW",
              help="Random training crop, height x width (as `segprep train --crop`); frames "
                   "keep their size, and predict runs on whole frames.")
@click.option("--base-channels", type=click.IntRange(min=4), default=16, show_default=True,
              help="U-Net width of the first level.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto",
              show_default=True, help="Training and prediction device.")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="torch CPU threads for training. Default: the cores not busy with other "
                   "processes (from the load average; on a shared machine, threads that wait "
                   "for a busy core slow training down many times).")
@click.option("-v", "--verbose", is_flag=True,
              help="Also show every command's own output (it is always in OUT/logs/).")
@jobs_option
def command(out: str, frames: int, epochs: int | None, train_minutes: float, seed: int,
            image_size: tuple[int, int], crop: tuple[int, int], base_channels: int, device: str, threads: int | None,
            verbose: bool, jobs: int | None) -> None:
    """Run the whole segprep pipeline on a synthetic dataset, with nothing to download.

    Generates a small Cityscapes-format dataset (polygon JSONs with realistic classes and
    instances, camera-like images; invented city names), then runs the real commands on it:
    cityscapes gen-gt, odgt create, odgt split, odgt stats, train (a small U-Net), predict,
    evaluate cityscapes, predict overlays, and submit cityscapes (a validated zip). Each stage
    prints one line; the summary shows the val mIoU, where every artefact is, and an overlay PNG
    to look at. Every command it ran is in OUT/commands.sh. Takes about 2-3 minutes on 2 CPU
    cores with the defaults.
    """
    from segprep.cli.demo_pipeline import DemoConfig, DemoError, print_summary, run_demo

    cfg = DemoConfig(out=Path(out), frames=frames, epochs=epochs, seed=seed, jobs=jobs,
                     width=image_size[0], height=image_size[1], crop=crop,
                     base_channels=base_channels,
                     train_minutes=train_minutes, device=device, threads=threads,
                     verbose=verbose)
    try:
        summary = run_demo(cfg, click.get_current_context().find_root().command)
    except DemoError as exc:
        error(str(exc))
        if exc.detail:
            click.echo(exc.detail, err=True)
        sys.exit(exc.exit_code or 1)
    print_summary(summary)
