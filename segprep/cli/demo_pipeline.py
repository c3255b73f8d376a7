"""``segprep demo``: the whole pipeline, end to end, on a synthetic Cityscapes-format dataset.

Nothing is downloaded: :func:`segprep.synth.generate_cityscapes` writes a small dataset in the
official layout, then the real commands run on it, in this process, exactly as a user types them::

    cityscapes gen-gt → odgt create → odgt split → odgt stats → train → predict → evaluate
    cityscapes → predict (overlays) → predict (test split) → submit cityscapes

Each stage prints one line (what it did, its main artefact, seconds); a command's own output goes
to ``OUT/logs/<nn>_<stage>.log`` and every command line to ``OUT/commands.sh`` (rerunnable by
hand). The end summary (val mIoU, artefact paths, an overlay PNG to look at) is also written to
``OUT/summary.json``. A failing command stops the demo with its exit status, the command line and
the last lines of its log.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from segprep.errors import SegprepError
from segprep.train.threads import cpu_threads

#: file that marks a folder as a segprep demo output (so a rerun may reuse it)
MARKER = ".segprep-demo"


class DemoError(SegprepError):
    """A demo stage failed, or the output folder is unusable.

    Attributes:
        exit_code: the failing command's exit status (2 for an unusable output folder).
        detail: extra lines to show (the last lines of the failing command's log).
    """

    def __init__(self, where: str | os.PathLike | None, message: str, exit_code: int = 1,
                 detail: str = "") -> None:
        super().__init__(where, message)
        self.exit_code = exit_code
        self.detail = detail


@dataclass
class DemoConfig:
    """Settings of one demo run (the defaults finish in under 3 minutes on 2 CPU cores).

    Attributes:
        out: output folder (created; must be empty or a previous demo's).
        frames: synthetic frames in all (60 % train, 20 % val, 20 % test).
        epochs: training epochs; None: as many as fit in :attr:`train_minutes`, with the
            learning-rate schedule fitted to that budget (the trainer's ``--time-budget``).
        seed: seed of the dataset, the split and the training.
        jobs: worker processes for batch stages (None: all cores).
        width, height: synthetic image size (px).
        crop: ``(H, W)`` random training crop (frames keep their size, so the model sees
            objects at the scale ``predict`` shows them, full frames).
        base_channels: U-Net width.
        batch_size, lr: training batch size and peak learning rate.
        class_weights: which weights of the ``odgt stats`` JSON the loss uses
            (``inverse_log``: ENet's, milder than ``median_frequency``, which at this short
            budget trades too much pixel accuracy for the rare classes).
        train_minutes: wall-time budget of the training stage (the trainer's ``--time-budget``).
        device: ``auto``, ``cpu`` or ``cuda``.
        threads: torch CPU threads of the training stage (None:
            :func:`segprep.train.threads.cpu_threads`).
        verbose: echo every command's own output instead of only logging it.
    """

    out: Path = Path("segprep-demo")
    frames: int = 40
    epochs: int | None = None
    seed: int = 0
    jobs: int | None = None
    width: int = 512
    height: int = 256
    crop: tuple[int, int] = (128, 256)
    base_channels: int = 16
    batch_size: int = 4
    lr: float = 4e-3
    class_weights: str = "inverse_log"
    train_minutes: float = 1.5
    device: str = "auto"
    threads: int | None = None
    verbose: bool = False

    def split_counts(self) -> tuple[int, int, int]:
        """``(train, val, test)`` frame counts from :attr:`frames` (60/20/20, each >= 2)."""
        n_val = max(2, round(0.2 * self.frames))
        n_test = max(2, round(0.2 * self.frames))
        return max(2, self.frames - n_val - n_test), n_val, n_test


@dataclass
class StageResult:
    """One stage's outcome: a one-line message, its artefacts, wall seconds."""

    name: str
    message: str
    artefacts: dict[str, str]
    seconds: float


@dataclass
class DemoSummary:
    """Everything the demo produced (also written to ``OUT/summary.json``)."""

    out: str
    stages: list[StageResult] = field(default_factory=list)
    scores: dict[str, Any] = field(default_factory=dict)
    artefacts: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "out": self.out,
            "seconds": round(self.seconds, 2),
            "scores": self.scores,
            "artefacts": self.artefacts,
            "stages": [{"name": s.name, "message": s.message, "artefacts": s.artefacts,
                        "seconds": round(s.seconds, 2)} for s in self.stages],
        }


class _Tee(io.TextIOBase):
    """A text stream writing to several streams (log file, optionally the terminal)."""

    def __init__(self, *streams: Any) -> None:
        self.streams = streams

    def write(self, s: str) -> int:
        for st in self.streams:
            st.write(s)
        return len(s)

    def flush(self) -> None:
        for st in self.streams:
            st.flush()

    def isatty(self) -> bool:  # no progress bars in logs
        return False


def _tail(path: Path, n: int = 12) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join("    " + ln for ln in lines[-n:])


class Runner:
    """Runs ``segprep`` commands in-process, logging their output, recording their command lines."""

    def __init__(self, out: Path, cli: Any, verbose: bool = False,
                 echo: Callable[[str], None] | None = None) -> None:
        self.out = out
        self.cli = cli  # the root ``segprep`` click group (passed in: no import of cli.main)
        self.verbose = verbose
        self.logs = out / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.commands = out / "commands.sh"
        self.commands.write_text("#!/usr/bin/env bash\n# The commands `segprep demo` ran, in "
                                 "order (run from the folder the demo was started in).\nset -e\n")
        self.count = 0

    def log_path(self, stage: str) -> Path:
        return self.logs / f"{self.count:02d}_{stage}.log"

    def note(self, stage: str, text: str) -> None:
        """Record a library step (not a CLI command) in commands.sh as a comment."""
        with self.commands.open("a") as fh:
            fh.write(f"# {stage}: {text}\n")

    def __call__(self, stage: str, args: Sequence[str]) -> str:
        """Run ``segprep ARGS``; returns its captured output.

        Raises:
            DemoError: the command exited non-zero or raised.
        """
        import click

        args = [str(a) for a in args]
        self.count += 1
        line = "segprep " + " ".join(shlex.quote(a) for a in args)
        with self.commands.open("a") as fh:
            fh.write(line + "\n")
        log = self.log_path(stage)
        code: int | str | None = 0
        buf = io.StringIO()
        with log.open("w") as fh:
            fh.write(f"$ {line}\n")
            fh.flush()
            streams = (fh, buf, sys.__stderr__) if self.verbose else (fh, buf)
            tee = _Tee(*streams)
            with contextlib.redirect_stdout(tee), contextlib.redirect_stderr(tee):
                try:
                    rv = self.cli.main(args=args, prog_name="segprep", standalone_mode=False)
                    code = rv if isinstance(rv, int) else 0
                except SystemExit as exc:
                    code = exc.code
                except click.exceptions.Exit as exc:
                    code = exc.exit_code
                except click.ClickException as exc:
                    exc.show(file=tee)  # type: ignore[arg-type]
                    code = exc.exit_code
                except click.exceptions.Abort:
                    code = "aborted"
                except SegprepError as exc:
                    tee.write(f"segprep: error: {exc}\n")
                    code = 2
        if code not in (0, None):
            raise DemoError(stage, f"`{line}` failed (exit status {code}); its output: {log}",
                            exit_code=code if isinstance(code, int) else 1,
                            detail=_tail(log))
        return buf.getvalue()


def _prepare_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise DemoError(out, "exists and is not a folder", exit_code=2)
    if out.is_dir() and any(out.iterdir()) and not (out / MARKER).exists():
        raise DemoError(out, "folder is not empty and is not a previous demo's output; choose "
                             "another --out (the demo never writes into a foreign folder)",
                        exit_code=2)
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text("segprep demo output; safe to delete.\n")


def _rel(path: Path | str) -> str:
    """A path as the user should see it: relative to the current folder when inside it."""
    p = Path(path)
    try:
        return str(p.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(p)


def _count_lines(path: Path) -> int:
    with path.open() as fh:
        return sum(1 for ln in fh if ln.strip())


class _DemoPaths:
    """Where every stage of the demo reads and writes, under the output folder ``out``."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.data = out / "data" / "cityscapes"
        self.odgt_dir, self.run_dir = out / "odgt", out / "run"
        self.all_train = self.odgt_dir / "cityscapes_train.odgt"
        self.prefix = self.odgt_dir / "demo"
        self.tr, self.va = Path(f"{self.prefix}_train.odgt"), Path(f"{self.prefix}_val.odgt")
        self.stats = self.odgt_dir / "demo_train_stats.json"
        self.ckpt = self.run_dir / "best.pt"
        self.val_images = self.data / "leftImg8bit" / "val"
        self.test_images = self.data / "leftImg8bit" / "test"
        pred_dir, eval_dir = out / "predictions", out / "eval"
        self.pred_val, self.pred_overlay = pred_dir / "val", pred_dir / "val_overlay"
        self.pred_test = pred_dir / "test"
        self.eval_json = eval_dir / "cityscapes_val.json"
        self.eval_png = eval_dir / "cityscapes_val.png"
        self.submission = out / "submission.zip"


Stage = Callable[[], tuple[str, dict[str, Any]]]
"""One demo stage: runs, then returns ``(one-line result, artefact name → path)``."""


def _stage_runner(cfg: DemoConfig, summary: DemoSummary, echo: Callable[[str], None] | None,
                  total: int) -> Callable[[str, Stage], StageResult]:
    """A function ``stage(name, fn)`` that runs ``fn`` as stage ``k`` of ``total``: prints its head
    and result line (on one line when printing to a terminal without ``--verbose``), times it and
    appends its :class:`StageResult` to ``summary.stages``."""
    import click

    say = echo or click.echo

    def stage(name: str, fn: Stage) -> StageResult:
        k = len(summary.stages) + 1
        head = f"[{k:2d}/{total}] {name:<18}"
        inline = echo is None and not cfg.verbose  # head now, result on the same line
        if inline:
            click.echo(head, nl=False)
        elif cfg.verbose:  # the command's own output follows: the result gets its own line
            say(f"{head}...")
        t0 = time.perf_counter()
        try:
            msg, arts = fn()
        except BaseException:
            if inline:
                click.echo("failed")
            raise
        res = StageResult(name, msg, {k2: _rel(v) for k2, v in arts.items()},
                          time.perf_counter() - t0)
        summary.stages.append(res)
        where = f" -> {next(iter(res.artefacts.values()))}" if res.artefacts else ""
        line = f"{msg}{where} ({res.seconds:.1f} s)"
        say(line if inline else f"{head}{line}")
        return res

    return stage


def _data_stages(cfg: DemoConfig, run: Runner, paths: _DemoPaths, jobs: list[str]
                 ) -> list[tuple[str, Stage]]:
    """Stages 1-6: synthetic data, gen-gt, odgt create / split / stats, train."""
    data, run_dir = paths.data, paths.run_dir
    all_train, prefix, tr, va, stats = (paths.all_train, paths.prefix, paths.tr, paths.va,
                                        paths.stats)
    n_train, n_val, n_test = cfg.split_counts()
    size = f"{cfg.width}x{cfg.height}"
    crop = f"{cfg.crop[0]}x{cfg.crop[1]}"

    # 1. the synthetic dataset
    def synth_stage():
        from segprep.synth import generate_cityscapes

        s = generate_cityscapes(data, n_train, n_val, n_test, cfg.width, cfg.height, cfg.seed,
                                jobs=cfg.jobs)
        run.note("synth", f"python -c 'from segprep.synth import generate_cityscapes; "
                          f"generate_cityscapes(\"{data}\", {n_train}, {n_val}, {n_test}, "
                          f"{cfg.width}, {cfg.height}, seed={cfg.seed})'")
        n_obj = sum(s.objects.values())
        return ((f"{s.num_frames} synthetic frames {size} (train {n_train}, val {n_val}, "
                 f"test {n_test}), {n_obj} polygons of {len(s.objects)} labels"),
                {"dataset": data})

    # 2. gen-gt: polygons -> labelIds, trainIds, instanceIds, color (in place, official names)
    def gen_gt_stage():
        run("gen-gt", ["cityscapes", "gen-gt", data, "--split", "train,val", "--targets",
                       "labelIds,trainIds,instanceIds,color", "--overwrite", "-q", *jobs])
        n = len(list((data / "gtFine").glob("*/*/*_gtFine_labelTrainIds.png")))
        return (f"{n} frames rasterised to labelIds/trainIds/instanceIds/color",
                {"gtFine": data / "gtFine"})

    # 3. odgt create: official train split
    def create_stage():
        run("odgt-create", ["odgt", "create", "--dataset", "cityscapes", data, "--split", "train",
                            "-o", all_train, "--overwrite", "-q", *jobs])
        return f"{_count_lines(all_train)} image/mask pairs", {"odgt": all_train}

    # 4. odgt split: hold out 20 % of train for model selection (the official val stays unseen)
    def split_stage():
        run("odgt-split", ["odgt", "split", all_train, "--val", "0.2", "--test", "0", "--seed",
                           cfg.seed, "-o", prefix, "--overwrite", "-q", *jobs])
        return (f"train {_count_lines(tr)} / val {_count_lines(va)} frames (seed {cfg.seed})",
                {"train": tr, "val": va})

    # 5. odgt stats: class frequencies and weights
    def stats_stage():
        run("odgt-stats", ["odgt", "stats", tr, "--class-map", "cityscapes", "-o", stats,
                           "--overwrite", "-q", *jobs])
        doc = json.loads(stats.read_text())
        k = int(doc["num_classes"])
        absent = [doc["class_names"][c] for c in doc.get("absent_classes", [])]
        return (f"{k - len(absent)} of {k} classes present"
                + (f" (absent: {', '.join(absent)})" if absent else "")
                + f", {cfg.class_weights.replace('_', '-')} class weights", {"stats": stats})

    # 6. train
    def train_stage():
        threads = cfg.threads or cpu_threads()
        run("train", ["train", "--train", tr, "--val", va, "--class-map", "cityscapes",
                      "--threads", threads,
                      "--out", run_dir, "--overwrite",
                      *(["--epochs", cfg.epochs] if cfg.epochs else []),
                      "--batch-size", cfg.batch_size,
                      "--lr", cfg.lr, "--crop", crop, "--scale", "1",
                      "--base-channels", cfg.base_channels,
                      "--class-weights", stats, "--class-weight-kind", cfg.class_weights,
                      "--workers", 0, "--seed", cfg.seed,
                      "--device", cfg.device, "--time-budget", cfg.train_minutes, "--cache",
                      "--no-tensorboard"])
        best = json.loads((run_dir / "best_scores.json").read_text()) if (
            run_dir / "best_scores.json").exists() else {}
        epochs_done = max(0, _count_lines(run_dir / "metrics.csv") - 1)
        miou = best.get("mIoU")
        what = (f"U-Net (base {cfg.base_channels}), {epochs_done} epochs of {crop} crops "
                f"({threads} CPU thread{'s' if threads > 1 else ''})")
        return (f"{what}, best split-val mIoU {miou:.3f}" if isinstance(miou, float) else what,
                {"checkpoint": run_dir / "best.pt", "curves": run_dir / "curves.png"})

    return [("synthetic data", synth_stage), ("cityscapes gen-gt", gen_gt_stage),
            ("odgt create", create_stage), ("odgt split", split_stage),
            ("odgt stats", stats_stage), ("train", train_stage)]


def _model_stages(cfg: DemoConfig, run: Runner, summary: DemoSummary, paths: _DemoPaths,
                  jobs: list[str]) -> list[tuple[str, Stage]]:
    """Stages 7-11: predict val, evaluate, overlays, predict test, submission zip."""
    out, data, ckpt = paths.out, paths.data, paths.ckpt
    val_images, test_images = paths.val_images, paths.test_images
    pred_val, pred_overlay, pred_test = paths.pred_val, paths.pred_overlay, paths.pred_test
    eval_json, eval_png, submission = paths.eval_json, paths.eval_png, paths.submission
    size = f"{cfg.width}x{cfg.height}"
    dev = [] if cfg.device == "auto" else ["--device", cfg.device]

    # 7. predict the official val split (labelIds, the Cityscapes benchmark format)
    def predict_val_stage():
        run("predict-val", ["predict", ckpt, val_images, pred_val, "--format", "labelIds",
                            "--overwrite", "-q", *dev])
        n = len(list(pred_val.rglob("*.png")))
        return f"{n} val frames -> labelIds PNGs", {"predictions": pred_val}

    # 8. evaluate with the Cityscapes protocol (IoU, iIoU, categories)
    def evaluate_stage():
        run("evaluate", ["evaluate", "cityscapes", "--pred", pred_val, "--gt", data, "--split",
                         "val", "--json", eval_json, "--plot", eval_png, "--cache",
                         out / "cache" / "eval-gt", "-q", *jobs])
        doc = json.loads(eval_json.read_text())
        summary.scores.update(_cityscapes_scores(doc))
        return ((f"val mIoU {summary.scores['val mIoU']:.3f}, iIoU "
                 f"{summary.scores.get('val iIoU', float('nan')):.3f}, category mIoU "
                 f"{summary.scores.get('val category mIoU', float('nan')):.3f}"),
                {"scores": eval_json, "confusion": eval_png})

    # 9. overlays to look at
    def overlay_stage():
        run("predict-overlay", ["predict", ckpt, val_images, pred_overlay, "--format", "overlay",
                                "--overwrite", "-q", *dev])
        files = sorted(p for p in pred_overlay.rglob("*") if p.is_file())
        if not files:
            raise DemoError(pred_overlay, "predict wrote no overlay image")
        frame = files[0].name.split("_leftImg8bit")[0]
        city = frame.rsplit("_", 2)[0]
        figure = out / "overlay.png"
        comparison_png(val_images / city / f"{frame}_leftImg8bit.png",
                       data / "gtFine" / "val" / city / f"{frame}_gtFine_labelIds.png",
                       next(pred_val.rglob(f"{frame}*.png")), figure)
        run.note("overlay", f"{figure}: camera | ground truth | prediction of {frame} "
                            "(segprep.demo.comparison_png)")
        summary.artefacts["overlay"] = _rel(figure)
        return (f"{len(files)} overlays; camera | ground truth | prediction of {frame}",
                {"overlay": figure, "overlays": pred_overlay})

    # 10. predict the test split (its JSONs hold only void objects, as the official release)
    def predict_test_stage():
        run("predict-test", ["predict", ckpt, test_images, pred_test, "--format", "labelIds",
                             "--overwrite", "-q", *dev])
        n = len(list(pred_test.rglob("*.png")))
        return f"{n} test frames -> labelIds PNGs", {"predictions": pred_test}

    # 11. submission zip, validated against the test split's frames
    def submit_stage():
        run("submit", ["submit", "cityscapes", pred_test, "--root", data, "--split", "test",
                       "-o", submission, "--size", size, "-q", *jobs])
        import zipfile

        with zipfile.ZipFile(submission) as zf:
            n = len([i for i in zf.infolist() if not i.is_dir()])
        return f"{n} predictions, validated", {"zip": submission}

    return [("predict val", predict_val_stage), ("evaluate", evaluate_stage),
            ("predict overlays", overlay_stage), ("predict test", predict_test_stage),
            ("submit cityscapes", submit_stage)]


def run_demo(cfg: DemoConfig, cli: Any, echo: Callable[[str], None] | None = None
             ) -> DemoSummary:
    """Run the whole demo pipeline (see the module docstring).

    Args:
        cfg: settings.
        cli: the root ``segprep`` click group whose commands the demo runs.
        echo: where progress lines go (default: ``click.echo`` to stdout).

    Returns:
        a :class:`DemoSummary` (also written to ``OUT/summary.json``).

    Raises:
        DemoError: the output folder is unusable, or a stage failed.
    """
    t_start = time.perf_counter()
    out = Path(cfg.out)
    _prepare_out(out)
    run = Runner(out, cli, cfg.verbose)
    summary = DemoSummary(out=_rel(out))
    jobs = [] if cfg.jobs is None else ["-j", str(cfg.jobs)]
    paths = _DemoPaths(out)
    stages = _data_stages(cfg, run, paths, jobs) + _model_stages(cfg, run, summary, paths, jobs)
    stage = _stage_runner(cfg, summary, echo, total=len(stages))
    for name, fn in stages:
        stage(name, fn)

    summary.artefacts.update({"dataset": _rel(paths.data), "manifests": _rel(paths.odgt_dir),
                              "class stats": _rel(paths.stats), "checkpoint": _rel(paths.ckpt),
                              "training curves": _rel(paths.run_dir / "curves.png"),
                              "val predictions": _rel(paths.pred_val),
                              "scores": _rel(paths.eval_json),
                              "confusion matrix": _rel(paths.eval_png),
                              "submission": _rel(paths.submission),
                              "commands": _rel(run.commands), "logs": _rel(run.logs)})
    if "overlay" in summary.artefacts:  # last: the one thing to open
        summary.artefacts["overlay"] = summary.artefacts.pop("overlay")
    summary.seconds = time.perf_counter() - t_start
    _write_summary(out, summary)
    return summary


def comparison_png(image: str | os.PathLike, gt_label_ids: str | os.PathLike,
                   pred_label_ids: str | os.PathLike, out: str | os.PathLike,
                   alpha: float = 0.5, class_map: str = "cityscapes") -> None:
    """Write a figure of three stacked panels: the camera image, the image blended with the
    ground-truth colours, and with the predicted colours (Cityscapes label-id palette).

    Args:
        image: ``(H, W, 3)`` camera image file.
        gt_label_ids, pred_label_ids: ``(H, W)`` uint8 labelIds PNGs of the same size.
        out: PNG to write (``(3H, W, 3)`` uint8), atomically.
        alpha: weight of the colours in the blends.
        class_map: the label table whose ``id_colors`` colour the panels.

    Raises:
        SegprepError: unreadable inputs or sizes that differ.
    """
    import cv2
    import numpy as np

    from segprep import class_maps
    from segprep.io import read_image, read_png, write_png

    cm = class_maps.load(class_map)
    img = read_image(image)
    panels = [img]
    for path in (gt_label_ids, pred_label_ids):
        lab = read_png(path)
        if lab.shape != img.shape[:2]:
            raise SegprepError(path, f"size {lab.shape[1]}x{lab.shape[0]} differs from the "
                                     f"image's {img.shape[1]}x{img.shape[0]}")
        color = cm.id_colors[lab].astype(np.float32)
        panels.append((img * (1 - alpha) + color * alpha).astype(np.uint8))
    fig = np.ascontiguousarray(np.concatenate(panels, axis=0))
    h = img.shape[0]
    scale = max(0.35, img.shape[1] / 1200)
    for k, text in enumerate(("camera", "ground truth", "prediction")):
        org = (8, k * h + int(22 * scale / 0.45))
        cv2.putText(fig, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(fig, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1,
                    cv2.LINE_AA)
    write_png(out, fig)


def _cityscapes_scores(doc: dict[str, Any]) -> dict[str, float]:
    """Headline numbers from a cityscapesScripts-format results JSON."""
    keys = {"averageScoreClasses": "val mIoU", "averageScoreInstClasses": "val iIoU",
            "averageScoreCategories": "val category mIoU"}
    return {name: float(doc[k]) for k, name in keys.items()
            if isinstance(doc.get(k), (int, float))}


def _write_summary(out: Path, summary: DemoSummary) -> None:
    from segprep.io import atomic_write_text

    atomic_write_text(out / "summary.json", json.dumps(summary.to_dict(), indent=2) + "\n")


def print_summary(summary: DemoSummary, echo: Callable[[str], None] | None = None) -> None:
    """Print the end-of-demo summary: scores, where every artefact is, the overlay to look at."""
    import click

    say = echo or click.echo
    say("")
    say(f"segprep demo finished in {summary.seconds:.0f} s")
    for key, value in summary.scores.items():
        say(f"  {key:<22} {value:.3f}" if isinstance(value, float) else f"  {key:<22} {value}")
    for key, value in summary.artefacts.items():
        say(f"  {key:<22} {value}")
