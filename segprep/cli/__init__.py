"""The ``segprep`` command line: a thin click layer, one module per command group."""

from segprep.cli.main import cli

__all__ = ["cli"]
