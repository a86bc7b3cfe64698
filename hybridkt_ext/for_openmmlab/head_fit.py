"""Checks that a segmentor's neck and heads take what its HybridBackbone returns.

Swapping the backbone keeps the user's neck and heads. If the student's ``out_indices`` or
channels differ from what they were written for, mmseg fails deep inside the first forward
(an IndexError in ``BaseDecodeHead._transform_inputs``, a conv weight-shape error). This check
runs when the transfer step is wired, before the first iteration, and names the setting to
change.
"""
from __future__ import annotations

from typing import Iterator, Sequence

from torch import nn

from hybridkt_ext.core import StageMismatchError


def backbone_channels(backbone: nn.Module) -> tuple[int, ...]:
    """Channels of each feature a HybridBackbone returns, in order."""
    engine = backbone.engine
    specs = engine.student.stage_specs
    return tuple(specs[i].channels for i in engine.out_indices)


def _heads(segmentor: nn.Module) -> Iterator[tuple[str, nn.Module]]:
    for name in ("decode_head", "auxiliary_head"):
        head = getattr(segmentor, name, None)
        if isinstance(head, nn.ModuleList):
            yield from ((f"{name}[{i}]", h) for i, h in enumerate(head))
        elif head is not None:
            yield name, head


def _as_list(value) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _expected_in_channels(head: nn.Module, channels: Sequence[int], where: str) -> object:
    """What ``head.in_channels`` must be for the features it selects; checks ``in_index``."""
    indices = _as_list(head.in_index)
    bad = [i for i in indices if not -len(channels) <= i < len(channels)]
    if bad:
        raise StageMismatchError(
            f"{where}.in_index={head.in_index} selects backbone outputs {bad}, but the "
            f"HybridBackbone returns {len(channels)} features (channels {list(channels)}); set "
            f"{where}.in_index within 0..{len(channels) - 1}, or the student's out_indices.")
    chosen = [channels[i] for i in indices]
    transform = getattr(head, "input_transform", None)
    if transform == "resize_concat":
        return sum(chosen)
    if transform == "multiple_select":
        return chosen
    return chosen[0]


def check_heads_fit(segmentor: nn.Module, backbone: nn.Module) -> None:
    """Refuses a neck or head whose inputs do not match the backbone's outputs.

    Raises:
        StageMismatchError: a head's ``in_index`` is out of range, or the channels of a neck
            or head differ from the backbone features it takes (the setting named).
    """
    channels = backbone_channels(backbone)
    neck = getattr(segmentor, "neck", None)
    if neck is not None:  # the heads then take the neck's outputs, which the neck checks
        expected = getattr(neck, "in_channels", None)
        if isinstance(expected, (list, tuple)) and list(expected) != list(channels):
            raise StageMismatchError(
                f"neck.in_channels={list(expected)}, but the HybridBackbone returns features "
                f"with channels {list(channels)}; set neck.in_channels={list(channels)}.")
        return
    for where, head in _heads(segmentor):
        if not hasattr(head, "in_index") or not hasattr(head, "in_channels"):
            continue
        expected = _expected_in_channels(head, channels, where)
        given = head.in_channels
        if (list(given) if isinstance(given, (list, tuple)) else given) != expected:
            raise StageMismatchError(
                f"{where}.in_channels={given}, but the backbone features it selects "
                f"(in_index={head.in_index}) have {expected} channels; set "
                f"{where}.in_channels={expected}.")
