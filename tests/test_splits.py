"""``segprep odgt split``: grouped (no leakage), seeded (deterministic), stratified, on the real
BDD100K 2018 (400 frames, grouped by video id) and SegNet CamVid (grouped by sequence) data."""

from __future__ import annotations

import itertools
import json
import os
import random
import re
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from segprep import manifest as mf
from segprep import splits as sp
from segprep.cli.main import cli
from segprep.errors import SegprepError

BDD_VIDEO = r"([0-9a-f]{8})-[0-9a-f]{8}"
CAMVID_SEQ = r"([0-9A-Za-z]+)_f?[0-9]+\.png$"  # 0001TP_006690, 0006R0_f00930


def run(*args: object) -> CliRunner.Result:
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def bdd_all(bdd_root, tmp_path_factory) -> Path:
    """All 400 BDD100K 2018 frames (train + val); the color labels stand in for the images."""
    out = tmp_path_factory.mktemp("bdd") / "all.odgt"
    seg = bdd_root / "seg"
    res = run("odgt", "create", "--images", seg / "color_labels", "--masks", seg / "labels",
              "--image-suffix", "_train_color.png", "--mask-suffix", "_train_id.png", "-o", out,
              "-j", "1")
    assert res.exit_code == 0, res.output
    return out


@pytest.fixture(scope="module")
def bdd_stats(bdd_all) -> Path:
    out = bdd_all.parent / "stats.json"
    res = run("odgt", "stats", bdd_all, "--num-classes", "19", "-o", out, "--no-plot", "-q")
    assert res.exit_code == 0, res.output
    return out


def groups_of(path: Path, pattern: str) -> set[str]:
    rx = re.compile(pattern)
    lines = path.read_text().splitlines()
    return {sp.group_key(rx, r["fpath_img"]) for r in map(json.loads, lines)}


def test_grouped_split_has_no_leakage(bdd_all, tmp_path):
    prefix = tmp_path / "sub" / "bdd"
    res = run("odgt", "split", bdd_all, "--val", "0.1", "--test", "0.1", "--seed", "3",
              "--group-by", BDD_VIDEO, "-o", prefix)
    assert res.exit_code == 0, res.output
    files = {s: Path(f"{prefix}_{s}.odgt") for s in sp.SPLITS}
    recs = {s: [json.loads(x) for x in files[s].read_text().splitlines()] for s in sp.SPLITS}
    # every frame exactly once; the paths were rebased onto the outputs' folder and resolve
    src = {os.path.normpath(bdd_all.parent / r.fpath_img) for r in mf.read_odgt(bdd_all)}
    got = [os.path.normpath(files[s].parent / r["fpath_img"]) for s in sp.SPLITS for r in recs[s]]
    assert sorted(got) == sorted(src) and len(got) == 400
    for s in sp.SPLITS:
        assert all((files[s].parent / r["fpath_segm"]).is_file() for r in recs[s])
    # no video id in two splits
    g = {s: groups_of(files[s], BDD_VIDEO) for s in sp.SPLITS}
    assert not (g["train"] & g["val"]) and not (g["train"] & g["test"])
    assert not (g["val"] & g["test"])
    assert sum(map(len, g.values())) == len(groups_of(bdd_all, BDD_VIDEO))
    # sizes: round(0.1 * N) each, train the rest (these groups allow it)
    n_val = int(np.floor(0.1 * 400 + 0.5))
    assert [len(recs[s]) for s in sp.SPLITS] == [400 - 2 * n_val, n_val, n_val]
    # a split without grouping would leak: many video ids hold several frames
    assert len(groups_of(bdd_all, BDD_VIDEO)) < 400


def test_split_is_deterministic(bdd_all, tmp_path):
    args = ("--val", "0.15", "--test", "0.05", "--group-by", BDD_VIDEO)
    assert run("odgt", "split", bdd_all, *args, "--seed", "7", "-o", tmp_path / "a").exit_code == 0
    assert run("odgt", "split", bdd_all, *args, "--seed", "7", "-o", tmp_path / "b").exit_code == 0
    # the same manifest with its lines shuffled
    lines = bdd_all.read_text().splitlines()
    random.Random(1).shuffle(lines)
    shuffled = bdd_all.parent / "shuffled.odgt"
    shuffled.write_text("\n".join(lines) + "\n")
    assert run("odgt", "split", shuffled, *args, "--seed", "7", "-o", tmp_path / "c").exit_code == 0
    assert run("odgt", "split", bdd_all, *args, "--seed", "8", "-o", tmp_path / "d").exit_code == 0
    for s in sp.SPLITS:
        a = (tmp_path / f"a_{s}.odgt").read_bytes()
        assert a == (tmp_path / f"b_{s}.odgt").read_bytes()
        assert a == (tmp_path / f"c_{s}.odgt").read_bytes()
    assert (tmp_path / "a_val.odgt").read_bytes() != (tmp_path / "d_val.odgt").read_bytes()
    # the same split again onto the same prefix: kept, exit 0
    before = {s: (tmp_path / f"a_{s}.odgt").stat().st_mtime_ns for s in sp.SPLITS}
    res = run("odgt", "split", bdd_all, *args, "--seed", "7", "-o", tmp_path / "a")
    assert res.exit_code == 0 and res.output.count("identical to this split, kept") == 3
    assert before == {s: (tmp_path / f"a_{s}.odgt").stat().st_mtime_ns for s in sp.SPLITS}
    # a different split onto it: refused in one line naming --overwrite, files untouched
    res = run("odgt", "split", bdd_all, *args, "--seed", "8", "-o", tmp_path / "a")
    errors = [ln for ln in res.output.splitlines() if ln.startswith("segprep: error:")]
    assert res.exit_code == 2 and len(errors) == 1 and "--overwrite" in errors[0], res.output
    assert "a_train.odgt: exists and differs" in errors[0] and "Traceback" not in res.output
    for s in sp.SPLITS:
        assert (tmp_path / f"a_{s}.odgt").read_bytes() == (tmp_path / f"b_{s}.odgt").read_bytes()
    res = run("odgt", "split", bdd_all, *args, "--seed", "8", "-o", tmp_path / "a", "--overwrite")
    assert res.exit_code == 0, res.output
    for s in sp.SPLITS:
        assert (tmp_path / f"a_{s}.odgt").read_bytes() == (tmp_path / f"d_{s}.odgt").read_bytes()


def _deviation(result: sp.SplitResult, image_classes: dict, k: int) -> float:
    """Mean over classes and val/test of |share of images with the class - share overall|."""
    shares = sp.presence_balance(result.records, image_classes, k)
    overall = sp.presence_balance({"all": [r for v in result.records.values() for r in v]},
                                  image_classes, k)[0]
    return float(np.nanmean(np.abs(shares[1:] - overall)))


def test_stratify_balances_class_presence(bdd_all, bdd_stats, tmp_path):
    stats = json.loads(bdd_stats.read_text())
    ic = stats["image_classes"]
    records = mf.read_odgt(bdd_all)
    plain, strat = [], []
    for seed in range(6):
        a = sp.split_records(records, 0.1, 0.1, seed, BDD_VIDEO)
        b = sp.split_records(records, 0.1, 0.1, seed, BDD_VIDEO, image_classes=ic, num_classes=19)
        for res in (a, b):  # stratification keeps the groups whole too
            g = [{sp.group_key(re.compile(BDD_VIDEO), r.fpath_img) for r in res.records[s]}
                 for s in sp.SPLITS]
            assert not (g[0] & g[1]) and not (g[0] & g[2]) and not (g[1] & g[2])
        plain.append(_deviation(a, ic, 19))
        strat.append(_deviation(b, ic, 19))
    assert np.mean(strat) < 0.75 * np.mean(plain), (strat, plain)
    # CLI: counting the masks (--num-classes) and reusing stats.json give the same files
    r1 = run("odgt", "split", bdd_all, "--stratify", "--stats", bdd_stats, "--group-by", BDD_VIDEO,
             "-o", tmp_path / "s1")
    r2 = run("odgt", "split", bdd_all, "--stratify", "--num-classes", "19", "--group-by",
             BDD_VIDEO, "-o", tmp_path / "s2", "-j", "1")
    assert r1.exit_code == 0 and r2.exit_code == 0, r1.output + r2.output
    for s in sp.SPLITS:
        assert (tmp_path / f"s1_{s}.odgt").read_bytes() == (tmp_path / f"s2_{s}.odgt").read_bytes()
    assert run("odgt", "split", bdd_all, "--stratify", "-o", tmp_path / "x").exit_code == 2


def test_camvid_sequences(camvid_root, tmp_path):
    """SegNet's own train/val share sequence 0016E5; --group-by keeps each sequence whole."""
    segnet = camvid_root / "segnet"
    parts = []
    for split in ("train", "val"):
        out = tmp_path / f"{split}.odgt"
        assert run("odgt", "create", "--dataset", "camvid-segnet", segnet, "--split", split,
                   "-o", out, "-j", "1").exit_code == 0
        parts.append(out.read_text())
    assert groups_of(tmp_path / "train.odgt", CAMVID_SEQ) & groups_of(tmp_path / "val.odgt",
                                                                       CAMVID_SEQ) == {"0016E5"}
    both = tmp_path / "both.odgt"
    both.write_text("".join(parts))
    res = run("odgt", "split", both, "--val", "0.2", "--test", "0", "--group-by", CAMVID_SEQ,
              "--seed", "0", "-o", tmp_path / "cv")
    assert res.exit_code == 0, res.output
    assert not (tmp_path / "cv_test.odgt").exists()  # fraction 0: not written
    g_train = groups_of(tmp_path / "cv_train.odgt", CAMVID_SEQ)
    g_val = groups_of(tmp_path / "cv_val.odgt", CAMVID_SEQ)
    assert g_train and g_val and not (g_train & g_val)
    assert g_train | g_val == {"0001TP", "0006R0", "0016E5"}


def test_group_by_must_match_every_path(bdd_all, tmp_path):
    res = run("odgt", "split", bdd_all, "--group-by", r"/(0[0-9a-f]{7})-", "-o", tmp_path / "x")
    assert res.exit_code == 2 and "does not match" in res.output
    res = run("odgt", "split", bdd_all, "--group-by", "([", "-o", tmp_path / "x")
    assert res.exit_code == 2 and "invalid regex" in res.output
    res = run("odgt", "split", bdd_all, "--val", "0.6", "--test", "0.5", "-o", tmp_path / "x")
    assert res.exit_code == 2


def test_group_key_and_targets():
    assert sp.group_key(re.compile(r"leftImg8bit/[^/]+/([^/]+)/"),
                        "leftImg8bit/train/aachen/aachen_000001_000019_leftImg8bit.png") == "aachen"
    assert sp.group_key(re.compile(r"[0-9A-Za-z]+(?=_)"), "train/0001TP_006690.png") == "0001TP"
    assert sp.group_key(re.compile("x"), "abc") is None
    assert sp.target_sizes(10, 0.15, 0.25).tolist() == [5, 2, 3]  # round half up
    assert sp.target_sizes(7, 0.0, 0.5).tolist() == [3, 0, 4]
    with pytest.raises(SegprepError):
        sp.target_sizes(10, -0.1, 0.1)
    sizes = np.array([3, 1, 2, 5, 1, 1, 4, 2, 1])
    a = sp.assign_groups(sizes, np.array([14, 3, 3]), seed=5)
    assert np.array_equal(a, sp.assign_groups(sizes, np.array([14, 3, 3]), seed=5))
    assert [int(sizes[a == s].sum()) for s in range(3)] == [14, 3, 3]


# ------------------------------------------------------------- nearest grouped split (issue 13)
def brute_force(sizes: np.ndarray, wanted: np.ndarray) -> tuple[tuple[int, float], bool]:
    """The smallest split_distance over every assignment of the groups to the requested splits,
    and whether some assignment that reaches it leaves a requested split empty."""
    allowed = [s for s in range(3) if wanted[s] > 0]
    rows = []
    for combo in itertools.product(allowed, repeat=len(sizes)):
        counts = np.bincount(np.array(combo, np.int64), weights=sizes, minlength=3)
        rows.append((sp.split_distance(counts, wanted), bool(np.any(counts[wanted > 0] == 0))))
    far = min(k[0] for k, _ in rows)
    dev = min(k[1] for k, _ in rows if k[0] == far)
    best = [e for k, e in rows if k[0] == far and k[1] <= dev + 1e-9]
    return (far, dev), any(best)


def read_split(prefix: Path, pattern: str) -> tuple[dict[str, int], dict[str, set[str]]]:
    """Images and group keys of each PREFIX_<split>.odgt that exists."""
    rx = re.compile(pattern)
    counts, groups = {}, {}
    for s in sp.SPLITS:
        f = Path(f"{prefix}_{s}.odgt")
        recs = [json.loads(x) for x in f.read_text().splitlines()] if f.exists() else []
        counts[s] = len(recs)
        groups[s] = {sp.group_key(rx, r["fpath_img"]) for r in recs}
    return counts, groups


def check_nearest(manifest: Path, pattern: str, val: float, test: float, out: Path,
                  extra: tuple = ()) -> tuple[dict[str, int], dict[str, set[str]]]:
    """Run `odgt split`, and check against brute force: the achieved sizes are the nearest any
    assignment of whole groups gives, an empty requested split is refused (one line naming
    --allow-empty) exactly when the optimum has one, and each group lies whole in one split."""
    recs = mf.read_odgt(manifest)
    rx = re.compile(pattern)
    keys = [sp.group_key(rx, r.fpath_img) for r in recs]
    sizes = np.array([keys.count(k) for k in sorted(set(keys))], np.int64)
    wanted = sp.wanted_sizes(len(recs), val, test)
    best, optimum_has_empty = brute_force(sizes, wanted)
    args = ("odgt", "split", manifest, "--val", val, "--test", test, "--seed", 7,
            "--group-by", pattern, "-o", out, *extra)
    res = run(*args)
    refused = res.exit_code == 2 and "--allow-empty" in res.output
    if refused:
        errors = [ln for ln in res.output.splitlines() if ln.startswith("segprep: error:")]
        assert len(errors) == 1 and "empty" in errors[0] and "Traceback" not in res.output
        assert optimum_has_empty, (val, test, res.output)
        assert not any(Path(f"{out}_{s}.odgt").exists() for s in sp.SPLITS)
        res = run(*args, "--allow-empty")
    assert res.exit_code == 0, res.output
    counts, groups = read_split(out, pattern)
    if not refused:  # every requested split holds images
        assert all(counts[s] > 0 for s, w in zip(sp.SPLITS, wanted) if w > 0), counts
    achieved = sp.split_distance([counts[s] for s in sp.SPLITS], wanted)
    assert achieved[0] == best[0] and achieved[1] == pytest.approx(best[1], abs=1e-9), \
        (val, test, counts, achieved, best)
    for si, s in enumerate(sp.SPLITS):  # the achieved fractions are printed
        if wanted[si] > 0:
            assert f"{counts[s]} images = {100 * counts[s] / len(recs):.1f} %" in res.output
    assert sum(counts.values()) == len(recs)
    assert sum(map(len, groups.values())) == len(set(keys))  # no group in two splits
    return counts, groups


@pytest.fixture()
def segnet_test_like(tmp_path) -> Path:
    """The issue's case without the SegNet test list (not in the shared data): 233 frames, two
    sequences of 62 (0001TP) and 171 (Seq05VD), named as an `odgt create` of CamVid/test does."""
    lines = [mf.Record(f"test/{seq}_{i:06d}.png", f"testannot/{seq}_{i:06d}.png", 480, 360)
             .to_line() for seq, n in (("0001TP", 62), ("Seq05VD", 171)) for i in range(n)]
    path = tmp_path / "t.odgt"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_issue_case_val_gets_the_62_frame_sequence(segnet_test_like, tmp_path):
    for val in (0.3, 0.2):
        counts, groups = check_nearest(segnet_test_like, "^[^_]+", val, 0, tmp_path / f"v{val}")
        assert counts == {"train": 171, "val": 62, "test": 0}
        assert groups["val"] == {"test/0001TP"} and groups["train"] == {"test/Seq05VD"}
        assert not Path(f"{tmp_path / f'v{val}'}_test.odgt").exists()  # fraction 0: not written
    # 10 % (23.3 images): 62 is farther from it than none, so val is empty: refused, then allowed
    res = run("odgt", "split", segnet_test_like, "--val", "0.1", "--test", "0", "--group-by",
              "^[^_]+", "-o", tmp_path / "e")
    errors = [ln for ln in res.output.splitlines() if ln.startswith("segprep: error:")]
    assert res.exit_code == 2 and len(errors) == 1 and "--allow-empty" in errors[0]
    assert "val (23.3 of 233 images requested)" in errors[0]
    for val, test in ((0.1, 0), (0.2, 0.1), (0.1, 0.1), (0.5, 0.2)):
        check_nearest(segnet_test_like, "^[^_]+", val, test, tmp_path / f"x{val}_{test}")


def test_camvid_segnet_sequences_nearest(camvid_root, tmp_path):
    """Real SegNet CamVid: the train list grouped by '^[^_]+' (paths written relative to the
    train folder, so the key is the sequence), and train + val grouped by sequence: the chosen
    assignment is the brute-force optimum for several fractions."""
    segnet = camvid_root / "segnet"
    train = tmp_path / "train.odgt"
    assert run("odgt", "create", "--dataset", "camvid-segnet", segnet, "--split", "train",
               "--root", segnet / "train", "-o", train, "-j", "1").exit_code == 0
    assert groups_of(train, "^[^_]+") == {"0001TP", "0006R0", "0016E5"}
    for val, test in ((0.2, 0), (0.3, 0), (0.1, 0.1), (0.2, 0.2), (0.15, 0.15)):
        counts, groups = check_nearest(train, "^[^_]+", val, test, tmp_path / f"t{val}_{test}",
                                       ("--root", segnet / "train"))
        assert set().union(*groups.values()) == {"0001TP", "0006R0", "0016E5"}
    both = tmp_path / "both.odgt"
    parts = []
    for split in ("train", "val"):
        out = tmp_path / f"{split}_rel.odgt"
        assert run("odgt", "create", "--dataset", "camvid-segnet", segnet, "--split", split,
                   "-o", out, "-j", "1").exit_code == 0
        parts.append(out.read_text())
    both.write_text("".join(parts))
    # '^[^_]+' on a manifest of two folders would key train/0016E5 and val/0016E5 apart (leak):
    # the sequence is taken from the file name here
    assert len(groups_of(both, "^[^_]+")) == 4
    for val, test in ((0.2, 0), (0.3, 0), (0.1, 0.1), (0.2, 0.2)):
        counts, groups = check_nearest(both, CAMVID_SEQ, val, test, tmp_path / f"b{val}_{test}")
        assert set().union(*groups.values()) == {"0001TP", "0006R0", "0016E5"}


def test_search_is_exact_and_deterministic():
    rng = np.random.default_rng(0)
    for trial in range(150):
        sizes = rng.integers(1, 80, int(rng.integers(1, 8)))
        val, test = float(rng.choice([0, 0.05, 0.1, 0.3])), float(rng.choice([0, 0.1, 0.25]))
        wanted = sp.wanted_sizes(int(sizes.sum()), val, test)
        found = sp.search_groups(sizes, wanted, seed=trial)
        best, _ = brute_force(sizes, wanted)
        assert found.method == "exact"
        assert found.distance[0] == best[0] and found.distance[1] == pytest.approx(best[1])
        assert np.all(wanted[found.split] > 0)  # nothing in a split that was not requested
        again = sp.search_groups(sizes[::-1].copy(), wanted, seed=trial)  # other group order
        assert again.distance == pytest.approx(found.distance)
        assert np.array_equal(sp.search_groups(sizes, wanted, seed=trial).split, found.split)
    # a search out of nodes says so, and is no worse than the heuristic it started from
    sizes = rng.integers(50, 400, 18)
    wanted = sp.wanted_sizes(int(sizes.sum()), 0.15, 0.1)
    cut = sp.search_groups(sizes, wanted, seed=0, node_budget=50)
    heur = sp.search_groups(sizes, wanted, seed=0, exact_max_groups=0)
    full = sp.search_groups(sizes, wanted, seed=0)
    assert cut.method == sp.STOPPED and heur.method == "heuristic" and full.method == "exact"
    assert not sp._better(heur.distance, cut.distance)
    assert not sp._better(cut.distance, full.distance)
    # ties: equal groups, the seed decides which one goes where, never how near
    sizes = np.full(10, 5)
    picks = {tuple(sp.search_groups(sizes, np.array([40.0, 10.0, 0.0]), seed=s).split)
             for s in range(8)}
    assert len(picks) > 1 and all(sum(p) == 2 for p in picks)


def test_heuristic_above_the_exact_limit():
    """Many groups: the heuristic keeps them whole, fills every requested split, and without
    grouping (one image per group) hits every request within one image."""
    rng = np.random.default_rng(3)
    sizes = rng.geometric(0.05, 60)
    wanted = sp.wanted_sizes(int(sizes.sum()), 0.15, 0.05)
    found = sp.search_groups(sizes, wanted, seed=1)
    assert found.method == "heuristic" and found.distance[0] == 0
    greedy_only = sp.split_distance(np.bincount(sp.search_groups(
        sizes, wanted, seed=1, exact_max_groups=0).split, weights=sizes, minlength=3), wanted)
    assert found.distance == pytest.approx(greedy_only)
    recs = [mf.Record(f"img/{i:05d}.png", f"lab/{i:05d}.png", 8, 8) for i in range(1003)]
    res = sp.split_records(recs, 0.15, 0.05, seed=4)
    wanted = sp.wanted_sizes(1003, 0.15, 0.05)
    assert all(abs(len(res.records[s]) - w) < 1 for s, w in zip(sp.SPLITS, wanted))


def test_zero_fraction_split_gets_nothing_even_stratified():
    recs = [mf.Record(f"img/{g}_{i}.png", f"lab/{g}_{i}.png", 8, 8)
            for g, n in enumerate((40, 30, 7, 3)) for i in range(n)]
    ic = {r.fpath_segm: [int(r.fpath_img[4]) % 3] for r in recs}
    for classes in (None, ic):
        res = sp.split_records(recs, 0.5, 0.0, seed=0, group_by=r"img/(\d+)_",
                               image_classes=classes, num_classes=3)
        assert not res.records["test"]
        assert len(res.records["train"]) + len(res.records["val"]) == len(recs)


def test_existing_outputs(segnet_test_like, tmp_path):
    """Identical → kept (exit 0); different → one line naming --overwrite, exit 2, untouched;
    a leftover PREFIX_test.odgt of an earlier split with a test part → refused, or removed with
    --overwrite (it would overlap the new train)."""
    args = ("odgt", "split", segnet_test_like, "--group-by", "^[^_]+", "--seed", "7",
            "-o", tmp_path / "p")
    assert run(*args, "--val", "0.2", "--test", "0.7", "--allow-empty").exit_code == 0
    test_file = tmp_path / "p_test.odgt"
    assert test_file.exists()
    old = {f.name: f.read_bytes() for f in tmp_path.glob("p_*.odgt")}
    res = run(*args, "--val", "0.3", "--test", "0")
    errors = [ln for ln in res.output.splitlines() if ln.startswith("segprep: error:")]
    assert res.exit_code == 2 and len(errors) == 1 and "--overwrite" in errors[0], res.output
    assert old == {f.name: f.read_bytes() for f in tmp_path.glob("p_*.odgt")}
    res = run(*args, "--val", "0.3", "--test", "0", "--overwrite")
    assert res.exit_code == 0 and not test_file.exists() and "removed" in res.output
    new = {f.name: f.read_bytes() for f in tmp_path.glob("p_*.odgt")}
    res = run(*args, "--val", "0.3", "--test", "0")
    assert res.exit_code == 0 and res.output.count("identical to this split, kept") == 2
    assert new == {f.name: f.read_bytes() for f in tmp_path.glob("p_*.odgt")}
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*tmp*"))


def test_unwritable_prefix_is_one_line(segnet_test_like, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    res = run("odgt", "split", segnet_test_like, "--val", "0.3", "--test", "0", "--group-by",
              "^[^_]+", "-o", blocker / "x")
    errors = [ln for ln in res.output.splitlines() if ln.startswith("segprep: error:")]
    assert res.exit_code == 2 and len(errors) == 1 and "Traceback" not in res.output
    assert errors[0].startswith(f"segprep: error: {blocker / 'x'}_train.odgt: cannot write")
