"""``scripts/train_shape_rule.py`` in parts: :mod:`shape_rule.data` (the region cache and samples),
:mod:`shape_rule.scores`, :mod:`shape_rule.models` and :mod:`shape_rule.commands`. Imported by
that script, which puts ``scripts/`` and the repository root on ``sys.path`` first."""
