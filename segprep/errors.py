"""The one exception type that library code raises for bad input.

Library code never calls ``sys.exit``; the CLI turns a :class:`SegprepError` into the one-line
message ``segprep: error: <file>: <what is wrong>`` and a non-zero exit status.
"""

from __future__ import annotations

import os


class SegprepError(Exception):
    """Bad input, tied to the file (or option) it came from.

    Args:
        where: the file path (or option name) the problem is about.
        message: what is wrong, one line.
    """

    def __init__(self, where: str | os.PathLike | None, message: str):
        self.where = str(where) if where is not None else ""
        self.message = " ".join(str(message).split())  # always one line
        super().__init__(f"{self.where}: {self.message}" if self.where else self.message)
