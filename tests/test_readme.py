"""The README's commands, run as written on the real sample data.

Convention (the README says it too):

- Every fenced ```bash block of README.md is something a user pastes into a shell at the project
  root. Blocks are run in README order, each by ``bash -euo pipefail``, so a later block may use
  what an earlier one wrote (the trained ``runs/unet-tiny``, the manifests in ``runs/lists``).
- A block whose first line is ``# not run by tests: <reason>`` is skipped; the reason is required.
  These need what a test does not have: a full dataset, hours of training, GPUs, several machines
  (a Dask cluster, torchrun), or they are the install / test run itself.
- A block whose first line starts with ``# slow:`` runs only in the slow test (``-m slow``).
- Fenced blocks in any other language (```text, ```python, …) are never run.

Where: a temporary folder laid out like the real one, ``TMP/project`` (the working directory,
with ``scripts/`` and ``class_maps/`` linked in) beside ``TMP/shared/data`` (a link to the real
data: ``../shared/data`` or ``$SEGPREP_DATA``), so the README's ``../shared/data/...`` paths
resolve and every output lands under ``TMP/project/runs/``. ``segprep`` and ``python`` are the
ones of the interpreter running the tests. Without the data a test skips, and fails under CI.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import PROJECT, require_data

README = PROJECT / "README.md"
NOT_RUN = "# not run by tests:"
SLOW = "# slow:"
MAX_LINES = 250
# links the README may carry before their page lands (written by work in progress elsewhere)
PENDING_LINKS: set[str] = set()


@dataclass
class Block:
    section: str
    line: int  # line of the opening fence, 1-based
    lang: str
    text: str

    @property
    def first(self) -> str:
        return self.text.split("\n", 1)[0].strip()

    @property
    def kind(self) -> str:
        if self.lang != "bash":
            return "other"
        if self.first.startswith(NOT_RUN):
            return "not-run"
        if self.first.startswith(SLOW):
            return "slow"
        return "run"

    def where(self) -> str:
        return f"README.md:{self.line} ({self.section})"


def readme_blocks(path: Path = README) -> list[Block]:
    """Every fenced code block of the README with the ``##`` section it sits in."""
    blocks: list[Block] = []
    section, lang, start, body = "", None, 0, []
    for i, line in enumerate(path.read_text(encoding="utf-8").split("\n"), 1):
        if lang is None:
            if line.startswith("## "):
                section = line[3:].strip()
            elif line.startswith("```"):
                lang, start, body = line[3:].strip(), i, []
        elif line.startswith("```"):
            blocks.append(Block(section, start, lang, "\n".join(body)))
            lang = None
        else:
            body.append(line)
    assert lang is None, f"README.md:{start}: unclosed code fence"
    return blocks


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """TMP/project beside TMP/shared/data (a link to the real data)."""
    for part in ("cityscapes", "bdd100k", "camvid"):
        require_data(part)
    data = require_data()
    root = tmp_path_factory.mktemp("readme")
    (root / "shared").mkdir()
    (root / "shared" / "data").symlink_to(data.resolve(), target_is_directory=True)
    proj = root / "project"
    proj.mkdir()
    for name in ("scripts", "class_maps"):
        (proj / name).symlink_to(PROJECT / name, target_is_directory=True)
    return proj


def run_block(block: Block, cwd: Path, timeout: float = 600) -> float:
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env.pop("SEGPREP_SCHEDULER", None)  # the README's commands say where they run
    t0 = time.perf_counter()
    proc = subprocess.run(["bash", "-euo", "pipefail", "-c", block.text], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        out = (proc.stdout + proc.stderr)[-4000:]
        pytest.fail(f"{block.where()}: exit status {proc.returncode} after {seconds:.0f} s\n"
                    f"--- block ---\n{block.text}\n--- output (tail) ---\n{out}")
    return seconds


def test_readme_commands_run_as_written(project):
    """Every runnable block (not slow, not marked), in README order, exits 0."""
    blocks = [b for b in readme_blocks() if b.kind == "run"]
    assert len(blocks) >= 8, "the per-job sections should have runnable examples"
    times = [(run_block(b, project), b) for b in blocks]
    for seconds, b in times:
        print(f"{seconds:6.1f} s  {b.where()}")
    runs = project / "runs"
    for out in ("cs/gtFine/cityscapes_panoptic_val.json", "bdd/val", "lists/stats.json",
                "unet-tiny/best.pt", "eval/camvid.json", "clip_pred.mp4", "unet-tiny.onnx",
                "submission.zip", "cs-dask/gtFine/val"):
        assert (runs / out).exists(), f"the README's commands did not write runs/{out}"


@pytest.mark.slow
def test_readme_slow_commands_run_as_written(project):
    """The blocks marked ``# slow:`` (the demo)."""
    blocks = [b for b in readme_blocks() if b.kind == "slow"]
    assert blocks, "no '# slow:' block in the README"
    for b in blocks:
        run_block(b, project, timeout=900)


def test_every_block_follows_the_convention():
    blocks = readme_blocks()
    for b in blocks:
        assert b.lang, f"{b.where()}: a code block needs a language (bash, text, …)"
        if b.kind == "not-run":
            reason = b.first[len(NOT_RUN):].strip()
            assert reason, f"{b.where()}: '{NOT_RUN}' needs a reason"
        if b.kind == "run":
            assert "/data/" not in b.text.replace("../shared/data/", ""), (
                f"{b.where()}: a runnable block should read ../shared/data, not another dataset")
    sections = {b.section for b in blocks if b.kind == "run"}
    for job in ("Cityscapes", "BDD100K", "CamVid", "odgt", "Train", "Evaluate", "Predict",
                "Submit", "Several machines"):
        assert any(job in s for s in sections), f"no runnable example in the '{job}' section"


def test_readme_is_short_and_links_resolve():
    text = README.read_text(encoding="utf-8")
    n = text.count("\n")
    assert n <= MAX_LINES, f"README.md has {n} lines (at most {MAX_LINES}; details go to docs/)"
    for target in re.findall(r"\]\(([^)#\s]+)", text):
        if "://" in target or target in PENDING_LINKS:
            continue
        assert (PROJECT / target).exists(), f"README.md links to missing {target}"


def _normalise(cmd: str) -> str:
    cmd = re.sub(r"^python3? -m pip ", "pip ", cmd.strip())
    return " ".join(w for w in shlex.split(cmd) if w != "--quiet")


def test_setup_block_matches_ci():
    """The README's 'set up and pass the tests' block runs what .ci/run runs."""
    ci = (PROJECT / ".ci" / "run").read_text(encoding="utf-8").split("\n")
    ci_cmds = [_normalise(c) for c in ci if c.strip() and not c.lstrip().startswith("#")
               and not c.startswith(("set ", "cd ")) and "--upgrade pip" not in c]
    setup = [b for b in readme_blocks() if "pytest" in b.text and b.lang == "bash"]
    assert len(setup) == 1, "exactly one README block should run the tests"
    readme_cmds = {_normalise(c) for line in setup[0].text.split("\n")
                   if not line.lstrip().startswith("#") for c in line.split("&&") if c.strip()}
    missing = [c for c in ci_cmds if c not in readme_cmds]
    assert not missing, f"README's test set-up lacks what .ci/run runs: {missing}"
