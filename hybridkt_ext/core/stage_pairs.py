"""The base of the mimicking losses that pair a student and a teacher stage, and its checks.

FitNet, FT, AB and CWD each build per-stage modules from channel counts (a regressor, a
translator, a connector, an aligner), so they validate the channels, the chosen stages and each feature pair the same way.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def check_stages(stages: Sequence[int], num_stages: int | None) -> tuple[int, ...]:
    """The stage indices as a tuple; refuses an empty list, duplicates, non-ints and indices
    past ``num_stages`` (None: no upper bound known yet)."""
    stages = tuple(stages)
    if not stages:
        raise ValueError("`stages` must name at least one stage index; got an empty list.")
    if len(set(stages)) != len(stages):
        raise ValueError(f"`stages` has duplicate indices: {list(stages)}.")
    for index in stages:
        if not isinstance(index, int) or isinstance(index, bool) or index < 0:
            raise ValueError(f"`stages` must hold non-negative ints; got {index!r}.")
        if num_stages is not None and index >= num_stages:
            raise ValueError(
                f"stage index {index} is out of range for {num_stages} stages "
                f"(valid: 0..{num_stages - 1})."
            )
    return stages


def check_feature_lists(
    student: Sequence[torch.Tensor], teacher: Sequence[torch.Tensor], stages: Sequence[int]
) -> None:
    """Refuses feature lists of different lengths or without a chosen stage."""
    if len(student) != len(teacher):
        raise ValueError(
            f"got {len(student)} student features but {len(teacher)} teacher features; pass "
            "one feature per stage for both."
        )
    if max(stages) >= len(student):
        raise ValueError(
            f"stage index {max(stages)} is out of range for {len(student)} stage features."
        )


def check_channels(student_channels: Sequence[int], teacher_channels: Sequence[int]) -> None:
    """Refuses channel lists of different lengths, empty ones, or non-positive counts."""
    if len(student_channels) != len(teacher_channels):
        raise ValueError(
            f"student has {len(student_channels)} stages but teacher has "
            f"{len(teacher_channels)}; give channels for the same stages on both sides.")
    if not student_channels:
        raise ValueError("`student_channels` and `teacher_channels` must not be empty.")
    for name, channels in (("student", student_channels), ("teacher", teacher_channels)):
        if any(c <= 0 for c in channels):
            raise ValueError(f"{name} channels must be positive; got {list(channels)}.")


def check_non_negative(name: str, value: float) -> float:
    """``value`` as a float; refuses a negative one (a loss weight cannot reward mismatch)."""
    if value < 0:
        raise ValueError(f"`{name}` must be non-negative; got {value}.")
    return float(value)


def chosen_stages(stages: Sequence[int] | None, num_stages: int) -> tuple[int, ...]:
    """The checked stage indices; default: the last stage."""
    return check_stages([num_stages - 1] if stages is None else stages, num_stages)


def resize_to(feature: torch.Tensor, size: torch.Size) -> torch.Tensor:
    """``feature`` (N, C, H, W) bilinearly resized to ``size`` (H', W') if it differs."""
    if feature.shape[-2:] == size:
        return feature
    return F.interpolate(feature, size=size, mode="bilinear", align_corners=False)


class StagePairLoss(nn.Module):
    """A loss summed over chosen stages, each comparing the student's and the teacher's feature.

    Subclasses build their per-stage modules in ``__init__`` (one per entry of ``stages``, in
    order) and compute one stage's weighted loss in ``pair_loss``. The teacher's features are
    detached here, so no gradient reaches a teacher even if the caller forgot ``no_grad``.

    Args:
        student_channels: channels of each student stage.
        teacher_channels: channels of each teacher stage (same number of stages).
        stages: indices of the stages to transfer; default: the last stage.
    """

    def __init__(self, student_channels: Sequence[int], teacher_channels: Sequence[int],
                 stages: Sequence[int] | None) -> None:
        super().__init__()
        check_channels(student_channels, teacher_channels)
        self.stages = chosen_stages(stages, len(student_channels))
        self.student_channels = tuple(student_channels)
        self.teacher_channels = tuple(teacher_channels)

    def pair_loss(self, position: int, student: torch.Tensor, teacher: torch.Tensor
                  ) -> torch.Tensor:
        """The weighted loss of the ``position``-th chosen stage (a scalar)."""
        raise NotImplementedError

    def forward(self, student_feats: Sequence[torch.Tensor],
                teacher_feats: Sequence[torch.Tensor]) -> torch.Tensor:
        """Sums ``pair_loss`` over the chosen stages.

        Args:
            student_feats: the student's stage features, (N, C_s_i, H_i, W_i) each.
            teacher_feats: the teacher's stage features, (N, C_t_i, H'_i, W'_i) each.

        Returns:
            A scalar tensor.

        Raises:
            ValueError: the lists do not hold a chosen stage, or its channels are not those
                the loss was built for.
        """
        check_feature_lists(student_feats, teacher_feats, self.stages)
        total = student_feats[0].new_zeros(())
        for position, index in enumerate(self.stages):
            student, teacher = student_feats[index], teacher_feats[index].detach()
            if (student.shape[1], teacher.shape[1]) != (self.student_channels[index],
                                                        self.teacher_channels[index]):
                raise ValueError(
                    f"stage {index}: features have {student.shape[1]} (student) and "
                    f"{teacher.shape[1]} (teacher) channels, but the loss was built for "
                    f"{self.student_channels[index]} and {self.teacher_channels[index]}.")
            total = total + self.pair_loss(position, student, teacher)
        return total
