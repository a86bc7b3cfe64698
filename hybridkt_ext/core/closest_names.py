"""The "Did you mean ...?" hint of every unknown-name error (config keys, model names).

One helper for all adapters, so a typo reads the same whichever framework's config it is in.
"""
from __future__ import annotations

import difflib
import inspect
from typing import Callable, Iterable

# Keys renamed before 0.1.0 was released, and their names now: a config written with the old
# name is told the new one rather than the closest spelling. Compared in lower case, so the
# detectron2 YAML key is covered too. ("checkpoint" names files only; recomputing activations
# in backward is "recompute".)
RENAMED_KEYS = {"checkpoint_teacher": "recompute_teacher"}


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


def did_you_mean(name: str, choices: Iterable[str], prefix: str = "", n: int = 3) -> str:
    """`` Did you mean 'A', 'B'?`` (leading space, to append to a message), or ``""``.

    Args:
        name: the unknown name, as the user wrote it.
        choices: the valid names.
        prefix: put before each suggestion (``'torchvision.'``, ``'MODEL.HYBRIDKT.'``).
        n: name at most this many (1: only the closest).

    Returns:
        The hint naming the closest valid names, or an empty string when none is close.
    """
    close = closest_names(name, choices, n)
    return f" Did you mean {', '.join(repr(prefix + c) for c in close)}?" if close else ""


def refuse_unknown_keys(given: Iterable[str], valid: Iterable[str], where: str) -> None:
    """Raises ValueError for the first key of ``given`` not in ``valid``, naming the closest.

    Args:
        given: the keys the user wrote.
        valid: the keys that are taken.
        where: what the keys belong to, as the message starts (``'HybridBackbone'``,
            ``'HybridBackbone.fitnet'``).
    """
    valid = list(valid)
    unknown = sorted(set(given) - set(valid))
    if unknown:
        refuse_renamed_key(unknown[0], where)
        raise ValueError(f"{where}: unknown key {unknown[0]!r}.{did_you_mean(unknown[0], valid)} "
                         f"Valid keys: {', '.join(valid)}.")


def renamed_key(key: str) -> str | None:
    """The name a renamed key has now, in the case the user wrote it in; None if not renamed."""
    new = RENAMED_KEYS.get(key.lower())
    return None if new is None else new.upper() if key.isupper() else new


def refuse_renamed_key(key: str, where: str) -> None:
    """Raises ValueError naming the new name when ``key`` is a renamed key.

    Args:
        key: the key the user wrote.
        where: what the key belongs to, as the message starts.
    """
    new = renamed_key(key)
    if new is not None:
        raise ValueError(f"{where}: {key!r} was renamed {new!r}; write {new} instead.")


def keyword_names(function: Callable[..., object]) -> list[str]:
    """The keyword arguments ``function`` (or a class's constructor) takes, in order."""
    parameters = inspect.signature(function).parameters.values()
    return [p.name for p in parameters if p.name != "self"
            and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
