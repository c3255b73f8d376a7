"""``segprep predict MODEL INPUT OUT``: predictions of stills, folders or a video, on PyTorch or
ONNX Runtime."""

from __future__ import annotations

from typing import Any

import click

from segprep.cli.common import (
    SizeType,
    finish,
    handle_errors,
    info,
    overwrite_option,
    parse_factors,
    quiet_option,
    scheduler_option,
)
from segprep.errors import SegprepError


@click.command("predict")
@click.argument("checkpoint", metavar="MODEL", type=click.Path(exists=True))
@click.argument("images", metavar="INPUT", type=click.Path(exists=True))
@click.argument("out", type=click.Path())
@click.option("--format", "fmt",
              type=click.Choice(["trainIds", "labelIds", "color", "overlay", "side-by-side"]),
              default=None, show_default="trainIds; overlay for a video",
              help="trainIds: 8-bit PNG of class indices; labelIds: the class map's label ids "
                   "(the Cityscapes benchmark format); color: RGB in the class map's colors; "
                   "overlay: the image blended with the colors (--alpha); side-by-side: image | "
                   "colors. Stills: PNG (--overlay-ext jpg for JPEG overlays). A video is "
                   "written as overlay, side-by-side or color.")
@click.option("--size", type=SizeType(words=("native",)), default=None, metavar="WxH|native",
              help="Stills: the model's input size, as --model-size. Video: the size of the "
                   "output frames, as --frame-size (the model then runs at --model-size).")
@click.option("--model-size", type=SizeType(words=("native",)), default=None,
              metavar="WxH|native",
              help="Resize each image (or frame) to width x height for the model (bilinear, as "
                   "the trainer) and the predicted scores back to its own size, so outputs "
                   "align with the inputs. Default: the --size the model was trained with "
                   "(native size when it had none); 'native' runs at each image's own size.")
@click.option("--backend", type=click.Choice(["torch", "onnxruntime"]), default=None,
              show_default="onnxruntime for a .onnx MODEL, else torch",
              help="torch runs a checkpoint of `segprep train`; onnxruntime runs the .onnx of "
                   "`segprep export onnx` (its metadata carries classes, normalisation and "
                   "training size; needs pip install -e '.[onnx]').")
@click.option("--tta", type=click.Choice(["none", "flip"]), default="none", show_default=True,
              help="flip: average the logits of each image and of its horizontal mirror.")
@click.option("--tta-scales", default=None, metavar="F,F,...",
              help="Multi-scale testing: run the model at each factor of its size (e.g. "
                   "0.5,0.75,1,1.25,1.5,1.75, mmsegmentation's ratios; with --tta flip each "
                   "one mirrored too) and average the softmax; one forward pass per factor.")
@click.option("--overlay-ext", type=click.Choice(["png", "jpg"]), default="png",
              show_default=True,
              help="File type of still overlay / side-by-side images (JPEG is smaller but blurs "
                   "class borders).")
@click.option("--tile", type=SizeType("HxW", square_ok=True), default=None, metavar="HxW",
              help="Predict by sliding windows of this size (logits averaged where windows "
                   "overlap) instead of whole images; for frames too large for memory.")
@click.option("--overlap", type=float, default=0.25, show_default=True,
              help="Overlap fraction of neighbouring windows with --tile.")
@click.option("--batch-size", "-b", type=int, default=1, show_default=True,
              help="Same-size images, video frames (or windows) per forward pass.")
@click.option("--device", default="auto", show_default=True,
              help="auto (CUDA if available), cpu, cuda or cuda:N.")
@click.option("--threads", type=int, default=None, show_default="the backend's default",
              help="CPU threads of the model (torch.set_num_threads / onnxruntime intra-op).")
@click.option("--no-amp", is_flag=True,
              help="Run CUDA inference in float32 (default: float16 autocast on CUDA with torch; "
                   "CPU always float32).")
@click.option("--alpha", type=float, default=0.5, show_default=True,
              help="Weight of the colors in --format overlay.")
@click.option("--frame-size", type=SizeType(), default=None, metavar="WxH",
              help="Video: resize the decoded frames to this size (the output video and the "
                   "masks have it). Default: the input's frame size.")
@click.option("--fps", type=float, default=None,
              help="Video: frame rate of the output (frames are written one to one). Default: "
                   "the input's, divided by --stride.")
@click.option("--save-masks", type=click.Path(file_okay=False), default=None, metavar="DIR",
              help="Video: also write each frame's mask as DIR/<video stem>_<frame:06d>.png "
                   "(frame index in the input, from 0).")
@click.option("--mask-format", type=click.Choice(["trainIds", "labelIds"]), default="trainIds",
              show_default=True, help="Video: format of the --save-masks PNGs.")
@click.option("--stride", type=int, default=1, show_default=True,
              help="Video: predict every N-th frame.")
@click.option("--start", type=float, default=0.0, show_default=True, metavar="SECONDS",
              help="Video: first frame at this time.")
@click.option("--duration", type=float, default=None, metavar="SECONDS",
              help="Video: this many seconds from --start (default: to the end).")
@overwrite_option
@quiet_option
@scheduler_option
@handle_errors
def command(checkpoint: str, images: str, out: str, fmt: str | None,
            size: tuple[int, int] | str | None, model_size: tuple[int, int] | str | None,
            backend: str | None, tta: str, tta_scales: str | None, overlay_ext: str, tile: tuple[int, int] | None,
            overlap: float, batch_size: int, device: str, threads: int | None, no_amp: bool,
            alpha: float, frame_size: tuple[int, int] | None, fps: float | None, save_masks: str | None,
            mask_format: str, stride: int, start: float, duration: float | None,
            overwrite: bool, quiet: bool, scheduler: str | None) -> None:
    """Predict INPUT with MODEL into OUT.

    MODEL is a best.pt/last.pt of `segprep train` (or its run folder), or the .onnx of `segprep
    export onnx`. INPUT is a folder (searched recursively for .png/.jpg), one image, an .odgt
    manifest, or a video (.mp4 .avi .mov .mkv .webm; recognised by its content). Stills: OUT is a
    folder; outputs keep each image's stem and sub-folder (Cityscapes:
    <frame>_leftImg8bit.png, as the benchmark expects). Video: OUT is the video to write
    (or a folder: OUT/<stem>.mp4), H.264 when available. Existing outputs are skipped unless
    --overwrite; an output that would replace an input is refused. Prints the speed (frames/s
    and ms per frame for decode, model and encode) and peak memory.
    """
    from segprep.predict import input_kind, predict_images, predict_video

    kind = input_kind(images)
    if kind == "video":
        if size is not None and frame_size is not None:
            raise SegprepError("--size", "give --size or --frame-size for a video, not both")
        if size == "native":
            raise SegprepError("--size", "for a video it is the output frame size WxH; the "
                                         "model's size is --model-size")
        frame_size = frame_size or size  # type: ignore[assignment]
    elif size is not None:
        if model_size is not None:
            raise SegprepError("--size", "give --size or --model-size, not both")
        model_size = size
    common: dict[str, Any] = dict(
        device=device, amp=not no_amp, tile=tile, overlap=overlap,
        batch_size=batch_size, size=model_size, backend=backend, tta=tta, threads=threads,
        tta_scales=parse_factors(tta_scales, "--tta-scales"),
        overwrite=overwrite, quiet=quiet, alpha=alpha)
    if kind == "video":
        if scheduler:
            raise SegprepError("--scheduler", "a video is predicted on this machine (one "
                                              "pipeline, one output file); --scheduler takes "
                                              "folders of still images")
        for name, given in (("--overlay-ext", overlay_ext != "png"),):
            if given:
                raise SegprepError(name, "applies to still images, not to a video")
        report = predict_video(checkpoint, images, out, fmt=fmt or "overlay",
                               frame_size=frame_size,
                               fps=fps, save_masks=save_masks, mask_format=mask_format,
                               stride=stride, start=start, duration=duration, **common)
        _print_speed(report.backend, report.size, report.peak_memory)
        if report.summary.done:
            info(f"wrote {report.out}: {report.frames} frames, {report.width}x{report.height} at "
                 f"{float(report.fps):g} fps, {report.check.get('duration_s', 0):.2f} s, codec "
                 f"{report.codec}" + (f"; {report.masks} masks in {save_masks}"
                                      if save_masks else ""))
            info(report.times.line("frames"))
        finish(report.summary, "videos")
        return
    video_only = (("--frame-size", frame_size is not None), ("--fps", fps is not None),
                  ("--save-masks", save_masks is not None), ("--stride", stride != 1),
                  ("--start", start != 0), ("--duration", duration is not None),
                  ("--mask-format", mask_format != "trainIds"))
    for name, given in video_only:
        if given:
            raise SegprepError(name, f"applies to a video INPUT; {images} is read as still "
                                     f"images")
    stills = predict_images(checkpoint, images, out, fmt=fmt or "trainIds",
                            overlay_ext=overlay_ext, scheduler=scheduler, **common)
    kind_, mib = stills.peak_memory
    what = "CUDA max allocated" if kind_ == "cuda" else "peak RSS"
    at = f"{stills.size[0]}x{stills.size[1]}" if stills.size else "native size"
    info(f"{stills.backend}, model at {at}: {stills.images_per_s:.2f} images/s, {what} "
         f"{mib:.0f} MiB")
    if stills.times.frames:
        info(stills.times.line("images"))
    finish(stills.summary, "images")


def _print_speed(backend: str, size: tuple[int, int] | None, peak: tuple[str, float]) -> None:
    kind, mib = peak
    what = "CUDA max allocated" if kind == "cuda" else "peak RSS"
    at = f"{size[0]}x{size[1]}" if size else "native size"
    info(f"{backend}, model at {at}, {what} {mib:.0f} MiB")
