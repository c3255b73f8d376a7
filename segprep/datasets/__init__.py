"""One module per dataset (:mod:`.cityscapes`, :mod:`.bdd100k`, :mod:`.camvid`, :mod:`.generic`
images + masks): folders, suffixes, split names, the frame key and the one rule matching a file
to a frame. gen-gt, the converters, odgt create, evaluate, predict naming and submit ask here."""

from __future__ import annotations

import os
from pathlib import Path

from segprep.datasets import bdd100k, camvid, cityscapes
from segprep.datasets.generic import Pairing
from segprep.errors import SegprepError

PRESETS = {"cityscapes": cityscapes.pairing, "bdd100k": bdd100k.pairing,
           "camvid-segnet": camvid.pairing}
"""``odgt create --dataset`` layouts."""
DATASETS = tuple(PRESETS)


def preset_pairing(dataset: str, root: str | os.PathLike, split: str,
                   image_suffix: str | None = None, mask_suffix: str | None = None) -> Pairing:
    """Pair images and masks of an official dataset layout (see each module's ``pairing``).

    Raises:
        SegprepError: unknown dataset, or no known layout under ``root`` for ``split``.
    """
    root = Path(root)
    if not root.is_dir():
        raise SegprepError(root, "no such directory")
    if dataset not in PRESETS:
        raise SegprepError("--dataset", f"unknown dataset {dataset!r}; choose from "
                                        f"{', '.join(DATASETS)}")
    return PRESETS[dataset](root, split, image_suffix, mask_suffix)
