"""Top-level ``segprep`` click group.

Subcommands are registered by module path and imported only when used, so ``segprep cityscapes
gen-gt`` never pays for importing PyTorch. A command module exposes one click command or group
named ``command``.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import warnings
from typing import Any

import click

from segprep import __version__
from segprep.cli.common import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_USAGE, error, show_warning
from segprep.errors import SegprepError

# name -> module exposing `command`; each module is one command (group) of the CLI
COMMANDS: dict[str, str] = {
    "cityscapes": "segprep.cli.cityscapes",
    "bdd100k": "segprep.cli.bdd100k",
    "camvid": "segprep.cli.camvid",
    "odgt": "segprep.cli.odgt",
    "train": "segprep.cli.train",
    "evaluate": "segprep.cli.evaluate",
    "predict": "segprep.cli.predict",
    "submit": "segprep.cli.submit",
    "export": "segprep.cli.export",
    "demo": "segprep.cli.demo",
}


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(n for n in COMMANDS if importlib.util.find_spec(COMMANDS[n]) is not None)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module = COMMANDS.get(cmd_name)
        if module is None or importlib.util.find_spec(module) is None:
            return None
        return importlib.import_module(module).command

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command; whatever escapes it ends as one error line, never a traceback:
        bad input (``SegprepError``) exit 2, an OS error (unwritable output, full disk) exit 1,
        Ctrl-C exit 130."""
        warnings.showwarning = show_warning
        try:
            return super().invoke(ctx)
        except SegprepError as exc:
            error(str(exc))
            sys.exit(EXIT_USAGE)
        except KeyboardInterrupt:
            error("interrupted")
            sys.exit(EXIT_INTERRUPTED)
        except OSError as exc:
            where = exc.filename if exc.filename is not None else ""
            error(f"{where}: {exc.strerror or exc}" if where else str(exc.strerror or exc))
            sys.exit(EXIT_FAILED)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"],
                                               "max_content_width": 100})
@click.version_option(__version__, prog_name="segprep")
def cli() -> None:
    """segprep: semantic-segmentation dataset preparation for driving scenes.

    Convert Cityscapes / BDD100K / CamVid annotations to training masks, write .odgt manifests and
    splits, train a U-Net, evaluate with the official protocols and package submissions.
    Every batch command takes -j/--jobs, skips outputs that already exist unless --overwrite, shows
    a progress bar on a terminal, and exits 0 (all good), 1 (some files failed) or 2 (bad usage).
    """


def main() -> None:  # console-script entry point
    from segprep.jit import lean_process

    lean_process()
    try:
        cli(prog_name="segprep")
    finally:
        # The process ends here. Every object alive now is left out of the interpreter's last
        # garbage collection (its memory goes back with the process; atexit handlers and module
        # teardown still run): with numba loaded that collection alone costs ~60 ms a command.
        import gc

        gc.freeze()

