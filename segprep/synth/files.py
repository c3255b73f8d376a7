"""Synthetic frames as Cityscapes-format files: :class:`FrameSpec` (one frame: where it goes and
its random streams), :func:`make_frame`, :func:`write_frame`, and :func:`generate_cityscapes` (a
whole dataset, one :class:`numpy.random.SeedSequence` per frame)."""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from segprep.errors import SegprepError
from segprep.synth.build import build_scene
from segprep.synth.render import render_image
from segprep.synth.scene import Scene

#: split → the invented city names used for it (frames are spread over them round-robin)
CITIES: dict[str, tuple[str, ...]] = {
    "train": ("synthtown", "demoville"),
    "val": ("mockburg",),
    "test": ("testopolis",),
}
SPLIT_CODES = {"train": 0, "val": 1, "test": 2}
#: the frame number of every synthetic frame (the 20th frame of a snippet, as Cityscapes' gtFine)
FRAME_NUMBER = 19
#: labels kept in the test split's JSONs (the official test annotations hold only these)
TEST_LABELS = ("ego vehicle", "rectification border", "out of roi")
#: a marker file written at the root of every synthetic dataset
MARKER = "SYNTHETIC.txt"


def scene_json(scene: Scene, split: str) -> dict:
    """The Cityscapes ``*_gtFine_polygons.json`` document of a scene.

    Keys as in the official files: ``imgHeight``, ``imgWidth``, ``objects`` (each ``label``,
    ``polygon`` as ``[[x, y], …]`` integers, and ``deleted: 1`` on deleted objects). For the
    ``test`` split only :data:`TEST_LABELS` are kept, as in the official test annotations.
    """
    objs = []
    for o in scene.objects:
        if split == "test" and o.label not in TEST_LABELS:
            continue
        d = {"label": o.label, "polygon": o.polygon.tolist()}
        if o.deleted:
            d["deleted"] = 1
        objs.append(d)
    return {"imgHeight": scene.camera.height, "imgWidth": scene.camera.width, "objects": objs}


@dataclass(frozen=True)
class FrameSpec:
    """One frame to generate (picklable job)."""

    root: str
    split: str
    city: str
    seq: int
    seed: int
    index: int
    width: int
    height: int
    raster: str

    @property
    def name(self) -> str:
        """``<city>_<seq:06d>_<frame:06d>``."""
        return f"{self.city}_{self.seq:06d}_{FRAME_NUMBER:06d}"

    @property
    def image_path(self) -> str:
        return os.path.join(self.root, "leftImg8bit", self.split, self.city,
                            f"{self.name}_leftImg8bit.png")

    @property
    def json_path(self) -> str:
        return os.path.join(self.root, "gtFine", self.split, self.city,
                            f"{self.name}_gtFine_polygons.json")

    def rng(self, stream: int) -> np.random.Generator:
        return np.random.default_rng(
            np.random.SeedSequence([self.seed, SPLIT_CODES[self.split], self.index, stream]))


def make_frame(spec: FrameSpec) -> tuple[Scene, np.ndarray, np.ndarray]:
    """Build and render one frame in memory: ``(scene, image, index)`` (:func:`render_image`)."""
    scene = build_scene(spec.rng(0), spec.width, spec.height)
    image, index = render_image(scene, spec.rng(1), spec.raster)
    return scene, image, index


def write_frame(spec: FrameSpec) -> dict[str, int]:
    """Generate one frame and write its image and JSON atomically; returns label → object count."""
    from segprep.io import atomic_write_bytes, write_png

    scene, image, _ = make_frame(spec)
    write_png(spec.image_path, image)
    doc = scene_json(scene, spec.split)
    atomic_write_bytes(spec.json_path, json.dumps(doc, separators=(",", ":")).encode())
    return dict(Counter(o["label"] for o in doc["objects"] if not o.get("deleted")))


@dataclass
class SynthSummary:
    """What :func:`generate_cityscapes` wrote.

    Attributes:
        root: the dataset root.
        frames: split → frame names (``<city>_<seq>_<frame>``) in order.
        width, height: image size (px).
        objects: label → number of (non-deleted) objects written in the JSONs.
        seconds: wall time.
    """

    root: str
    frames: dict[str, list[str]]
    width: int
    height: int
    objects: dict[str, int]
    seconds: float

    @property
    def num_frames(self) -> int:
        return sum(len(v) for v in self.frames.values())

    def line(self) -> str:
        counts = ", ".join(f"{s} {len(v)}" for s, v in self.frames.items())
        return (f"synthetic Cityscapes: {self.num_frames} frames ({counts}) at "
                f"{self.width}x{self.height}, {sum(self.objects.values())} objects of "
                f"{len(self.objects)} labels in {self.seconds:.1f} s -> {self.root}")


def frame_specs(out_root: str | os.PathLike, n_train: int = 24, n_val: int = 8, n_test: int = 8,
                width: int = 512, height: int = 256, seed: int = 0, raster: str = "official"
                ) -> list[FrameSpec]:
    """The frames :func:`generate_cityscapes` writes (cities round-robin per split)."""
    specs = []
    for split, n in (("train", n_train), ("val", n_val), ("test", n_test)):
        cities = CITIES[split]
        for i in range(n):
            specs.append(FrameSpec(str(out_root), split, cities[i % len(cities)],
                                   i // len(cities), seed, i, width, height, raster))
    return specs


def generate_cityscapes(out_root: str | os.PathLike, n_train: int = 24, n_val: int = 8,
                        n_test: int = 8, width: int = 512, height: int = 256, seed: int = 0,
                        raster: str = "official", jobs: int | None = 1) -> SynthSummary:
    """Write a synthetic Cityscapes-format dataset (images + gtFine polygon JSONs).

    Existing files of the same names are replaced (the output is a pure function of the
    arguments). A ``SYNTHETIC.txt`` at the root records the parameters.

    Args:
        out_root: dataset root to create (``leftImg8bit/`` and ``gtFine/`` go under it).
        n_train, n_val, n_test: frames per split (``>= 0``).
        width, height: image size in pixels (``>= 64 x 32``; Cityscapes is 2048x1024).
        seed: random seed; the same arguments give byte-identical files.
        raster: polygon rasteriser the image is rendered with (``official``, as ``gen-gt``'s
            default, or ``pillow``).
        jobs: worker processes (1: this process; None: all cores).

    Returns:
        a :class:`SynthSummary`.

    Raises:
        SegprepError: bad sizes or counts, or a frame that could not be written.
    """
    from segprep.io import atomic_write_text, run_batch

    t0 = time.perf_counter()
    if width < 64 or height < 32:
        raise SegprepError(out_root, f"image size {width}x{height} too small (min 64x32)")
    if min(n_train, n_val, n_test) < 0:
        raise SegprepError(out_root, "frame counts must be >= 0")
    specs = frame_specs(out_root, n_train, n_val, n_test, width, height, seed, raster)
    Path(out_root).mkdir(parents=True, exist_ok=True)
    counts: Counter = Counter()
    for outcome in run_batch(write_frame, specs, jobs=jobs, desc="synth", quiet=True,
                             unit="frame", prefer="processes"):
        if not outcome.ok:
            raise SegprepError(outcome.item.json_path, outcome.error or "generation failed")
        counts.update(outcome.value)
    frames: dict[str, list[str]] = {s: [] for s in ("train", "val", "test")}
    for sp in specs:
        frames[sp.split].append(sp.name)
    atomic_write_text(os.path.join(out_root, MARKER),
                      "Synthetic Cityscapes-format data generated by segprep.synth "
                      "(not real Cityscapes frames).\n"
                      f"seed={seed} width={width} height={height} train={n_train} val={n_val} "
                      f"test={n_test} raster={raster}\n")
    return SynthSummary(str(out_root), frames, width, height, dict(sorted(counts.items())),
                        time.perf_counter() - t0)
