"""Benchmark ``segprep predict``: frames/s on stills and video, PyTorch vs ONNX Runtime.

For each input kind (a folder of PNG stills written as trainIds PNGs; an H.264 video written as an
H.264 overlay video), frame size (480x360 from the real SegNet CamVid val frames, 1280x720 from the
real BDD100K 10k frames), batch size (1, 8) and backend (torch, onnxruntime), the whole library
call (``predict_images`` / ``predict_video`` with a loaded model: decode → model → encode, their
three threads) is timed end to end and reported as frames/s, with the per-stage milliseconds per
frame of that run. The model runs at the frames' own size (``size="native"``), so 480x360 and
1280x720 are the sizes the network sees. Runs are interleaved (every configuration once, then
again, …) and the best of ``--repeat`` is kept (slower runs measure the other processes sharing
the CPU). Both backends get the same number of CPU threads (``--threads``, default 2).

The model: ``--checkpoint`` (e.g. a ``best.pt`` of ``scripts/train_camvid.sh``) or, by default,
a randomly initialised U-Net of the CamVid recipe (depth 4, base width 16, 11 classes); weights do
not change the speed. It is exported with ``segprep export onnx`` into a temporary folder.

Parity (``--parity``): argmax agreement and max |logit difference| of onnxruntime vs torch over
every real frame used (101 CamVid val frames, 24 BDD100K frames), at the model's own predict size
(the checkpoint's training size, or native).

Usage::

    python scripts/bench_predict.py                                   # 16 frames, best of 3
    python scripts/bench_predict.py --checkpoint runs/camvid-cpu/best.pt --parity
    python scripts/bench_predict.py --sizes 480x360 --batch-sizes 1 --repeat 5 --json b.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from segprep.io import read_image, write_png  # noqa: E402


def real_frames(data: Path, size: tuple[int, int], n: int) -> list[np.ndarray]:
    """n real frames of ``size`` (W, H): CamVid val for 480x360, BDD100K 10k for 1280x720,
    otherwise CamVid resized; cycled when fewer exist."""
    import cv2

    if size == (1280, 720):
        files = sorted((data / "bdd100k" / "10k" / "images").glob("*/*.jpg"))
    else:
        files = sorted((data / "camvid" / "segnet" / "val").glob("*.png"))
    if not files:
        raise SystemExit(f"no real frames under {data} (set --data)")
    out = []
    for f in files[:n]:
        img = read_image(f)
        if img.shape[:2] != (size[1], size[0]):
            img = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
        out.append(img)
    while len(out) < n:
        out.append(out[len(out) % len(files)])
    return out


def write_inputs(frames: list[np.ndarray], folder: Path, fps: int = 15) -> tuple[Path, Path]:
    """The frames as PNG stills in ``folder/stills`` and as an H.264 (CRF 18) ``folder/in.mp4``."""
    import av

    stills = folder / "stills"
    for i, f in enumerate(frames):
        write_png(stills / f"f{i:04d}.png", f)
    video = folder / "in.mp4"
    c = av.open(str(video), "w")
    s = c.add_stream("libx264", rate=fps, options={"crf": "18", "preset": "veryfast"})
    s.height, s.width = frames[0].shape[:2]
    s.pix_fmt = "yuv420p"
    for f in frames:
        for p in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
            c.mux(p)
    for p in s.encode(None):
        c.mux(p)
    c.close()
    return stills, video


def make_model(folder: Path, checkpoint: str | None) -> tuple[Path, Path]:
    """(checkpoint, onnx) paths: the given checkpoint or the CamVid recipe's U-Net, exported."""
    import torch

    from segprep import class_maps
    from segprep.export import export_onnx
    from segprep.model import MEAN, STD, build_model
    from segprep.train.checkpoint import make_meta, save_checkpoint

    if checkpoint is None:
        torch.manual_seed(0)
        model = build_model(num_classes=11, base_channels=16, depth=4).eval()
        cmap = class_maps.load("camvid11")
        meta = make_meta(model, num_classes=11, ignore_index=11, class_map=cmap,
                         class_names=list(cmap.train_names), mean=MEAN, std=STD, epoch=0,
                         best_miou=None, args={})
        checkpoint = folder / "unet16.pt"
        save_checkpoint(checkpoint, {"format": 1, "model": model.state_dict(), "meta": meta})
    onnx_path = folder / "model.onnx"
    export_onnx(checkpoint, onnx_path, check=False)
    return Path(checkpoint), onnx_path


def parity(ck: Path, onnx_path: Path, data: Path, threads: int) -> dict:
    """onnxruntime vs torch logits over the real CamVid val and BDD100K 10k frames."""
    from segprep.predict import Predictor

    files = sorted((data / "camvid" / "segnet" / "val").glob("*.png")) + \
        sorted((data / "bdd100k" / "10k" / "images").glob("*/*.jpg"))
    t = Predictor(ck, device="cpu", threads=threads)
    o = Predictor(onnx_path, device="cpu", threads=threads)
    agree = total = 0
    max_diff = max_logit = 0.0
    worst = 1.0
    for f in files:
        img = read_image(f)
        lt, lo = t.logits([img]), o.logits([img])
        max_diff = max(max_diff, float((lt - lo).abs().max()))
        max_logit = max(max_logit, float(lt.abs().max()))
        a = int((lt.argmax(1) == lo.argmax(1)).sum())
        worst = min(worst, a / lt[:, 0].numel())
        agree += a
        total += lt[:, 0].numel()
    return {"frames": len(files), "pixels": total, "argmax_agreement": agree / total,
            "worst_frame_agreement": worst, "max_abs_logit_diff": max_diff,
            "max_abs_logit": max_logit, "predict_size": t.size}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=Path(os.environ.get(
        "SEGPREP_DATA", ROOT.parent / "shared" / "data")))
    ap.add_argument("--checkpoint", default=None)
    ap.add_argument("--frames", type=int, default=16, help="frames per run")
    ap.add_argument("--repeat", type=int, default=3, help="interleaved rounds; best kept")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--sizes", default="480x360,1280x720")
    ap.add_argument("--batch-sizes", default="1,8")
    ap.add_argument("--backends", default="torch,onnxruntime")
    ap.add_argument("--kinds", default="stills,video")
    ap.add_argument("--parity", action="store_true", help="also measure backend parity")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()

    from segprep.predict import Predictor, predict_images, predict_video

    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]
    batches = [int(b) for b in args.batch_sizes.split(",")]
    backends = args.backends.split(",")
    kinds = args.kinds.split(",")
    tmp = Path(tempfile.mkdtemp(prefix="bench_predict."))
    ck, onnx_path = make_model(tmp, args.checkpoint)
    models = {"torch": ck, "onnxruntime": onnx_path}
    inputs = {}
    for size in sizes:
        inputs[size] = write_inputs(real_frames(args.data, size, args.frames),
                                    tmp / f"{size[0]}x{size[1]}")
    predictors = {b: Predictor(models[b], device="cpu", threads=args.threads, size="native")
                  for b in backends}
    configs = [(k, s, bs, b) for k in kinds for s in sizes for bs in batches for b in backends]
    results: dict = {c: [] for c in configs}
    load0 = os.getloadavg()
    t0 = time.perf_counter()
    for rnd in range(args.repeat):
        for kind, size, bs, backend in configs:
            p = predictors[backend]
            p.batch_size = bs
            stills, video = inputs[size]
            out = tmp / "out" / f"{kind}-{backend}-{bs}"
            if kind == "stills":
                rep = predict_images(p, stills, out, overwrite=True, quiet=True)
                assert rep.summary.done == args.frames and not rep.summary.failed
            else:
                rep = predict_video(p, video, out / "out.mp4", overwrite=True, quiet=True)
                assert rep.summary.done == 1, rep.summary.errors
            t = rep.times
            results[(kind, size, bs, backend)].append(
                (t.frames_per_s, *t.ms_per_frame()))
        print(f"round {rnd + 1}/{args.repeat} done ({time.perf_counter() - t0:.0f} s)",
              file=sys.stderr)
    load1 = os.getloadavg()

    print(f"\nsegprep predict, {args.frames} frames per run, best of {args.repeat} interleaved, "
          f"{args.threads} threads, model at the frame size; load average before "
          f"{load0[0]:.1f}, after {load1[0]:.1f} ({os.cpu_count()} cores)\n")
    print("| input | size | batch | torch frames/s | onnxruntime frames/s | ort / torch | "
          "torch ms/frame decode / model / encode | ort ms/frame decode / model / encode |")
    print("|---|---|---|---|---|---|---|---|")
    rows = []
    for kind in kinds:
        for size in sizes:
            for bs in batches:
                best = {b: max(results[(kind, size, bs, b)]) for b in backends}
                cells = [f"{best[b][0]:.2f}" if b in best else "-"
                         for b in ("torch", "onnxruntime")]
                ratio = (best["onnxruntime"][0] / best["torch"][0]
                         if "torch" in best and "onnxruntime" in best else float("nan"))
                stage = ["{:.1f} / {:.1f} / {:.1f}".format(*best[b][1:]) if b in best else "-"
                         for b in ("torch", "onnxruntime")]
                print(f"| {kind} | {size[0]}x{size[1]} | {bs} | {cells[0]} | {cells[1]} | "
                      f"{ratio:.2f} | {stage[0]} | {stage[1]} |")
                rows.append({"kind": kind, "size": list(size), "batch": bs,
                             **{f"{b}_frames_per_s": best[b][0] for b in best},
                             **{f"{b}_ms_decode_model_encode": list(best[b][1:]) for b in best},
                             "all_runs": {b: results[(kind, size, bs, b)] for b in backends}})
    out: dict = {"frames": args.frames, "repeat": args.repeat, "threads": args.threads,
                 "load_before": load0, "load_after": load1, "rows": rows}
    if args.parity:
        par = parity(ck, onnx_path, args.data, args.threads)
        out["parity"] = par
        at = "x".join(map(str, par["predict_size"])) if par["predict_size"] else "native size"
        print(f"\nparity onnxruntime vs torch over {par['frames']} real frames "
              f"({par['pixels']:,} px, model at {at}): argmax "
              f"agreement {100 * par['argmax_agreement']:.5f} % (worst frame "
              f"{100 * par['worst_frame_agreement']:.4f} %), max |logit diff| "
              f"{par['max_abs_logit_diff']:.3g} (max |logit| {par['max_abs_logit']:.3g})")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()
