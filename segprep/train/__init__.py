"""Training: the ``segprep train`` U-Net trainer.

* :mod:`segprep.train.data`: odgt records → ``Dataset`` with joint image/mask transforms.
* :mod:`segprep.train.losses`: CE / Dice / Focal / sums, all ignoring ``ignore_index``.
* :mod:`segprep.train.loop`: ``set_up`` / ``build_data`` / ``build_training`` /
  ``train_one_epoch`` / ``evaluate`` / ``save_epoch`` / ``main`` (poly LR with warm-up, AMP,
  channels_last, EMA, DDP under torchrun, resumable checkpoints, time budget).
* :mod:`segprep.train.checkpoint`: ``last.pt`` / ``best.pt`` and ``load_model`` for predict/export.

The model itself lives in :mod:`segprep.model` (shared with predict and export).
"""
