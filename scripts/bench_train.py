"""Benchmark segprep's training step against a minimal plain-PyTorch loop, and the data pipeline
against the model step.

1. Step time: ``segprep.train.loop.train_one_epoch`` (uint8 NHWC batch → normalised input on the
   device, autocast, loss, backward, optimiser, per-iteration poly scheduler, loss bookkeeping)
   versus the minimal loop ``loss = F.cross_entropy(model(x), y, ignore_index=255);
   opt.zero_grad(); loss.backward(); opt.step()`` on the same model, the same real batch and the
   same precision / memory format (the plain loop even gets its input already normalised as
   float32).
   Goal: segprep / plain ≤ 1.1. Runs are interleaved (A B A B …); the ratio is taken on the best
   run of each loop (as ``timeit`` advises: slower runs measure the other processes sharing the
   CPU, not the code) and also shown on the medians. A third row times the plain loop in float32
   NCHW (what a plain loop does by default) to show what channels_last and autocast buy; with
   autocast on, a fourth row times segprep's loop in float32 (``--no-amp``), the comparison
   behind the CPU default of ``--amp`` (``--amp on|off|auto`` picks the precision of the first
   two rows).
2. Data pipeline alone: images/s of a DataLoader over ``SegDataset`` with the training transforms
   (decode + resize + scale + crop + flip + jitter), without and with ``--cache``, against the
   images/s of the model step.

Usage::

    python scripts/bench_train.py                         # CamVid SegNet frames from ../shared/data
    python scripts/bench_train.py --size 240x180 --batch-size 8 --base-channels 16 --reps 5
    python scripts/bench_train.py --json bench_train.json
    python scripts/bench_train.py --amp on --threads 2 --reps 4 --iters 3 --no-data  # bf16 vs fp32
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from segprep.model import build_model  # noqa: E402
from segprep.train.data import SegDataset, pad_collate, read_records, to_model_input  # noqa: E402
from segprep.train.engine import train_one_epoch  # noqa: E402
from segprep.train.losses import build_loss  # noqa: E402
from segprep.train.schedule import PolyWarmup  # noqa: E402
from segprep.train.setup import amp_dtype  # noqa: E402


def camvid_records(data: Path, n: int):
    """A temporary odgt over the first n SegNet CamVid train frames."""
    import tempfile

    seg = data / "camvid" / "segnet"
    names = sorted(p.name for p in (seg / "train").glob("*.png"))[:n]
    if not names:
        raise SystemExit(f"no CamVid frames under {seg} (set --data)")
    tmp = Path(tempfile.mkdtemp()) / "bench.odgt"
    from segprep.io import image_size

    lines = []
    for f in names:
        w, h = image_size(seg / "train" / f)
        lines.append(json.dumps({"fpath_img": str(seg / "train" / f),
                                 "fpath_segm": str(seg / "trainannot" / f),
                                 "width": w, "height": h}) + "\n")
    tmp.write_text("".join(lines))
    return read_records(tmp)


def time_segprep(model, batch, iters, device, amp, channels_last, lr):
    imgs, masks = batch
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, PolyWarmup(10_000, 0))
    crit = build_loss("ce", None, 255).to(device)
    loader = [(imgs, masks)] * iters
    t = time.perf_counter()
    train_one_epoch(model, loader, crit, opt, sched, None, device, amp=amp,
                    channels_last=channels_last)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - t) / iters


def time_plain(model, batch, iters, device, amp, channels_last, lr):
    imgs, masks = batch
    x = to_model_input(imgs, device, channels_last)  # given for free: already float, normalised
    y = masks.to(device).long()
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    model.train()
    t = time.perf_counter()
    for _ in range(iters):
        with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
            loss = F.cross_entropy(model(x).float(), y, ignore_index=255)
        opt.zero_grad()
        loss.backward()
        opt.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - t) / iters


def data_rate(ds, batch_size, workers, epochs=1):
    from torch.utils.data import DataLoader

    from segprep.train.data import EpochSampler

    sampler = EpochSampler(ds, seed=0)
    loader = DataLoader(ds, batch_size=batch_size, sampler=sampler, num_workers=workers,
                        collate_fn=pad_collate, persistent_workers=workers > 0)
    n = 0
    t = time.perf_counter()
    for e in range(epochs):
        sampler.set_epoch(e)
        for imgs, _ in loader:
            n += imgs.shape[0]
    return n / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--size", default="240x180", help="WxH frames are resized to")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--base-channels", type=int, default=16)
    ap.add_argument("--depth", type=int, default=4)
    ap.add_argument("--iters", type=int, default=2, help="steps per timed run")
    ap.add_argument("--reps", type=int, default=10, help="interleaved timed runs per loop")
    ap.add_argument("--frames", type=int, default=48, help="frames for the data benchmark")
    ap.add_argument("--workers", type=int, default=0, help="DataLoader workers (data bench)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--amp", choices=("auto", "on", "off"), default="auto",
                    help="autocast of the segprep/plain rows (auto: segprep train's default)")
    ap.add_argument("--no-data", action="store_true", help="skip the data-pipeline benchmark")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available()
                          else ("cpu" if args.device == "auto" else args.device))
    amp = amp_dtype(device, {"auto": None, "on": True, "off": False}[args.amp])
    w, h = (int(v) for v in args.size.lower().split("x"))
    recs = camvid_records(args.data, max(args.frames, args.batch_size))
    train_ds = SegDataset(recs, 11, 11, size=(w, h), scale=(0.75, 1.25), crop=(h, w),
                          jitter=0.2, seed=0)
    batch = pad_collate([train_ds[(i, 0)] for i in range(args.batch_size)])

    torch.manual_seed(0)
    base = build_model(num_classes=11, base_channels=args.base_channels, depth=args.depth)
    state = {k: v.clone() for k, v in base.state_dict().items()}

    def fresh(channels_last):
        m = build_model(num_classes=11, base_channels=args.base_channels, depth=args.depth)
        m.load_state_dict(state)
        m.to(device)
        if channels_last:
            m.to(memory_format=torch.channels_last)
        return m

    loops = {
        "segprep train_one_epoch": lambda: time_segprep(fresh(True), batch, args.iters, device,
                                                        amp, True, 1e-3),
        "plain loop, same precision/format": lambda: time_plain(fresh(True), batch, args.iters,
                                                                device, amp, True, 1e-3),
        "plain loop, float32 NCHW": lambda: time_plain(fresh(False), batch, args.iters, device,
                                                       None, False, 1e-3),
    }
    if amp is not None:
        loops["segprep train_one_epoch, float32"] = lambda: time_segprep(
            fresh(True), batch, args.iters, device, None, True, 1e-3)
    for fn in loops.values():  # warm-up (oneDNN / cuDNN kernel selection)
        fn()
    times = {k: [] for k in loops}
    for _ in range(args.reps):
        for k, fn in loops.items():
            times[k].append(fn())
    med = {k: statistics.median(v) for k, v in times.items()}
    best = {k: min(v) for k, v in times.items()}
    ratio = best["segprep train_one_epoch"] / best["plain loop, same precision/format"]
    ratio_med = med["segprep train_one_epoch"] / med["plain loop, same precision/format"]

    print(f"device {device}, threads {torch.get_num_threads()}, amp "
          f"{str(amp).split('.')[-1] if amp else 'off'}, batch {args.batch_size}x{h}x{w}, "
          f"U-Net base {args.base_channels} depth {args.depth}; {args.reps} interleaved runs x "
          f"{args.iters} steps")
    print(f"{'loop':<36} {'best s/step':>11} {'img/s':>7} {'median':>8}   runs (s/step)")
    for k, v in best.items():
        print(f"{k:<36} {v:11.3f} {args.batch_size / v:7.1f} {med[k]:8.3f}   "
              + " ".join(f"{t:.3f}" for t in times[k]))
    print(f"segprep / plain (same precision): best {ratio:.3f}, median {ratio_med:.3f} "
          f"(goal <= 1.1)")

    if amp is not None:
        amp_ratio = best["segprep train_one_epoch"] / best["segprep train_one_epoch, float32"]
        print(f"segprep {str(amp).split('.')[-1]} / float32: best {amp_ratio:.3f}, median "
              f"{med['segprep train_one_epoch'] / med['segprep train_one_epoch, float32']:.3f} "
              "(< 1: autocast is faster)")
    data = {}
    if not args.no_data:
        nodata = SegDataset(recs[:args.frames], 11, 11, size=(w, h), scale=(0.75, 1.25),
                            crop=(h, w), jitter=0.2, seed=0, cache=False)
        data["decode+augment"] = data_rate(nodata, args.batch_size, args.workers)
        cached = SegDataset(recs[:args.frames], 11, 11, size=(w, h), scale=(0.75, 1.25),
                            crop=(h, w), jitter=0.2, seed=0, cache=True)
        data_rate(cached, args.batch_size, 0)  # fills the cache
        data["cached+augment"] = data_rate(cached, args.batch_size, 0, epochs=2)
    step_rate = args.batch_size / best["segprep train_one_epoch"]
    if data:
        print(f"\ndata pipeline alone ({args.frames} CamVid frames, workers {args.workers}):")
    for k, v in data.items():
        print(f"  {k:<16} {v:8.1f} img/s  ({v / step_rate:.1f}x the model step's "
              f"{step_rate:.1f} img/s)")
    if args.json:
        args.json.write_text(json.dumps({
            "device": str(device), "threads": torch.get_num_threads(),
            "amp": str(amp) if amp else None, "batch": [args.batch_size, h, w],
            "seconds_per_step_best": best, "seconds_per_step_median": med, "runs": times,
            "ratio_segprep_over_plain": ratio, "ratio_median": ratio_med,
            "data_images_per_s": data, "model_step_images_per_s": step_rate}, indent=2))


if __name__ == "__main__":
    main()
