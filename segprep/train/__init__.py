"""Training: the ``segprep train`` U-Net trainer, laid out as torchvision's
``references/segmentation``.

* :mod:`segprep.train.config`: ``TrainConfig`` (every option) and its checked ranges.
* :mod:`segprep.train.data`: odgt records → ``Dataset`` (decode, remap, seeded augmentation).
* :mod:`segprep.train.transforms`: the joint image/mask augmentation (albumentations).
* :mod:`segprep.train.losses`: CE / Dice / Focal / sums, all ignoring ``ignore_index``.
* :mod:`segprep.train.setup`: device, threads, precision, data loaders, model (with its pretrained
  encoder), optimiser (encoder LR scaled), loss, schedule.
* :mod:`segprep.train.schedule`: poly LR with warm-up, the wall-clock budget, the EMA of weights.
* :mod:`segprep.train.engine`: ``train_one_epoch`` and ``evaluate``.
* :mod:`segprep.train.distributed`: DDP under torchrun.
* :mod:`segprep.train.run_folder`: ``metrics.csv``, ``curves.png``, resume repair, overwrite.
* :mod:`segprep.train.checkpoint`: ``last.pt`` / ``best.pt`` and ``load_model`` for predict/export.
* :mod:`segprep.train.loop`: ``main``, the run read top to bottom, and ``save_epoch``.

The models live in :mod:`segprep.model` (shared with predict and export).
"""
