"""Prediction: stills, folders and video through one pipeline, on PyTorch or ONNX Runtime.

* :mod:`~segprep.predict.backends` — where the network runs (``torch`` checkpoint, ``onnxruntime``
  ``.onnx`` with its segprep metadata) and :class:`ModelInfo`;
* :mod:`~segprep.predict.predictor` — :class:`Predictor`: resize to the training size, sliding
  windows, flip TTA, argmax — the same for every backend;
* :mod:`~segprep.predict.pipeline` — decode → model → encode, a thread each, bounded queues;
* :mod:`~segprep.predict.render` — trainIds, labelIds, color, overlay, side-by-side;
* :mod:`~segprep.predict.stills` — folders, images, ``.odgt``: :func:`predict_images`;
* :mod:`~segprep.predict.video` — PyAV decode/encode, checked output: :func:`predict_video`.
"""

from segprep.predict.backends import BACKENDS, ModelInfo, OnnxBackend, TorchBackend, load_backend
from segprep.predict.pipeline import StageTimes, run_pipeline
from segprep.predict.predictor import TTA_MODES, Predictor, tile_positions
from segprep.predict.render import FORMATS, MASK_FORMATS, VIDEO_FORMATS, default_palette, render
from segprep.predict.stills import (
                                      IMAGE_SUFFIXES,
                                      OVERLAY_EXTS,
                                      Item,
                                      PredictReport,
                                      list_inputs,
                                      load_image,
                                      output_path,
                                      predict_images,
                                      write_prediction,
)
from segprep.predict.video import (
                                      VIDEO_SUFFIXES,
                                      VideoInfo,
                                      VideoReport,
                                      VideoWriter,
                                      check_video,
                                      input_kind,
                                      predict_video,
                                      probe,
                                      read_frames,
                                      sniff,
)

__all__ = [
    "BACKENDS", "FORMATS", "IMAGE_SUFFIXES", "MASK_FORMATS", "OVERLAY_EXTS", "TTA_MODES",
    "VIDEO_FORMATS", "VIDEO_SUFFIXES", "Item", "ModelInfo", "OnnxBackend", "PredictReport",
    "Predictor", "StageTimes", "TorchBackend", "VideoInfo", "VideoReport", "VideoWriter",
    "check_video", "default_palette", "input_kind", "list_inputs", "load_backend", "load_image",
    "output_path", "predict_images", "predict_video", "probe", "read_frames", "render",
    "run_pipeline", "sniff", "tile_positions", "write_prediction",
]
