"""Pairing the stages of two backbones whose stage counts differ.

ResNet-50 has 4 stages (reductions 4, 8, 16, 32), MobileNetV1 has 5 (2, 4, 8, 16, 32), VGG16
has 5 (1, 2, 4, 8, 32). Hybrid forward switches only where both networks have a boundary at
the same scale, so stages between shared scales are merged into one.
"""
from __future__ import annotations

from typing import Sequence

from torch import nn

from .errors import HybridKTError
from .stages import StagedBackbone, StageSpec


class StageMismatchError(HybridKTError, ValueError):
    """Two backbones' stages cannot be paired."""


def describe_stages(backbone: StagedBackbone) -> str:
    """One line per stage: name, channels, reduction (and scale if dilated), for messages."""
    return ", ".join(
        f"{s.name}(C={s.channels}, /{s.reduction}"
        + (f", scale {s.scale}" if s.scale != s.reduction else "") + ")"
        for s in backbone.stage_specs)


def merge_stages(backbone: StagedBackbone, groups: Sequence[Sequence[int]]) -> StagedBackbone:
    """Returns a StagedBackbone over the same model whose stage k runs the stages ``groups[k]``.

    Args:
        backbone: the backbone to regroup (its model is shared, not copied).
        groups: consecutive, non-empty runs of stage indices covering every stage in order.
    """
    flat = [i for g in groups for i in g]
    if flat != list(range(backbone.num_stages)) or any(len(g) == 0 for g in groups):
        raise ValueError(
            f"groups {groups} must split stages 0..{backbone.num_stages - 1} into consecutive, "
            "non-empty runs"
        )
    if all(len(g) == 1 for g in groups):
        return backbone
    specs = backbone.stage_specs
    merged = []
    for group in groups:
        if len(group) == 1:
            merged.append(specs[group[0]])
            continue
        last = specs[group[-1]]
        merged.append(StageSpec(
            name="+".join(specs[i].name for i in group),
            channels=last.channels,
            reduction=last.reduction,
            module=nn.Sequential(*(specs[i].module for i in group)),
            scale=last.scale,
            tap=last.tap,
            global_tokens=last.global_tokens,
        ))
    return StagedBackbone(backbone.model, merged)


def _groups_ending_at(scales: list[int], ends: list[int]) -> list[list[int]]:
    # Each group ends at the *last* stage with that scale (a stage cut after a head feature
    # can repeat one); stages after the last shared scale join the final group.
    cuts = [max(i for i, r in enumerate(scales) if r == e) for e in ends]
    groups, start = [], 0
    for cut in cuts:
        groups.append(list(range(start, cut + 1)))
        start = cut + 1
    groups[-1].extend(range(start, len(scales)))
    return groups


def aligned_stage_groups(student: StagedBackbone,
                         teacher: StagedBackbone) -> tuple[list[list[int]], list[list[int]]]:
    """The stage groups ``align_stages`` merges: one group per shared scale, per network.

    Stages pair by ``scale`` (the reduction without dilation), so a dilated D8 network pairs
    with a plain one stage for stage; adapters interpolate where sizes differ. Backbones with
    equal stage counts get one group per stage (paired by index). Adapters use the groups to
    map a head's ``out_indices`` onto merged stages.

    Raises:
        StageMismatchError: if the two share fewer than two scales at which to switch.
    """
    if student.num_stages == teacher.num_stages:
        return ([[i] for i in range(student.num_stages)],
                [[i] for i in range(teacher.num_stages)])
    s_red = [s.scale for s in student.stage_specs]
    t_red = [s.scale for s in teacher.stage_specs]
    shared = sorted(set(s_red) & set(t_red))
    if len(shared) < 2:
        raise StageMismatchError(
            f"cannot pair the student's stages [{describe_stages(student)}] with the teacher's "
            f"[{describe_stages(teacher)}]: they share {len(shared)} reduction(s) "
            f"({shared}), hybrid forward needs at least 2. Declare stages that end at the "
            "same scales (merge_stages) or choose a teacher of similar depth."
        )
    return _groups_ending_at(s_red, shared), _groups_ending_at(t_red, shared)


def align_stages(student: StagedBackbone,
                 teacher: StagedBackbone) -> tuple[StagedBackbone, StagedBackbone]:
    """Merges stages so both backbones have one stage per shared scale.

    See ``aligned_stage_groups`` for the grouping; equal stage counts are returned unchanged.
    """
    student_groups, teacher_groups = aligned_stage_groups(student, teacher)
    return merge_stages(student, student_groups), merge_stages(teacher, teacher_groups)
