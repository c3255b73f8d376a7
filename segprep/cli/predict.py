"""``segprep predict CHECKPOINT IMAGES OUT``: write predictions from a trained checkpoint."""

from __future__ import annotations

import click

from segprep.cli.common import finish, handle_errors, info, overwrite_option, quiet_option
from segprep.errors import SegprepError


def _parse_tile(value: str | None) -> tuple[int, int] | None:
    if not value:
        return None
    try:
        parts = [int(v) for v in value.lower().split("x")]
    except ValueError:
        raise SegprepError("--tile", f"expected HxW or N (e.g. 512x1024), got {value!r}") \
            from None
    if len(parts) == 1:
        parts = parts * 2
    if len(parts) != 2 or min(parts) < 1:
        raise SegprepError("--tile", f"expected HxW with positive sizes, got {value!r}")
    return parts[0], parts[1]


def _parse_size(value: str | None) -> tuple[int, int] | str | None:
    if value is None:
        return None
    if value.strip().lower() == "native":
        return "native"
    try:
        parts = [int(v) for v in value.lower().split("x")]
    except ValueError:
        parts = []
    if len(parts) != 2 or min(parts) < 1:
        raise SegprepError("--size", f"expected WxH (e.g. 240x180) or native, got {value!r}")
    return parts[0], parts[1]


@click.command("predict")
@click.argument("checkpoint", type=click.Path(exists=True))
@click.argument("images", type=click.Path(exists=True))
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--format", "fmt", type=click.Choice(["trainIds", "labelIds", "color", "overlay"]),
              default="trainIds", show_default=True,
              help="trainIds: 8-bit PNG of class indices; labelIds: the class map's label ids "
                   "(the Cityscapes benchmark format); color: RGB PNG in the class map's colors; "
                   "overlay: the image blended with the colors, for people to look at (PNG; "
                   "--overlay-ext jpg for JPEG).")
@click.option("--size", default=None, metavar="WxH|native",
              help="Resize each image to width x height for the model (bilinear, as the trainer) "
                   "and the predicted scores back to the image's own size, so outputs align "
                   "with the inputs. Default: the --size the checkpoint was trained with "
                   "(native size when it had none); 'native' runs at each image's own size.")
@click.option("--overlay-ext", type=click.Choice(["png", "jpg"]), default="png",
              show_default=True,
              help="File type of --format overlay (JPEG is smaller but blurs class borders).")
@click.option("--tile", default=None, metavar="HxW",
              help="Predict by sliding windows of this size (logits averaged where windows "
                   "overlap) instead of whole images; for frames too large for memory.")
@click.option("--overlap", type=float, default=0.25, show_default=True,
              help="Overlap fraction of neighbouring windows with --tile.")
@click.option("--batch-size", "-b", type=int, default=1, show_default=True,
              help="Same-size images (or windows) per forward pass.")
@click.option("--device", default="auto", show_default=True,
              help="auto (CUDA if available), cpu, cuda or cuda:N.")
@click.option("--no-amp", is_flag=True,
              help="Run CUDA inference in float32 (default: float16 autocast on CUDA; CPU always "
                   "float32).")
@click.option("--alpha", type=float, default=0.5, show_default=True,
              help="Weight of the colors in --format overlay.")
@overwrite_option
@quiet_option
@handle_errors
def command(checkpoint: str, images: str, out: str, fmt: str, size: str | None,
            overlay_ext: str, tile: str | None, overlap: float, batch_size: int, device: str,
            no_amp: bool, alpha: float, overwrite: bool, quiet: bool) -> None:
    """Predict every image of IMAGES with the model of CHECKPOINT into OUT.

    CHECKPOINT is a best.pt/last.pt of `segprep train` (or its run folder). IMAGES is a folder
    (searched recursively for .png/.jpg), one image, or an .odgt manifest. Outputs keep each
    image's stem and sub-folder (Cityscapes: <frame>_leftImg8bit.png, as the benchmark expects).
    Existing outputs are skipped unless --overwrite. Prints images/s and peak memory (CUDA
    allocator peak on GPU, process peak RSS on CPU).
    """
    from segprep.predict import predict_images

    report = predict_images(checkpoint, images, out, fmt=fmt, device=device, amp=not no_amp,
                            tile=_parse_tile(tile), overlap=overlap, batch_size=batch_size,
                            overwrite=overwrite, alpha=alpha, quiet=quiet,
                            size=_parse_size(size), overlay_ext=overlay_ext)
    kind, mib = report.peak_memory
    what = "CUDA max allocated" if kind == "cuda" else "peak RSS"
    at = f"{report.size[0]}x{report.size[1]}" if report.size else "native size"
    info(f"device {report.device}{' (AMP float16)' if report.amp else ''}, model at {at}: "
         f"{report.images_per_s:.2f} images/s, {what} {mib:.0f} MiB")
    finish(report.summary, "images")
