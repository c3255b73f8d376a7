"""``segprep export onnx CHECKPOINT -o model.onnx``: deployable model files."""

from __future__ import annotations

import sys

import click

from segprep.cli.common import EXIT_FAILED, handle_errors, info


@click.group("export")
def command() -> None:
    """Export a trained checkpoint for deployment (ONNX)."""


@command.command("onnx")
@click.argument("checkpoint", type=click.Path(exists=True))
@click.option("-o", "--out", required=True, type=click.Path(dir_okay=False),
              help="The .onnx file to write (atomically).")
@click.option("--opset", type=int, default=17, show_default=True, help="ONNX opset version.")
@click.option("--check/--no-check", default=True, show_default=True,
              help="Run the exported file in onnxruntime beside PyTorch on random images (a "
                   "stride-multiple size, an odd size, a batch of 2) and print the max abs logit "
                   "difference and the argmax agreement; exit 1 if they disagree.")
@click.option("--atol", type=float, default=1e-3, show_default=True,
              help="Largest accepted logit difference (scaled by the logits' magnitude above 1).")
@handle_errors
def onnx(checkpoint: str, out: str, opset: int, check: bool, atol: float) -> None:
    """Export CHECKPOINT (best.pt/last.pt of `segprep train`) to ONNX.

    Input `image`: (N, 3, H, W) float32 normalised as (rgb/255 - mean)/std; output `logits`:
    (N, K, H, W) float32; N, H and W are dynamic (any image size). K, mean, std, class names,
    the class map and the training size are stored in the file's metadata (segprep.*), so
    `segprep predict model.onnx INPUT OUT` (ONNX Runtime) needs nothing else.
    """
    from segprep.export import export_onnx

    report = export_onnx(checkpoint, out, opset=opset, check=check)
    info(f"wrote {report.path} ({report.size_bytes / 2 ** 20:.1f} MiB, opset {report.opset}, "
         f"{report.num_classes} classes, dynamic N/H/W) in {report.seconds:.1f} s")
    for c in report.checks:
        n, _, h, w = c.shape
        click.echo(f"onnxruntime vs PyTorch, input {n}x3x{h}x{w}: max |logit diff| "
                   f"{c.max_abs_diff:.3g} (max |logit| {c.max_abs_logit:.3g}), argmax agreement "
                   f"{c.argmax_agreement * 100:.4f} %")
    if report.checks and not report.passed(atol):
        click.echo("segprep: error: onnxruntime and PyTorch disagree beyond --atol", err=True)
        sys.exit(EXIT_FAILED)
