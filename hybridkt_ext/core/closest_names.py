"""The "Did you mean ...?" hint of every unknown-name error (config keys, model names).

One helper for all adapters, so a typo reads the same whichever framework's config it is in.
"""
from __future__ import annotations

import difflib
from typing import Iterable


def closest_names(name: str, choices: Iterable[str], n: int = 3) -> list[str]:
    """The up to ``n`` names of ``choices`` closest to ``name``, best first.

    Case is ignored when comparing (``swtich_points`` finds ``SWITCH_POINTS``), but the names are
    returned as ``choices`` spells them.

    Args:
        name: the unknown name, as the user wrote it.
        choices: the valid names.
        n: at most this many names.

    Returns:
        The close names (difflib's ratio of at least 0.6); empty when none is close.
    """
    by_lower: dict[str, str] = {}
    for choice in choices:
        by_lower.setdefault(choice.lower(), choice)
    close = difflib.get_close_matches(name.lower(), list(by_lower), n=n, cutoff=0.6)
    return [by_lower[c] for c in close]


def did_you_mean(name: str, choices: Iterable[str], prefix: str = "") -> str:
    """`` Did you mean 'A', 'B'?`` (leading space, to append to a message), or ``""``.

    Args:
        name: the unknown name, as the user wrote it.
        choices: the valid names.
        prefix: put before each suggestion (``'torchvision.'``, ``'MODEL.HYBRIDKT.'``).

    Returns:
        The hint naming the closest valid names, or an empty string when none is close.
    """
    close = closest_names(name, choices)
    return f" Did you mean {', '.join(repr(prefix + c) for c in close)}?" if close else ""
