"""The knowledge-transfer baselines the paper compares against.

All losses take lists of stage features (the student's from a ``StagedBackbone``, the
teacher's computed under ``no_grad``) or logits, and detach the teacher inputs themselves, so
no gradient ever reaches a teacher even if the caller forgot ``no_grad``.

* ``FitNetLoss``: Romero et al., "FitNets: Hints for Thin Deep Nets", ICLR 2015.
* ``AttentionTransferLoss``: Zagoruyko & Komodakis, "Paying More Attention to Attention",
  ICLR 2017 (activation-based attention transfer).
* ``kd_loss``: Hinton et al., "Distilling the Knowledge in a Neural Network", 2015.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["AttentionTransferLoss", "FitNetLoss", "kd_loss"]


def _check_stages(stages: Sequence[int], num_stages: int | None) -> tuple[int, ...]:
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


def _check_feature_lists(
    student: Sequence[torch.Tensor], teacher: Sequence[torch.Tensor], stages: Sequence[int]
) -> None:
    if len(student) != len(teacher):
        raise ValueError(
            f"got {len(student)} student features but {len(teacher)} teacher features; pass "
            "one feature per stage for both."
        )
    if max(stages) >= len(student):
        raise ValueError(
            f"stage index {max(stages)} is out of range for {len(student)} stage features."
        )


class FitNetLoss(nn.Module):
    """FitNet hint loss: regress student stage features onto the teacher's.

    For each chosen stage, a 1x1 convolution (the FitNet regressor, trained with the student)
    maps the student's feature to the teacher's channels; the loss is the mean squared error
    against the teacher's feature. If spatial sizes differ, the regressed student feature is
    resized to the teacher's size with bilinear interpolation. Several stages are summed.

    By default the hint is the middle stage, ``num_stages // 2`` (stage 2 of a 4-stage ResNet,
    reduction 16): FitNet takes the middle layers of both networks as hint and guided layer,
    deep enough to carry semantics while leaving the student's upper stages free.

    Args:
        student_channels: channels of each student stage.
        teacher_channels: channels of each teacher stage (same number of stages).
        stages: indices of the stages to transfer; default: the middle stage.
        weight: factor of the summed loss (non-negative).
    """

    def __init__(
        self,
        student_channels: Sequence[int],
        teacher_channels: Sequence[int],
        stages: Sequence[int] | None = None,
        weight: float = 1.0,
    ) -> None:
        super().__init__()
        if len(student_channels) != len(teacher_channels):
            raise ValueError(
                f"student has {len(student_channels)} stages but teacher has "
                f"{len(teacher_channels)}; give channels for the same stages on both sides."
            )
        if not student_channels:
            raise ValueError("`student_channels` and `teacher_channels` must not be empty.")
        for name, channels in (("student", student_channels), ("teacher", teacher_channels)):
            if any(c <= 0 for c in channels):
                raise ValueError(f"{name} channels must be positive; got {list(channels)}.")
        if weight < 0:
            raise ValueError(f"`weight` must be non-negative; got {weight}.")
        num_stages = len(student_channels)
        self.stages = _check_stages(
            [num_stages // 2] if stages is None else stages, num_stages
        )
        self.weight = float(weight)
        self.student_channels = tuple(student_channels)
        self.teacher_channels = tuple(teacher_channels)
        self.regressors = nn.ModuleList(
            nn.Conv2d(student_channels[i], teacher_channels[i], kernel_size=1)
            for i in self.stages
        )

    def forward(
        self, student_feats: Sequence[torch.Tensor], teacher_feats: Sequence[torch.Tensor]
    ) -> torch.Tensor:
        """Computes the weighted hint loss.

        Args:
            student_feats: the student's stage features, (N, C_s_i, H_i, W_i) each.
            teacher_feats: the teacher's stage features, (N, C_t_i, H'_i, W'_i) each.

        Returns:
            A scalar tensor.
        """
        _check_feature_lists(student_feats, teacher_feats, self.stages)
        total = student_feats[0].new_zeros(())
        for index, regressor in zip(self.stages, self.regressors):
            student, teacher = student_feats[index], teacher_feats[index].detach()
            if student.shape[1] != self.student_channels[index] or (
                teacher.shape[1] != self.teacher_channels[index]
            ):
                raise ValueError(
                    f"stage {index}: features have {student.shape[1]} (student) and "
                    f"{teacher.shape[1]} (teacher) channels, but the loss was built for "
                    f"{self.student_channels[index]} and {self.teacher_channels[index]}."
                )
            hint = regressor(student)
            if hint.shape[-2:] != teacher.shape[-2:]:
                hint = F.interpolate(
                    hint, size=teacher.shape[-2:], mode="bilinear", align_corners=False
                )
            total = total + F.mse_loss(hint, teacher)
        return self.weight * total


class AttentionTransferLoss(nn.Module):
    """Activation-based attention transfer (AT).

    The attention map of a feature F is ``mean_c |F_c|^p`` (the absolute value only matters
    for odd ``p``), flattened and L2-normalised per sample. The loss per stage pair is
    ``(a_s - a_t).pow(2).mean()`` and the total is ``beta / 2 * sum over stages``. When the
    spatial sizes differ, the student's map is bilinearly resized to the teacher's size
    before normalising. Channels may differ freely since the maps average over them. Because
    of the normalisation the loss is invariant to a per-sample scale of either feature. The
    module has no trainable parameters.

    Args:
        stages: indices of the stages to transfer; default: all stages given to ``forward``.
        beta: loss factor; 1000 is the AT paper's value.
        p: exponent of the attention map; the AT paper uses 2.
    """

    def __init__(
        self, stages: Sequence[int] | None = None, beta: float = 1000.0, p: float = 2.0
    ) -> None:
        super().__init__()
        if beta < 0:
            raise ValueError(f"`beta` must be non-negative; got {beta}.")
        if p <= 0:
            raise ValueError(f"`p` must be positive; got {p}.")
        self.stages = None if stages is None else _check_stages(stages, None)
        self.beta = float(beta)
        self.p = float(p)

    def attention_map(self, feature: torch.Tensor, size: torch.Size | None = None) -> torch.Tensor:
        """Returns the normalised attention map (N, H*W), resized to ``size`` if given."""
        attention = feature.abs().pow(self.p).mean(dim=1, keepdim=True)
        if size is not None and attention.shape[-2:] != size:
            attention = F.interpolate(attention, size=size, mode="bilinear", align_corners=False)
        return F.normalize(attention.flatten(1), dim=1)

    def forward(
        self, student_feats: Sequence[torch.Tensor], teacher_feats: Sequence[torch.Tensor]
    ) -> torch.Tensor:
        """Computes the AT loss.

        Args:
            student_feats: the student's stage features, (N, C_s_i, H_i, W_i) each.
            teacher_feats: the teacher's stage features, (N, C_t_i, H'_i, W'_i) each.

        Returns:
            A scalar tensor.
        """
        stages = tuple(range(len(student_feats))) if self.stages is None else self.stages
        if not stages:
            raise ValueError("AttentionTransferLoss got no stage features.")
        _check_feature_lists(student_feats, teacher_feats, stages)
        total = student_feats[0].new_zeros(())
        for index in stages:
            teacher = teacher_feats[index].detach()
            a_t = self.attention_map(teacher)
            a_s = self.attention_map(student_feats[index], size=teacher.shape[-2:])
            total = total + (a_s - a_t).pow(2).mean()
        return self.beta / 2 * total


def kd_loss(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float = 4.0
) -> torch.Tensor:
    """Hinton's distillation loss ``KL(softmax(t / T) || softmax(s / T)) * T^2``.

    Classes are on dim 1. For (N, C) logits the KL divergence is averaged over the batch
    ("batchmean"); dense logits (N, C, H, W) are treated as N*H*W samples, i.e. averaged over
    pixels as well. The ``T^2`` factor keeps gradient magnitudes comparable across
    temperatures.

    Args:
        student_logits: (N, C, ...) student logits.
        teacher_logits: teacher logits of the same shape (detached here).
        temperature: softmax temperature T > 0.

    Returns:
        A scalar tensor.
    """
    if temperature <= 0:
        raise ValueError(f"`temperature` must be positive; got {temperature}.")
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(
            f"student logits {tuple(student_logits.shape)} and teacher logits "
            f"{tuple(teacher_logits.shape)} must have the same shape."
        )
    if student_logits.dim() < 2:
        raise ValueError(f"logits need a class dim 1; got shape {tuple(student_logits.shape)}.")
    classes = student_logits.shape[1]
    student = student_logits.movedim(1, -1).reshape(-1, classes)
    teacher = teacher_logits.detach().movedim(1, -1).reshape(-1, classes)
    log_p_s = F.log_softmax(student / temperature, dim=1)
    log_p_t = F.log_softmax(teacher / temperature, dim=1)
    kl = F.kl_div(log_p_s, log_p_t, reduction="batchmean", log_target=True)
    return kl * temperature**2
