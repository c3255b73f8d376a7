"""Image sizes written as text (``480x360``, ``480×360``, ``480 X 360``): the one parser."""

from __future__ import annotations

import re

from segprep.errors import SegprepError

_PAIR = re.compile(r"\s*(\d+)\s*[xX×]\s*(\d+)\s*")
_ONE = re.compile(r"\s*(\d+)\s*")


def parse_pair(text: str, option: str = "--size", order: str = "WxH",
               square_ok: bool = False) -> tuple[int, int]:
    """``"AxB"`` → ``(A, B)``: two positive integers in the order written (``order`` names it in
    errors: ``WxH`` or ``HxW``), separated by ``x``, ``X`` or ``×``. With ``square_ok`` a single
    ``N`` means ``NxN``.

    Raises:
        SegprepError: naming ``option``, when the text is not such a pair.
    """
    m = _PAIR.fullmatch(str(text))
    if m is None and square_ok and _ONE.fullmatch(str(text)):
        a = b = int(text)
    elif m is None:
        example = "480x360" if order == "WxH" else "512x1024"
        raise SegprepError(option, f"expected {order} (e.g. {example}), got {text!r}")
    else:
        a, b = int(m.group(1)), int(m.group(2))
    if a <= 0 or b <= 0:
        raise SegprepError(option, f"expected {order} with positive sizes, got {text!r}")
    return a, b
