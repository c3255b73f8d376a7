"""A synthetic, Cityscapes-format driving dataset: polygon JSONs and camera-like images.

:func:`generate_cityscapes` writes the official Cityscapes layout::

    <root>/leftImg8bit/<split>/<city>/<city>_<seq:06d>_<frame:06d>_leftImg8bit.png
    <root>/gtFine/<split>/<city>/<city>_<seq:06d>_<frame:06d>_gtFine_polygons.json

so that every segprep command (``cityscapes gen-gt``, ``odgt create --dataset cityscapes``,
``train``, ``evaluate cityscapes``, ``submit cityscapes``) runs on it exactly as on the real
release, on a fresh machine with nothing downloaded. It is what ``segprep demo`` and the tests use.

Scenes are street views built in 3-D and projected with a pinhole camera (horizon, vanishing point,
camera 1.5 m above the road): sky, a skyline, facades along both sides, terrain verges, sidewalks,
a road, walls and fences, trees, poles with traffic signs and lights, cars (some with a
``license plate``), trucks and buses, persons, bicycles with riders, ``static`` street furniture,
a far ``cargroup``, the ``ego vehicle`` hood and ``rectification border`` corners. Objects are
listed in drawing order (background first, then standing objects far to near), as in the real
JSONs, and now and then a ``deleted`` object is added to exercise the conversion rules. Labels are
the 35 Cityscapes labels of ``class_maps/cityscapes.csv``; vertices are integers clipped to the
image, as in the official files.

The image is rendered from the same polygons, rasterised with the same rule as
``segprep cityscapes gen-gt`` (``raster="official"`` by default), so label edges and image edges
coincide pixel for pixel. Each object gets a natural colour (not the label palette) with per-object
shading, gradients and texture (facade windows in facade coordinates, lane markings and paving in
ground coordinates, tyres, glass and tail lights on vehicles, clothes on persons, blotchy foliage),
plus car shadows, exposure, white balance, vignetting, blur and sensor noise: a small U-Net learns
it, but not from colour alone. The test split's JSONs hold only the void objects (ego vehicle,
rectification border), as in the official test release; its images are fully rendered.

Everything is deterministic given ``seed`` (one :class:`numpy.random.SeedSequence` per frame).

Modules: :mod:`~segprep.synth.scene` (camera, objects, appearance kinds), :mod:`~segprep.synth.build`
(:func:`build_scene`), :mod:`~segprep.synth.render` (:func:`render_image`),
:mod:`~segprep.synth.files` (frames and datasets on disk); the names below are re-exported here.
City names are invented (``synthtown`` …) so that synthetic frames are never mistaken for real ones.
"""

from segprep.synth.build import build_scene
from segprep.synth.files import (
    CITIES,
    FRAME_NUMBER,
    MARKER,
    SPLIT_CODES,
    TEST_LABELS,
    FrameSpec,
    SynthSummary,
    frame_specs,
    generate_cityscapes,
    make_frame,
    scene_json,
    write_frame,
)
from segprep.synth.render import render_image
from segprep.synth.scene import Camera, Scene, SceneObject

__all__ = [
    "CITIES", "FRAME_NUMBER", "MARKER", "SPLIT_CODES", "TEST_LABELS", "Camera", "FrameSpec",
    "Scene", "SceneObject", "SynthSummary", "build_scene", "frame_specs", "generate_cityscapes",
    "make_frame", "render_image", "scene_json", "write_frame",
]
