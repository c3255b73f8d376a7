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


@click.command("predict")
@click.argument("checkpoint", type=click.Path(exists=True))
@click.argument("images", type=click.Path(exists=True))
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--format", "fmt", type=click.Choice(["trainIds", "labelIds", "color", "overlay"]),
              default="trainIds", show_default=True,
              help="trainIds: 8-bit PNG of class indices; labelIds: the class map's label ids "
                   "(the Cityscapes benchmark format); color: RGB PNG in the class map's colors; "
                   "overlay: the image blended with the colors, JPEG, for people to look at.")
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
def command(checkpoint: str, images: str, out: str, fmt: str, tile: str | None, overlap: float,
            batch_size: int, device: str, no_amp: bool, alpha: float, overwrite: bool,
            quiet: bool) -> None:
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
                            overwrite=overwrite, alpha=alpha, quiet=quiet)
    kind, mib = report.peak_memory
    what = "CUDA max allocated" if kind == "cuda" else "peak RSS"
    info(f"device {report.device}{' (AMP float16)' if report.amp else ''}: "
         f"{report.images_per_s:.2f} images/s, {what} {mib:.0f} MiB")
    finish(report.summary, "images")
