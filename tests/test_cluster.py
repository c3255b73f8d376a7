"""Batch commands on a Dask cluster (``--scheduler``, segprep/io/cluster.py): on a LocalCluster of
2 worker processes, gen-gt, bdd100k convert, odgt stats and evaluate cityscapes give the same
bytes and scores as the local run; a worker that dies mid-task costs nothing (Dask reschedules
its chunk) or its items are reported and a rerun finishes them; a worker that cannot see the
input root stops the command before any work is submitted.

The real sample frames are linked (never copied) into a temporary root, a subset to keep the
suite fast; one cluster serves the whole module.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner, Result
from PIL import Image

from segprep import class_maps
from segprep.cli.main import cli
from segprep.convert import cityscapes as cs
from segprep.datasets import cityscapes as cs_data
from segprep.io import cluster, run_batch
from segprep.io.batch import BatchSummary

if os.environ.get("CI"):  # the test extra installs Dask: fail there, skip on a bare machine
    import distributed
else:
    distributed = pytest.importorskip("distributed", reason="pip install -e '.[test]'")

CS_FRAMES = {"val/lindau": 8, "test/bonn": 4}
"""Frames of each shared Cityscapes city used here (the first ones, sorted)."""
RASTERISED = 2
"""Of the val frames, this many get no official PNGs beside their JSON: gen-gt rasterises them."""


def run(*args: object) -> Result:
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def tree(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` by relative path, with its bytes."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


# ------------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def dask_cluster():
    """A LocalCluster of 2 single-threaded worker processes and a client of it; a task whose
    worker dies is tried on one more worker (allowed-failures 1) to keep the kill tests short."""
    # the tests' own callables (module-level here) travel by value: workers need not import tests/
    import cloudpickle
    import dask

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    with dask.config.set({"distributed.scheduler.allowed-failures": 1}):
        lc = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                      dashboard_address=None, silence_logs=50)
    client = distributed.Client(lc, set_as_default=False)
    yield lc.scheduler_address, client
    cluster.close_all()  # the sessions of run_batch called here directly (the CLI closes its own)
    client.close()
    lc.close()
    cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


def both_workers(client) -> None:
    # a worker killed by an earlier test is back (its nanny restarts it: seconds on idle cores,
    # over a minute measured beside two CPU-bound training runs)
    client.wait_for_workers(2, timeout=240)


@pytest.fixture(scope="module")
def cs_subset(cityscapes_root, tmp_path_factory) -> Path:
    """A Cityscapes root of symlinks to a subset of the shared frames (``RASTERISED`` val frames
    without their official PNGs)."""
    root = tmp_path_factory.mktemp("cs") / "cityscapes"
    for rel, n in CS_FRAMES.items():
        src = cityscapes_root / "gtFine" / rel
        dst = root / "gtFine" / rel
        dst.mkdir(parents=True)
        jsons = sorted(src.glob("*_gtFine_polygons.json"))[:n]
        for i, js in enumerate(jsons):
            stem = js.name[:-len("_polygons.json")]
            kinds = ["polygons.json"] + ([] if rel.startswith("val") and i < RASTERISED else
                                         ["labelIds.png", "instanceIds.png", "color.png"])
            for kind in kinds:
                (dst / f"{stem}_{kind}").symlink_to(src / f"{stem}_{kind}")
    return root


# ---------------------------------------------------------------------------------- unit parts
def test_parse_scheduler_and_chunk_sizes():
    assert cluster.parse_scheduler("local:3") == ("local", 3)
    assert cluster.parse_scheduler("tcp://10.0.0.1:8786") == ("remote", "tcp://10.0.0.1:8786")
    for bad in ("local:0", "local:x", "10.0.0.1:8786", "tcp://"):
        with pytest.raises(Exception, match="--scheduler"):
            cluster.parse_scheduler(bad)
    for n, slots in ((1, 2), (7, 2), (205, 2), (1025, 2), (100_000, 64)):
        sizes = cluster.chunk_sizes(n, slots)
        assert sum(sizes) == n
        assert max(sizes) <= cluster.MAX_CHUNK
        assert all(s >= min(n, cluster.MIN_CHUNK) for s in sizes[:-1])
        assert all(a >= b for a, b in zip(sizes, sizes[1:]))  # big chunks first
    # a few dozen tasks for the benchmark's batch, not one per frame
    assert 8 <= len(cluster.chunk_sizes(1025, 2)) <= 64


def test_worker_cached_builds_once_across_threads():
    calls = []

    def factory():
        calls.append(1)
        return object()

    got = []
    threads = [threading.Thread(target=lambda: got.append(cluster.worker_cached(("t", 1), factory)))
               for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and all(g is got[0] for g in got)


def test_without_scheduler_dask_is_never_imported(cs_subset, tmp_path):
    code = textwrap.dedent(f"""
        import sys
        from click.testing import CliRunner, Result
        from segprep.cli.main import cli
        res = CliRunner().invoke(cli, ["cityscapes", "gen-gt", {str(cs_subset)!r}, "-o",
                                       {str(tmp_path / 'o')!r}, "--split", "test", "-q"])
        assert res.exit_code == 0, res.output
        bad = [m for m in ("dask", "distributed", "segprep.io.cluster") if m in sys.modules]
        assert not bad, bad
    """)
    env = {k: v for k, v in os.environ.items() if k != cluster.SCHEDULER_ENV}
    subprocess.run([sys.executable, "-c", code], check=True, env=env)


def test_scheduler_without_dask_is_one_line(cs_subset, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed -> ImportError
    res = run("cityscapes", "gen-gt", cs_subset, "-o", tmp_path / "o", "--scheduler", "local:2")
    assert res.exit_code == 2
    assert res.output.strip() == ("segprep: error: --scheduler: needs Dask distributed: "
                                  "pip install 'segprep[dask]'")


def test_jobs_and_scheduler_exclude_each_other(cs_subset, tmp_path):
    res = run("cityscapes", "gen-gt", cs_subset, "-o", tmp_path / "o", "-j", "2",
              "--scheduler", "local:2")
    assert res.exit_code == 2 and "-j/--jobs and --scheduler exclude each other" in res.output


# ------------------------------------------------------------------------- same as locally
def test_gen_gt_same_bytes_as_local(dask_cluster, cs_subset, tmp_path):
    address, client = dask_cluster
    both_workers(client)
    targets = "trainIds,labelIds,color,instanceIds"
    local = run("cityscapes", "gen-gt", cs_subset, "-o", tmp_path / "local", "--targets",
                targets, "-j", "2")
    assert local.exit_code == 0, local.output
    res = run("cityscapes", "gen-gt", cs_subset, "-o", tmp_path / "dask", "--targets", targets,
              "--scheduler", address)
    assert res.exit_code == 0, res.output
    frames = sum(CS_FRAMES.values())
    assert f"frames: {frames} done, 0 skipped, 0 failed" in res.output
    assert f"rasterised (official) {RASTERISED}, Dask workers 2 in" in res.output
    want = tree(tmp_path / "local")
    assert len(want) == 4 * frames
    assert tree(tmp_path / "dask") == want
    # rerun: everything skipped, as locally
    again = run("cityscapes", "gen-gt", cs_subset, "-o", tmp_path / "dask", "--targets", targets,
                "--scheduler", address)
    assert f"frames: 0 done, {frames} skipped, 0 failed" in again.output


def test_bdd100k_convert_same_bytes_as_local(dask_cluster, bdd_root, tmp_path):
    address, client = dask_cluster
    both_workers(client)
    src = tmp_path / "src" / "val"
    src.mkdir(parents=True)
    for f in sorted((bdd_root / "seg" / "color_labels" / "val").glob("*_train_color.png"))[:10]:
        (src / f.name).symlink_to(f)
    local = run("bdd100k", "convert", src.parent, tmp_path / "local", "-j", "2")
    assert local.exit_code == 0, local.output
    res = run("bdd100k", "convert", src.parent, tmp_path / "dask", "--scheduler", address)
    assert res.exit_code == 0, res.output
    assert "frames: 10 done, 0 skipped, 0 failed, Dask workers 2 in" in res.output
    want = tree(tmp_path / "local")
    assert len(want) == 10 and tree(tmp_path / "dask") == want
    # the official 2018 masks of the same frames: the conversion is exact on both paths
    for name in want:
        official = bdd_root / "seg" / "labels" / "val" / Path(name).name
        assert np.array_equal(np.array(Image.open(tmp_path / "dask" / name)),
                              np.array(Image.open(official))), name


def _predictions(cs_subset: Path, out: Path, kind: str) -> None:
    """Shifted copies of the val ground truth as predictions (labelIds or trainIds)."""
    lut = class_maps.load("cityscapes").id_to_train_id
    out.mkdir()
    for lab in sorted((cs_subset / "gtFine" / "val").rglob("*_gtFine_labelIds.png")):
        a = np.roll(np.array(Image.open(lab)), 9, axis=1)
        if kind == "trainIds":
            a = lut[a]
        frame = lab.name[:-len("_gtFine_labelIds.png")]
        Image.fromarray(a).save(out / f"{frame}_leftImg8bit.png")


@pytest.mark.parametrize("kind", ["trainIds", "labelIds"])
def test_evaluate_cityscapes_same_scores_as_local(dask_cluster, cs_subset, tmp_path, kind):
    """``--pred-ids auto`` (the default): workers send value histograms, the client decides, the
    workers score; the JSON (cityscapesScripts' keys, confusion matrix included) is identical."""
    import json

    address, client = dask_cluster
    both_workers(client)
    _predictions(cs_subset, tmp_path / "pred", kind)
    base = ["evaluate", "cityscapes", "--pred", tmp_path / "pred", "--gt", cs_subset,
            "--no-cache"]
    local = run(*base, "-j", "2", "--json", tmp_path / "local.json")
    assert local.exit_code == 0, local.output
    res = run(*base, "--scheduler", address, "--json", tmp_path / "dask.json")
    assert res.exit_code == 0, res.output
    assert f"--pred-ids auto: {kind}" in res.output
    assert "evaluated on 2 Dask worker(s)" in res.output
    want = json.loads((tmp_path / "local.json").read_text())
    got = json.loads((tmp_path / "dask.json").read_text())
    want.pop("segprep"), got.pop("segprep")  # seconds and cache counts
    assert got == want
    assert 0 < got["averageScoreClasses"] < 1  # the shift costs IoU: a real score
    # one pass: each frame is read once, on a worker (the chunks of one batch, not two)
    from segprep.evaluation import evaluate_cityscapes

    cluster.close_all()
    report = evaluate_cityscapes(tmp_path / "pred", cs_subset, cache=False, quiet=True,
                                 pred_ids="auto", scheduler=address)
    assert report.ok and report.result["averageScoreClasses"] == got["averageScoreClasses"]
    frames = CS_FRAMES["val/lindau"]
    assert cluster._sessions[address].tasks == len(cluster.chunk_sizes(frames, 2))
    cluster.close_all()


def test_evaluate_reports_a_bad_prediction_by_name(dask_cluster, cs_subset, tmp_path):
    address, client = dask_cluster
    both_workers(client)
    _predictions(cs_subset, tmp_path / "pred", "labelIds")
    bad = sorted((tmp_path / "pred").iterdir())[1]
    bad.write_bytes(b"not a png")
    res = run("evaluate", "cityscapes", "--pred", tmp_path / "pred", "--gt", cs_subset,
              "--no-cache", "--pred-ids", "labelIds", "--scheduler", address)
    assert res.exit_code == 1
    errors = [line for line in res.output.splitlines() if line.startswith("segprep: error:")]
    assert len(errors) == 1 and str(bad) in errors[0]


def test_evaluate_panoptic_same_scores_as_local(dask_cluster, cs_subset, tmp_path):
    """``evaluate cityscapes-panoptic --scheduler``: the workers read both PNGs of each frame and
    send back per-category counts; the JSON equals the local run's."""
    import json

    address, client = dask_cluster
    both_workers(client)
    res = run("cityscapes", "gen-gt", cs_subset, "-o", tmp_path / "gt", "--targets", "panoptic",
              "--split", "val", "-j", "2", "-q")
    assert res.exit_code == 0, res.output
    gt_json = tmp_path / "gt" / "gtFine" / "cityscapes_panoptic_val.json"
    gt_folder = tmp_path / "gt" / "gtFine" / "cityscapes_panoptic_val"
    doc = json.loads(gt_json.read_text())
    pred_folder = tmp_path / "pred"
    pred_folder.mkdir()
    anns = []
    for i, ann in enumerate(doc["annotations"]):  # shifted: segments cut at the borders
        rgb = np.roll(np.array(Image.open(gt_folder / ann["file_name"])), 40 + i, axis=1)
        Image.fromarray(rgb).save(pred_folder / ann["file_name"])
        ids = np.unique(rgb[..., 0] + 256 * rgb[..., 1].astype(np.int64)
                        + 65536 * rgb[..., 2].astype(np.int64))
        anns.append(dict(ann, segments_info=[s for s in ann["segments_info"] if s["id"] in ids]))
    pred_json = tmp_path / "pred.json"
    pred_json.write_text(json.dumps({"annotations": anns}))
    base = ["evaluate", "cityscapes-panoptic", "--gt-json", gt_json, "--gt-folder", gt_folder,
            "--pred-json", pred_json, "--pred-folder", pred_folder]
    local = run(*base, "-j", "2", "--json", tmp_path / "local.json")
    assert local.exit_code == 0, local.output
    res = run(*base, "--scheduler", address, "--json", tmp_path / "dask.json")
    assert res.exit_code == 0, res.output
    assert "on 2 Dask worker(s)" in res.output
    got, want = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("dask", "local"))
    got["segprep"].pop("seconds"), want["segprep"].pop("seconds")
    assert got == want and 0 < got["All"]["pq"] < 1


def test_freed_memory_kept_only_under_a_nanny_setting(monkeypatch):
    """The worker heap setting (Dask's nanny sets MALLOC_TRIM_THRESHOLD_) is changed only while
    chunks run, nested chunks restore it once, and nothing happens without the variable."""
    calls = []

    class Libc:
        def mallopt(self, param, value):
            calls.append((param, value))
            return 1

        def malloc_trim(self, pad):
            calls.append(("trim", pad))
            return 1

    monkeypatch.setitem(cluster._cache, "segprep-glibc", Libc())
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)
    with cluster._freed_memory_kept():
        pass
    assert calls == []
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "65536")
    with cluster._freed_memory_kept():
        with cluster._freed_memory_kept():
            assert calls == [(cluster.M_MMAP_THRESHOLD, cluster.KEPT_HEAP[0]),
                             (cluster.M_TRIM_THRESHOLD, cluster.KEPT_HEAP[1])]
        assert len(calls) == 2
    assert calls[2:] == [(cluster.M_TRIM_THRESHOLD, 65536),
                         (cluster.M_MMAP_THRESHOLD, 128 << 10), ("trim", 0)]
    assert cluster._heap_users == 0


def test_odgt_stats_same_as_local(dask_cluster, camvid_root, tmp_path):
    address, client = dask_cluster
    both_workers(client)
    odgt = tmp_path / "v.odgt"
    assert run("odgt", "create", "--images", camvid_root / "segnet" / "val", "--masks",
               camvid_root / "segnet" / "valannot", "-o", odgt, "--absolute", "-q").exit_code == 0
    local = run("odgt", "stats", odgt, "--num-classes", "12", "-o", tmp_path / "a.json",
                "--no-plot", "-j", "2")
    res = run("odgt", "stats", odgt, "--num-classes", "12", "-o", tmp_path / "b.json",
              "--no-plot", "--scheduler", address)
    assert local.exit_code == 0 and res.exit_code == 0, res.output
    assert ", 2 Dask workers in" in res.output
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()


class LoadOnce:
    """A task that needs a heavy per-worker object (as predict's model): built through
    ``worker_cached``, it answers with the process and the object it got."""

    def __init__(self, key: str):
        self.key = key

    def __call__(self, item: int) -> tuple[int, str]:
        import uuid

        obj = cluster.worker_cached(("test-model", self.key), lambda: uuid.uuid4().hex)
        return os.getpid(), obj


def test_worker_cached_loads_once_per_worker(dask_cluster, tmp_path):
    address, client = dask_cluster
    both_workers(client)
    outcomes = list(run_batch(LoadOnce(str(tmp_path)), list(range(64)), scheduler=address,
                              quiet=True, ordered=True))
    assert [o.item for o in outcomes] == list(range(64)) and all(o.ok for o in outcomes)
    built: dict[int, set[str]] = {}
    for o in outcomes:
        built.setdefault(o.value[0], set()).add(o.value[1])
    assert os.getpid() not in built  # it ran on the workers
    assert 1 <= len(built) <= 2 and all(len(objs) == 1 for objs in built.values())


# ------------------------------------------------------------------------------------ failures
class DieOnce:
    """gen-gt of one frame, except that the worker process running ``victim`` dies the first
    time (``always``: every time), as a machine lost mid-task."""

    def __init__(self, victim: str, marker: Path, always: bool = False):
        self.victim, self.marker, self.always = victim, str(marker), always

    def __call__(self, job: cs.FrameJob) -> cs.GenGtResult:
        if job.json_path == self.victim and (self.always or not os.path.exists(self.marker)):
            Path(self.marker).touch()
            os._exit(1)
        return cs.convert_frame(job)


def _jobs(root: Path, out: Path) -> list[cs.FrameJob]:
    return cs.make_jobs(root, cs_data.polygon_files(root), ["trainIds", "color"], out)


def test_worker_dying_mid_task_is_rescheduled(dask_cluster, cs_subset, tmp_path):
    address, client = dask_cluster
    both_workers(client)
    jobs = _jobs(cs_subset, tmp_path / "dask")
    fn = DieOnce(jobs[5].json_path, tmp_path / "died")
    outcomes = list(run_batch(fn, jobs, scheduler=address, quiet=True))
    assert (tmp_path / "died").exists()  # a worker did die
    assert [o.error for o in outcomes if not o.ok] == []
    assert sorted(o.item.json_path for o in outcomes) == sorted(j.json_path for j in jobs)
    local = list(run_batch(cs.convert_frame, _jobs(cs_subset, tmp_path / "local"), jobs=2,
                           quiet=True))
    assert all(o.ok for o in local)
    assert tree(tmp_path / "dask") == tree(tmp_path / "local")


def test_lost_chunk_is_reported_and_a_rerun_finishes_it(dask_cluster, cs_subset, tmp_path):
    address, client = dask_cluster
    both_workers(client)
    jobs = _jobs(cs_subset, tmp_path / "dask")
    victim = jobs[3].json_path
    fn = DieOnce(victim, tmp_path / "died", always=True)
    summary = BatchSummary()
    for o in run_batch(fn, jobs, scheduler=address, quiet=True):
        summary.add(o, skipped=o.ok and o.value.skipped)
    failed = summary.errors
    assert any(e.startswith(f"{victim}: not done") for e in failed)
    assert all("rerun the command to finish" in e for e in failed)
    # (a chunk finished on a worker that then died is run again: its items count as skipped)
    assert summary.done + summary.skipped + summary.failed == len(jobs)
    assert all("the Dask workers running it died (KilledWorker)" in e for e in failed)
    # items of the lost chunk that ran before the victim are written; the rerun does the rest
    missing = [j for j in jobs if not all(os.path.exists(j.output(t)) for t in j.targets)]
    assert victim in [j.json_path for j in missing] and len(missing) <= summary.failed
    both_workers(client)
    rerun = BatchSummary()
    for o in run_batch(cs.convert_frame, _jobs(cs_subset, tmp_path / "dask"),
                       scheduler=address, quiet=True):
        rerun.add(o, skipped=o.ok and o.value.skipped)
    assert (rerun.done, rerun.skipped, rerun.failed) == (len(missing), len(jobs) - len(missing), 0)
    local = list(run_batch(cs.convert_frame, _jobs(cs_subset, tmp_path / "local"), jobs=2,
                           quiet=True))
    assert all(o.ok for o in local)
    assert tree(tmp_path / "dask") == tree(tmp_path / "local")


def test_worker_that_cannot_see_the_root_stops_before_work(dask_cluster, cs_subset, tmp_path,
                                                          monkeypatch):
    """A relative ROOT resolves in each worker's own current folder: here the workers' folder
    is another one, so they cannot see it; nothing is written."""
    address, client = dask_cluster
    both_workers(client)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    before = client.run(os.getcwd)
    client.run(os.chdir, str(elsewhere))
    try:
        monkeypatch.chdir(cs_subset.parent)
        res = run("cityscapes", "gen-gt", "cityscapes", "-o", tmp_path / "out", "--scheduler",
                  address)
    finally:
        for addr, cwd in before.items():
            client.run(os.chdir, cwd, workers=[addr])
    assert res.exit_code == 2
    lines = res.output.strip().splitlines()
    assert len(lines) == 1, res.output
    assert lines[0].startswith("segprep: error: cityscapes/gtFine/")
    assert "not visible on 2 of 2 Dask worker(s)" in lines[0]
    assert "every worker mounts at the same path" in lines[0]
    assert not list((tmp_path / "out").rglob("*.png"))  # (its folders may be prepared here)


def test_predict_folder_on_the_cluster_equals_local(dask_cluster, camvid_root, tmp_path):
    """``predict`` over a folder with --scheduler: each worker loads the model once and writes
    its images' outputs; the files equal a local run's, byte for byte (TTA options reach the
    workers)."""
    from test_predict import make_checkpoint

    address, client = dask_cluster
    both_workers(client)
    ck = make_checkpoint(tmp_path / "best.pt", class_map=None, k=12)
    frames = tmp_path / "frames"
    frames.mkdir()
    for f in sorted((camvid_root / "segnet" / "val").glob("*.png"))[:6]:
        (frames / f.name).symlink_to(f)
    tta = ("--tta", "flip", "--tta-scales", "0.5,1")
    local = run("predict", ck, frames, tmp_path / "local", "--threads", "1", *tta, "-q")
    assert local.exit_code == 0, local.output
    res = run("predict", ck, frames, tmp_path / "dask", "--threads", "1", *tta, "--scheduler",
              address, "-q")
    assert res.exit_code == 0, res.output
    assert "6 done" in res.output and "Dask workers 2" in res.output
    assert tree(tmp_path / "dask") == tree(tmp_path / "local") != {}
