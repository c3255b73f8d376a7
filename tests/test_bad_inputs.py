"""The bad-input corpus (issue 14): segprep used as a new user would, with bad files, unwritable
outputs, outputs that would replace inputs, kills and Ctrl-C.

Every case runs the real CLI and asserts the exit status, that the failure is reported on one
line ``segprep: error: <file>: <what is wrong>`` naming the file (no internal object, no bytes,
no tuple), that no traceback is printed, and that the inputs are untouched (hashes before and
after). Datasets are small generated files plus symlinks to the real samples in
``../shared/data`` (never copies inside the project). Cases that start subprocesses of several
seconds (kills, training) are marked ``slow``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import require_data
from PIL import Image

from segprep.cli.main import cli

PACKAGE = Path(__file__).resolve().parent.parent / "segprep"
FORBIDDEN = ("Traceback", "Job(", "<_io.", "object at 0x", "b'", 'b"', "PosixPath(", "('",
             "Error: [Errno")
"""What an error line never contains: a traceback, an internal object's repr (``FrameJob(…)``,
``BddJob(…)``, ``<_io.BytesIO object at 0x…>``), raw bytes, a tuple of paths, a raw OSError."""


# ----------------------------------------------------------------------------------- helpers
def check_output(text: str) -> list[str]:
    """The ``segprep: error:`` lines of ``text``, each checked to be ``<file>: <what>``."""
    for bad in FORBIDDEN:
        assert bad not in text, f"{bad!r} in output:\n{text}"
    errors = [ln for ln in text.splitlines() if ln.startswith("segprep: error: ")]
    for ln in errors:
        if ln == "segprep: error: interrupted":  # Ctrl-C: no file to name
            continue
        assert re.match(r"^segprep: error: \S[^:]*(:\d+)?: \S", ln), ln
    return errors


def run(*args: object, code: int | None = None) -> tuple[int, str, list[str]]:
    """Run ``segprep ARGS`` in-process; returns (exit status, output, error lines)."""
    res = CliRunner().invoke(cli, [str(a) for a in args])
    if res.exception is not None and not isinstance(res.exception, SystemExit):
        raise AssertionError(f"segprep {' '.join(map(str, args))} raised "
                             f"{type(res.exception).__name__}: {res.exception}\n{res.output}")
    errors = check_output(res.output)
    if code is not None:
        assert res.exit_code == code, f"exit {res.exit_code}, expected {code}:\n{res.output}"
    return res.exit_code, res.output, errors


def run_sub(*args: object, env: dict | None = None, cwd: Path | None = None,
            timeout: float = 120) -> subprocess.CompletedProcess:
    """Run ``segprep ARGS`` as a separate process (what a user's shell does)."""
    return subprocess.run([sys.executable, "-m", "segprep", *map(str, args)], capture_output=True,
                          text=True, env=env, cwd=cwd, timeout=timeout)


def one_error(errors: list[str], where: str | Path, *what: str) -> str:
    """Exactly one error line, naming ``where`` and containing each of ``what``."""
    assert len(errors) == 1, errors
    line = errors[0]
    assert str(where) in line, (str(where), line)
    for w in what:
        assert w in line, (w, line)
    return line


def digest(*roots: Path) -> dict[str, str]:
    """sha1 of every file (and the name of every folder) under ``roots``."""
    out = {}
    for root in roots:
        for p in sorted(Path(root).rglob("*")) if Path(root).is_dir() else [Path(root)]:
            out[str(p)] = (hashlib.sha1(p.read_bytes()).hexdigest() if p.is_file() else "dir")
    return out


def mask_png(path: Path, arr: np.ndarray) -> None:
    """A gray PNG (8-bit for uint8, 16-bit for uint16)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)


@pytest.fixture()
def blocker(tmp_path: Path) -> Path:
    """An existing FILE: any output path under it cannot be written (tests run as root, where a
    chmod'ed folder would not stop a write)."""
    f = tmp_path / "a_file"
    f.write_text("not a folder\n")
    return f


@pytest.fixture()
def ds(tmp_path: Path) -> Path:
    """A small generic dataset: 6 JPEG images, 3-class masks, an .odgt, predictions."""
    root = tmp_path / "ds"
    rng = np.random.default_rng(0)
    for i in range(6):
        (root / "images").mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (24, 32, 3), dtype=np.uint8)).save(
            root / "images" / f"f{i}.jpg", quality=90)
        mask_png(root / "masks" / f"f{i}.png", rng.integers(0, 3, (24, 32), dtype=np.uint8))
        mask_png(root / "preds" / f"f{i}.png", rng.integers(0, 3, (24, 32), dtype=np.uint8))
    run("odgt", "create", "--images", root / "images", "--masks", root / "masks",
        "-o", root / "all.odgt", code=0)
    return root


# ------------------------------------------------------------------ 1. outputs replacing inputs
def _index_masks(folder: Path, n: int = 3) -> None:
    rng = np.random.default_rng(1)
    for i in range(n):
        mask_png(folder / f"0001TP_{i:05d}.png", rng.integers(0, 12, (24, 32), dtype=np.uint8))


@pytest.mark.parametrize("flags", [["--overwrite"], []])
def test_camvid_convert_into_its_own_folder_is_refused(tmp_path, flags):
    src = tmp_path / "cvin"
    _index_masks(src)
    before = digest(src)
    _, _, errors = run("camvid", "convert", src, src, "--classes", "11", "--input", "index",
                       *flags, code=2)
    one_error(errors, src / "0001TP_00000.png", "would replace one of the command's input")
    assert digest(src) == before
    # the same folder spelled differently is the same folder
    run("camvid", "convert", src, tmp_path / "x" / ".." / "cvin", "--classes", "11", "--input",
        "index", *flags, code=2)
    assert digest(src) == before


def test_bdd100k_convert_into_its_own_folder_is_refused(tmp_path):
    real = sorted(require_data("bdd100k", "seg", "color_labels", "train").glob("*.png"))[:2]
    src = tmp_path / "bddin"
    src.mkdir()
    for f in real:
        (src / f.name).symlink_to(f)
        # an output named like an input: <frame>_train_id.png beside <frame>_train_color.png
        (src / f.name.replace("_train_color", "_train_id")).symlink_to(f)
    before = digest(src)
    _, _, errors = run("bdd100k", "convert", src, src, "--overwrite", code=2)
    one_error(errors, "_train_id.png", "would replace one of the command's input")
    assert digest(src) == before


def test_output_folder_inside_the_input_folder_is_not_read_back(tmp_path):
    src = tmp_path / "nest"
    _index_masks(src)
    before = digest(*sorted(src.glob("*.png")))
    for rerun in (False, True):
        code, out, _ = run("camvid", "convert", src, src / "preds", "--classes", "11",
                           "--input", "index", code=0)
        assert ("0 done, 3 skipped" if rerun else "3 done, 0 skipped") in out
    assert sorted(p.name for p in (src / "preds").iterdir()) == [
        f"0001TP_{i:05d}.png" for i in range(3)]
    assert not (src / "preds" / "preds").exists()
    assert digest(*sorted(src.glob("*.png"))) == before


# ------------------------------------------------------- 5. every single-file output unwritable
def _odgt_cases(ds: Path, blocker: Path) -> list[tuple[str, list]]:
    odgt = ds / "all.odgt"
    return [
        ("odgt create -o", ["odgt", "create", "--images", ds / "images", "--masks", ds / "masks",
                            "-o", blocker / "x.odgt"]),
        ("odgt split -o", ["odgt", "split", odgt, "-o", blocker / "s", "--val", "0.34",
                           "--test", "0"]),
        ("odgt stats -o", ["odgt", "stats", odgt, "--num-classes", "3",
                           "-o", blocker / "s.json"]),
        ("odgt stats --plot", ["odgt", "stats", odgt, "--num-classes", "3",
                               "--plot", blocker / "s.png"]),
        ("odgt validate --json", ["odgt", "validate", odgt, "--num-classes", "3",
                                  "--json", blocker / "v.json"]),
        ("evaluate --json", ["evaluate", "odgt", odgt, "--pred", ds / "preds", "-k", "3",
                             "--no-cache", "--json", blocker / "e.json"]),
        ("evaluate --plot", ["evaluate", "odgt", odgt, "--pred", ds / "preds", "-k", "3",
                             "--no-cache", "--plot", blocker / "cm.png"]),
        ("submit -o", ["submit", "bdd100k", ds / "preds", "--images", ds / "images",
                       "--size", "32x24", "-o", blocker / "sub.zip"]),
    ]


CASE_NAMES = ["odgt create -o", "odgt split -o", "odgt stats -o", "odgt stats --plot",
              "odgt validate --json", "evaluate --json", "evaluate --plot", "submit -o"]


@pytest.mark.parametrize("name", CASE_NAMES)
def test_unwritable_single_file_output_is_one_error_line(ds, blocker, name):
    args = dict(_odgt_cases(ds, blocker))[name]
    before = digest(ds)
    code, out, errors = run(*args)
    assert code in (1, 2)
    one_error(errors, blocker, f"{blocker} is a file, not a folder")
    assert digest(ds) == before  # nothing written beside the inputs either
    assert blocker.read_text() == "not a folder\n"


def test_unwritable_json_is_refused_before_the_work(ds, blocker):
    """--json/--plot/-o are checked before masks are decoded: no scores or table printed first."""
    _, out, _ = run("evaluate", "odgt", ds / "all.odgt", "--pred", ds / "preds", "-k", "3",
                    "--no-cache", "--json", blocker / "e.json", code=2)
    assert "mIoU" not in out
    _, out, _ = run("odgt", "stats", ds / "all.odgt", "--num-classes", "3",
                    "-o", blocker / "s.json", code=2)
    assert "pixels" not in out


def test_output_that_is_a_folder_is_refused(ds):
    run("odgt", "validate", ds / "all.odgt", "--json", ds / "images", code=2)
    run("submit", "bdd100k", ds / "preds", "--images", ds / "images", "--size", "32x24",
        "-o", ds / "images", code=2)


def test_stats_never_replaces_an_existing_output_without_overwrite(ds):
    out = ds / "stats.json"
    out.write_text("precious\n")
    _, text, _ = run("odgt", "stats", ds / "all.odgt", "--num-classes", "3", "-o", out, code=0)
    assert out.read_text() == "precious\n"
    assert (ds / "stats.png").is_file()  # the missing chart alone is drawn
    assert "exists, kept" in text
    run("odgt", "stats", ds / "all.odgt", "--num-classes", "3", "-o", out, "--overwrite", code=0)
    assert json.loads(out.read_text())["num_classes"] == 3


def test_unwritable_ground_truth_cache_is_a_warning_not_a_failure(ds, blocker):
    _, out, errors = run("evaluate", "odgt", ds / "all.odgt", "--pred", ds / "preds", "-k", "3",
                         "--cache", blocker / "cache", code=0)
    assert errors == []
    assert "mIoU" in out
    warn = [ln for ln in out.splitlines() if ln.startswith("segprep: warning:")]
    assert len(warn) == 1 and "cache cannot be written" in warn[0], out


# ------------------------------------------- 6. an unwritable output folder is reported once
def _cityscapes_jsons(root: Path, n: int = 3, width: int = 64, height: int = 32) -> None:
    city = root / "gtFine" / "val" / "x"
    city.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        doc = {"imgWidth": width, "imgHeight": height, "objects": [
            {"label": "road", "polygon": [[0, 16], [63, 16], [63, 31], [0, 31]]},
            {"label": "car", "polygon": [[10, 10], [30, 10], [30, 20], [10, 20]]}]}
        (city / f"x_{i:06d}_000019_gtFine_polygons.json").write_text(json.dumps(doc))


def test_unwritable_output_folder_is_one_line_for_every_batch_command(tmp_path, ds, blocker):
    cvin, cs = tmp_path / "cvin", tmp_path / "cs"
    _index_masks(cvin)
    _cityscapes_jsons(cs)
    bdd = require_data("bdd100k", "seg", "color_labels", "train")
    bdd_in = tmp_path / "bddin"
    bdd_in.mkdir()
    for f in sorted(bdd.glob("*.png"))[:2]:
        (bdd_in / f.name).symlink_to(f)
    before = digest(cvin, cs, bdd_in, ds)
    cases = [
        ["camvid", "convert", cvin, blocker / "out", "--classes", "11", "--input", "index"],
        ["bdd100k", "convert", bdd_in, blocker / "out"],
        ["cityscapes", "gen-gt", cs, "-o", blocker / "out", "--source", "polygons"],
        ["cityscapes", "gen-gt", cs, "-o", blocker / "out", "--parallel", "processes", "-j", "2"],
        ["odgt", "export-csail", ds / "all.odgt", blocker / "csail"],
        ["odgt", "export-csail", ds / "all.odgt", tmp_path / "csail"],  # csail/masks is a file
    ]
    (tmp_path / "csail").mkdir()
    (tmp_path / "csail" / "masks").write_text("in the way\n")
    for args in cases:
        _, _, errors = run(*args, code=2)
        one_error(errors, "", "is a file, not a folder")
    assert digest(cvin, cs, bdd_in, ds) == before


def test_bad_files_are_named_one_line_each(tmp_path):
    cvin = tmp_path / "cvin"
    _index_masks(cvin, 2)
    (cvin / "0001TP_00007.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)  # truncated
    (cvin / "0001TP_00008.png").write_text("this is text\n")
    mask_png(cvin / "0001TP_00009.png", np.full((24, 32), 40, np.uint8))  # not a SegNet class
    before = digest(cvin)
    _, out, errors = run("camvid", "convert", cvin, tmp_path / "out", "--classes", "11",
                         "--input", "index", code=1)
    assert "2 done, 0 skipped, 3 failed" in out
    assert sorted(e[len("segprep: error: "):].split(": ")[0] for e in errors) == sorted(
        str(cvin / f"0001TP_0000{i}.png") for i in (7, 8, 9)), errors
    assert digest(cvin) == before


def test_gen_gt_bad_jsons_and_an_absurd_size_before_allocation(tmp_path):
    cs = tmp_path / "cs"
    _cityscapes_jsons(cs, 1)
    city = cs / "gtFine" / "val" / "x"
    bad = {
        "x_000100_000019": '{"imgWidth": 2000000, "imgHeight": 1024, "objects": []}',
        "x_000101_000019": '{"imgWidth": 20, "imgHe',
        "x_000102_000019": "[1, 2]",
        "x_000103_000019": '{"imgWidth": "wide", "imgHeight": 10, "objects": []}',
        "x_000104_000019": '{"imgWidth": 20, "imgHeight": 10, "objects": {"a": 1}}',
        "x_000105_000019": '{"imgWidth": 20, "imgHeight": 10, "objects": [{"label": "nonsense",'
                           ' "polygon": [[0, 0], [5, 0], [5, 5]]}]}',
    }
    for stem, text in bad.items():
        (city / f"{stem}_gtFine_polygons.json").write_text(text)
    before = digest(cs)
    t0 = time.perf_counter()
    _, out, errors = run("cityscapes", "gen-gt", cs, "-o", tmp_path / "out", "-j", "1", code=1)
    assert time.perf_counter() - t0 < 30  # no 2-gigapixel allocation
    assert "1 done, 0 skipped, 6 failed" in out
    by_stem = {stem: [e for e in errors if stem in e] for stem in bad}
    assert all(len(v) == 1 for v in by_stem.values()), errors
    assert "image size 2000000x1024 is larger than segprep reads" in by_stem["x_000100_000019"][0]
    assert "malformed JSON" in by_stem["x_000101_000019"][0]
    assert "expected a JSON object, got list" in by_stem["x_000102_000019"][0]
    assert "imgWidth/imgHeight must be integers" in by_stem["x_000103_000019"][0]
    assert "'objects' must be a list" in by_stem["x_000104_000019"][0]
    assert "unknown label 'nonsense'" in by_stem["x_000105_000019"][0]
    assert digest(cs) == before


# --------------------------------------------------------------- 7. Carvana-style GIF masks
@pytest.fixture()
def carvana(tmp_path: Path) -> Path:
    """Carvana's layout: train/<id>_<nn>.jpg and train_masks/<id>_<nn>_mask.gif (mode P, 0/1)."""
    root = tmp_path / "carvana"
    rng = np.random.default_rng(2)
    (root / "train").mkdir(parents=True)
    (root / "train_masks").mkdir()
    for i in range(6):
        stem = f"{i:04x}abcd_{i + 1:02d}"
        Image.fromarray(rng.integers(0, 255, (40, 60, 3), dtype=np.uint8)).save(
            root / "train" / f"{stem}.jpg", quality=90)
        m = np.zeros((40, 60), np.uint8)
        m[8 + i:30, 12:40 + i] = 1
        im = Image.fromarray(m, "P")
        im.putpalette([0, 0, 0, 255, 255, 255] + [0] * 762)
        im.save(root / "train_masks" / f"{stem}_mask.gif")
    return root


def test_carvana_gif_masks_create_validate_stats_split_export(carvana):
    before = digest(carvana / "train", carvana / "train_masks")
    odgt = carvana / "all.odgt"
    run("odgt", "create", "--images", carvana / "train", "--masks", carvana / "train_masks",
        "--mask-suffix", "_mask.gif", "-o", odgt, code=0)
    assert len(odgt.read_text().splitlines()) == 6
    _, out, _ = run("odgt", "validate", odgt, "--num-classes", "2", code=0)
    assert "6 ok" in out
    run("odgt", "stats", odgt, "--num-classes", "2", "-o", carvana / "stats.json", code=0)
    st = json.loads((carvana / "stats.json").read_text())
    masks = [np.asarray(Image.open(p)) for p in sorted((carvana / "train_masks").glob("*.gif"))]
    assert st["pixel_count"] == [sum(int((m == c).sum()) for m in masks) for c in (0, 1)]
    run("odgt", "export-csail", odgt, carvana / "csail", code=0)
    exported = sorted((carvana / "csail" / "train_masks").iterdir())
    assert [p.name for p in exported] == [p.name.replace(".gif", ".png") for p in
                                          sorted((carvana / "train_masks").glob("*.gif"))]
    for p, m in zip(exported, masks):
        assert p.read_bytes().startswith(b"\x89PNG")  # a PNG named .png, not a .gif
        assert np.array_equal(np.asarray(Image.open(p)), m + 1)
    assert digest(carvana / "train", carvana / "train_masks") == before


@pytest.mark.slow
def test_carvana_gif_masks_train_and_predict(carvana):
    odgt = carvana / "all.odgt"
    run("odgt", "create", "--images", carvana / "train", "--masks", carvana / "train_masks",
        "--mask-suffix", "_mask.gif", "-o", odgt, code=0)
    run("odgt", "split", odgt, "-o", carvana / "s", "--val", "0.34", "--test", "0", code=0)
    res = run_sub("train", "--train", carvana / "s_train.odgt", "--val", carvana / "s_val.odgt",
                  "--num-classes", "2", "--epochs", "1", "--batch-size", "2",
                  "--out", carvana / "run", timeout=600)
    assert res.returncode == 0, res.stderr
    check_output(res.stdout + res.stderr)
    assert "3 channels" not in res.stderr  # the false "mask has 3 channels" of palette GIFs
    res = run_sub("predict", carvana / "run" / "best.pt", carvana / "train", carvana / "preds",
                  timeout=600)
    assert res.returncode == 0, res.stderr
    preds = sorted((carvana / "preds").rglob("*.png"))
    assert len(preds) == 6
    assert all(np.asarray(Image.open(p)).max() <= 1 for p in preds)


# ------------------------------------------------- 8. one rule for duplicates and 16-bit masks
def test_evaluate_odgt_refuses_two_predictions_of_one_stem(ds):
    (ds / "preds" / "a").mkdir()
    (ds / "preds" / "b").mkdir()
    for sub in ("a", "b"):
        (ds / "preds" / sub / "f0.png").write_bytes((ds / "preds" / "f0.png").read_bytes())
    (ds / "preds" / "f0.png").unlink()
    _, out, errors = run("evaluate", "odgt", ds / "all.odgt", "--pred", ds / "preds", "-k", "3",
                         "--no-cache", code=2)
    one_error(errors, ds / "preds", "several predictions", "a/f0.png, b/f0.png")
    assert "mIoU" not in out


def test_stats_applies_the_rules_of_validate(ds):
    lines = (ds / "all.odgt").read_text().splitlines()
    dup = ds / "dup.odgt"
    dup.write_text("\n".join(lines + lines[:1]) + "\n")
    mask_png(ds / "m16.png", np.ones((24, 32), np.uint16))
    m16 = ds / "m16.odgt"
    m16.write_text(lines[0].replace("masks/f0.png", "m16.png") + "\n")
    for odgt, what in ((dup, "duplicate image images/f0.jpg (first on line 1)"),
                       (m16, "has mode I;16, expected a single-channel 8-bit mask")):
        _, _, v_errors = run("odgt", "validate", odgt, "--num-classes", "3", code=1)
        _, _, s_errors = run("odgt", "stats", odgt, "--num-classes", "3",
                             "-o", ds / "s.json", code=1)
        assert any(what in e for e in v_errors), v_errors
        assert any(what in e for e in s_errors), s_errors
        assert not (ds / "s.json").exists()


# ----------------------------------------------------------------------------- 9. numba cache
def test_numba_with_an_unwritable_cache_folder_warns_once_and_writes_nothing_in_the_package(
        tmp_path, blocker):
    cs = tmp_path / "cs"
    _cityscapes_jsons(cs, 2)
    start = time.time()
    env = {k: v for k, v in os.environ.items() if k not in ("NUMBA_CACHE_DIR",)}
    env["XDG_CACHE_HOME"] = str(blocker / "cache")  # under a file: cannot be created
    env["HOME"] = str(blocker / "home")
    res = run_sub("cityscapes", "gen-gt", cs, "-o", tmp_path / "out", "--source", "polygons",
                  "-j", "2", env=env, timeout=300)
    assert res.returncode == 0, res.stderr
    check_output(res.stdout + res.stderr)
    warnings = [ln for ln in res.stderr.splitlines() if ln.startswith("segprep: warning:")]
    assert len(warnings) == 1 and "numba" in warnings[0], res.stderr
    assert len(list((tmp_path / "out").rglob("*_labelTrainIds.png"))) == 2
    # with a writable cache folder, the kernels are cached there (and still not in the package)
    env["XDG_CACHE_HOME"] = str(tmp_path / "cache")
    res = run_sub("cityscapes", "gen-gt", cs, "-o", tmp_path / "out2", "--source", "polygons",
                  "-j", "1", env=env, timeout=300)
    assert res.returncode == 0, res.stderr
    assert "segprep: warning:" not in res.stderr, res.stderr
    assert list((tmp_path / "cache" / "segprep" / "numba").rglob("*.nbi"))
    written = [p for p in PACKAGE.rglob("*") if p.is_file() and p.stat().st_mtime >= start
               and p.suffix in (".nbi", ".nbc")]
    assert written == []


# --------------------------------------------------------- 10. kills, stale temps and Ctrl-C
def _real_frames(tmp_path: Path, n: int = 3) -> Path:
    """A Cityscapes root of ``n`` real lindau val frames (symlinks to ../shared/data)."""
    src = require_data("cityscapes", "gtFine", "val", "lindau")
    city = tmp_path / "cs" / "gtFine" / "val" / "lindau"
    city.mkdir(parents=True)
    for j in sorted(src.glob("*_polygons.json"))[:n]:
        base = j.name[: -len("_polygons.json")]
        for f in src.glob(base + "_*"):
            (city / f.name).symlink_to(f)
    return tmp_path / "cs"


def test_gen_gt_removes_the_temp_files_of_a_killed_run(tmp_path):
    root = _real_frames(tmp_path)
    out = tmp_path / "out" / "gtFine" / "val" / "lindau"
    out.mkdir(parents=True)
    dead = out / ".lindau_000000_000019_gtFine_labelTrainIds.png.4194399.k1ll3d.tmp"
    dead.write_bytes(b"")  # what a kill between mkstemp and rename leaves (pid long gone)
    alive = out / f".lindau_000001_000019_gtFine_labelTrainIds.png.{os.getpid()}.xyz.tmp"
    alive.write_bytes(b"")  # a live process's file in flight: left alone
    before = digest(root)
    _, out_text, _ = run("cityscapes", "gen-gt", root, "-o", tmp_path / "out", code=0)
    assert "3 done" in out_text
    assert not dead.exists()
    assert alive.exists()
    assert digest(root) == before


def test_single_file_outputs_remove_the_temp_files_of_a_killed_run(ds):
    dead = ds / ".stats.json.4194399.k1ll3d.tmp"
    other = ds / ".other.json.4194399.k1ll3d.tmp"  # another output's: not this command's business
    dead.write_bytes(b"")
    other.write_bytes(b"")
    run("odgt", "stats", ds / "all.odgt", "--num-classes", "3", "-o", ds / "stats.json", code=0)
    assert not dead.exists() and other.exists()
    assert json.loads((ds / "stats.json").read_text())["num_classes"] == 3


def _spawn(args: list, cwd: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "segprep", *map(str, args)], cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def _wait_for_outputs(folder: Path, proc: subprocess.Popen, n: int = 1,
                      timeout: float = 120) -> None:
    t0 = time.time()
    while len(list(folder.rglob("*.png"))) < n:
        assert proc.poll() is None, proc.communicate()
        assert time.time() - t0 < timeout
        time.sleep(0.05)


def _group_alive(pgid: int) -> list[int]:
    """Running processes of the process group ``pgid`` (zombies, already dead, left out)."""
    pids = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[-1].split()  # state ppid pgrp ...
            if int(fields[2]) == pgid and fields[0] != "Z":
                pids.append(int(d.name))
    return pids


def test_ctrl_c_exits_130_with_one_line(tmp_path):
    root = require_data("cityscapes")
    out = tmp_path / "out"
    proc = _spawn(["cityscapes", "gen-gt", root, "-o", out, "--split", "train", "-j", "1",
                   "--source", "polygons", "--targets", "trainIds,color,instanceIds"], tmp_path)
    _wait_for_outputs(out, proc)
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the whole group
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    errors = check_output(stdout + stderr)
    assert errors == ["segprep: error: interrupted"]
    assert not list(out.rglob("*.tmp")) and not list(out.rglob(".*"))


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGINT])
def test_parallel_processes_leave_no_worker_after_a_kill_and_resume(tmp_path, signum):
    root = require_data("cityscapes")
    out = tmp_path / "out"
    args = ["cityscapes", "gen-gt", root, "-o", out, "--split", "train", "--source", "polygons",
            "--targets", "trainIds,color,instanceIds", "--parallel", "processes", "-j", "2"]
    proc = _spawn(args, tmp_path)
    _wait_for_outputs(out, proc, n=6)
    if signum == signal.SIGKILL:
        os.kill(proc.pid, signum)  # the parent alone, as the OOM killer or `kill -9` does
    else:
        os.killpg(proc.pid, signum)
    proc.communicate(timeout=60)
    t0 = time.time()
    while _group_alive(proc.pid) and time.time() - t0 < 10:
        time.sleep(0.1)
    assert _group_alive(proc.pid) == [], "worker processes outlived their parent"
    res = run_sub(*args, cwd=tmp_path, timeout=600)  # the rerun resumes and completes
    assert res.returncode == 0, res.stderr
    check_output(res.stdout + res.stderr)
    assert len(list(out.rglob("*.png"))) == 300
    assert not [p for p in out.rglob("*") if p.name.startswith(".")]
    for p in sorted(out.rglob("*_labelTrainIds.png"))[:20]:
        Image.open(p).load()  # complete PNGs, never truncated


def test_a_worker_process_that_dies_fails_its_items_and_the_batch_goes_on():
    from segprep.io import run_batch

    outcomes = list(run_batch(_die_on_three, list(range(8)), jobs=2, prefer="processes",
                              quiet=True))
    assert sorted(o.item for o in outcomes) == list(range(8))
    failed = [o for o in outcomes if not o.ok]
    assert 3 in [o.item for o in failed]
    assert all("worker process died" in o.error for o in failed)
    assert {o.item: o.value for o in outcomes if o.ok}.get(7) == 49


def _die_on_three(x: int) -> int:
    if x == 3:
        os._exit(9)  # what the OOM killer does to a worker
    time.sleep(0.05)
    return x * x


# ---------------------------------------------------------------- train (run folder unwritable)
@pytest.mark.slow
def test_train_out_under_a_file_is_one_line(ds, blocker):
    run("odgt", "split", ds / "all.odgt", "-o", ds / "s", "--val", "0.34", "--test", "0",
        code=0)
    res = run_sub("train", "--train", ds / "s_train.odgt", "--val", ds / "s_val.odgt",
                  "--num-classes", "3", "--epochs", "1", "--out", blocker / "run", timeout=600)
    assert res.returncode in (1, 2), res.stderr
    errors = check_output(res.stdout + res.stderr)
    one_error(errors, blocker)
