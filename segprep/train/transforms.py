"""The trainer's joint image + mask transforms, through albumentations (one ``Compose`` applied to
both: images bilinear, masks nearest neighbour, padded mask pixels the ignore value 255).

* :func:`train_transforms`: random scale → pad (image: the model's mean colour, mask: 255) and
  random crop → horizontal flip → colour jitter (brightness, contrast, saturation, hue; the image
  only) → lighting / blur / noise changes (``photometric``), each part present only when its
  option asks for it.
* :func:`resize_transform`: the deterministic ``--size`` resize done once per frame at load.
* :func:`seeded`: a per-sample seed from ``(seed, epoch, index)``, so a sample is augmented
  identically whatever the worker count, rank or resume point (``--resume`` reproduces an
  uninterrupted run); albumentations' ``Compose.set_random_seed`` takes it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from segprep.class_maps import IGNORE_INDEX


def train_transforms(crop: tuple[int, int] | None = None,
                     scale: tuple[float, float] | None = None, flip: bool = True,
                     jitter: float = 0.0, hue: float = 0.0,
                     pad_rgb: tuple[int, int, int] = (0, 0, 0),
                     photometric: float = 0.0) -> Any | None:
    """The training augmentation as one ``albumentations.Compose``, or None when nothing is asked.

    Args:
        crop: ``(H, W)`` random crop; frames smaller than it are padded at the bottom/right first
            (image ``pad_rgb``, mask 255).
        scale: ``(min, max)`` factor of a random rescale (uniform), or None.
        flip: horizontal flip with p = 0.5.
        jitter: brightness, contrast and saturation factors from ``U(1 - j, 1 + j)`` (0: off), as
            torchvision's ``ColorJitter``.
        hue: hue shift from ``U(-hue, hue)`` of the circle (0: off; below 0.5).
        pad_rgb: the padding colour of images (the model's normalisation mean, so padding is 0
            after normalisation).
        photometric: probability of each of two lighting / camera changes aimed at the gap
            between drives (dusk vs daylight, another camera): one of colour temperature
            (Planckian jitter), gamma 0.6-1.6, CLAHE or an HSV shift; and one of a 3-5 px
            Gaussian or motion blur or sensor noise (0: off).

    Returns:
        A ``Compose`` called as ``aug(image=(H, W, 3) uint8, mask=(H, W) uint8)``, or None.
    """
    import albumentations as A
    import cv2

    steps: list[Any] = []
    if scale is not None:
        steps.append(A.RandomScale(scale_limit=(scale[0] - 1.0, scale[1] - 1.0),
                                   interpolation=cv2.INTER_LINEAR,
                                   mask_interpolation=cv2.INTER_NEAREST, p=1.0))
    if crop is not None:
        steps.append(A.PadIfNeeded(min_height=crop[0], min_width=crop[1], position="top_left",
                                   border_mode=cv2.BORDER_CONSTANT, fill=tuple(pad_rgb),
                                   fill_mask=IGNORE_INDEX))
        steps.append(A.RandomCrop(height=crop[0], width=crop[1]))
    if flip:
        steps.append(A.HorizontalFlip(p=0.5))
    if jitter > 0 or hue > 0:
        steps.append(A.ColorJitter(brightness=jitter, contrast=jitter, saturation=jitter,
                                   hue=hue, p=1.0))
    if photometric > 0:
        steps.append(A.OneOf([A.PlanckianJitter(mode="blackbody"),
                              A.RandomGamma(gamma_limit=(60, 160)),
                              A.CLAHE(clip_limit=(1, 3)),
                              A.HueSaturationValue(hue_shift_limit=8, sat_shift_limit=25,
                                                   val_shift_limit=20)], p=photometric))
        steps.append(A.OneOf([A.GaussianBlur(blur_limit=(3, 5)), A.MotionBlur(blur_limit=(3, 5)),
                              A.GaussNoise(std_range=(0.02, 0.06))], p=photometric))
    if not steps:
        return None
    return A.Compose(steps, mask_interpolation=cv2.INTER_NEAREST)


def resize_transform(size: tuple[int, int]) -> Any:
    """``--size (W, H)``: resize the image bilinearly and the mask by nearest neighbour."""
    import albumentations as A
    import cv2

    w, h = size
    return A.Compose([A.Resize(height=h, width=w, interpolation=cv2.INTER_LINEAR,
                               mask_interpolation=cv2.INTER_NEAREST)])


def seeded(seed: int, epoch: int, index: int) -> int:
    """A 32-bit seed for one sample of one epoch (``numpy.random.SeedSequence`` of the three)."""
    return int(np.random.SeedSequence([int(seed), int(epoch), int(index)]).generate_state(1)[0])


def apply(aug: Any, img: np.ndarray, mask: np.ndarray, seed: int | None = None
          ) -> tuple[np.ndarray, np.ndarray]:
    """Run ``aug`` on ``(H, W, 3)`` uint8 ``img`` and ``(H, W)`` uint8 ``mask`` (seeded first when
    ``seed`` is given); returns the transformed pair, same dtypes."""
    if seed is not None:
        aug.set_random_seed(seed)
    out = aug(image=img, mask=mask)
    return out["image"], out["mask"]
