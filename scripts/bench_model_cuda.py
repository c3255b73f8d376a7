#!/usr/bin/env python3
"""Benchmark: segprep's U-Net forward pass on a GPU, frames/s at 480x360 and 1280x720.

The model stage of ``segprep predict`` on CUDA (float32 and fp16 autocast, channels_last), batch 1
and 8: normalised frames already on the device in, uint8 class maps back on the host out (argmax
and the device-to-host copy included, as predict does). Decode and encode are the CPU pipeline's
and are measured by ``scripts/bench_predict.py``. Needs only torch (runs on a bare GPU machine).

    python scripts/bench_model_cuda.py [--base-channels 32] [--repeat 20]

Reference (issue 16): a BDD100K U-Net project reports 0.23 s per 1280x720 frame on a GTX 1080.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from segprep.model import build_model  # noqa: E402


def time_forward(model: torch.nn.Module, batch: int, height: int, width: int, amp: bool,
                 repeat: int) -> float:
    """Best seconds per frame over ``repeat`` timed batches (after 3 warm-ups)."""
    x = torch.randn(batch, 3, height, width, device="cuda").contiguous(
        memory_format=torch.channels_last)
    best = float("inf")
    with torch.inference_mode(), torch.autocast("cuda", torch.float16, enabled=amp):
        for i in range(repeat + 3):
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            out = model(x).argmax(1).to(torch.uint8).cpu()
            torch.cuda.synchronize()
            if i >= 3:
                best = min(best, (time.perf_counter() - t0) / batch)
    assert out.shape == (batch, height, width)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--base-channels", type=int, default=32)
    ap.add_argument("--num-classes", type=int, default=19)
    ap.add_argument("--repeat", type=int, default=20)
    args = ap.parse_args()
    if not torch.cuda.is_available():
        sys.exit("no CUDA device")
    torch.backends.cudnn.benchmark = True
    model = build_model(num_classes=args.num_classes, base_channels=args.base_channels)
    model = model.cuda().eval().to(memory_format=torch.channels_last)
    print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}, U-Net base "
          f"{args.base_channels}, {args.num_classes} classes")
    print(f"{'size':>9} {'batch':>5} {'precision':>9} {'ms/frame':>9} {'frames/s':>9}")
    for w, h in ((480, 360), (1280, 720)):
        for batch in (1, 8):
            for amp in (False, True):
                torch.cuda.reset_peak_memory_stats()
                s = time_forward(model, batch, h, w, amp, args.repeat)
                print(f"{w}x{h:<5} {batch:>5} {'fp16' if amp else 'fp32':>9} {s * 1e3:9.2f} "
                      f"{1 / s:9.1f}   peak {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB")


if __name__ == "__main__":
    main()
