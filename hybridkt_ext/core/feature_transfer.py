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

from .stage_pairs import (StagePairLoss, check_feature_lists, check_non_negative, check_stages,
                          resize_to)

__all__ = ["AttentionTransferLoss", "FitNetLoss", "kd_loss"]


class FitNetLoss(StagePairLoss):
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
        super().__init__(student_channels, teacher_channels,
                         [len(student_channels) // 2] if stages is None else stages)
        self.weight = check_non_negative("weight", weight)
        self.regressors = nn.ModuleList(
            nn.Conv2d(student_channels[i], teacher_channels[i], kernel_size=1)
            for i in self.stages
        )

    def pair_loss(self, position: int, student: torch.Tensor, teacher: torch.Tensor
                  ) -> torch.Tensor:
        """The weighted hint loss of the ``position``-th chosen stage."""
        hint = resize_to(self.regressors[position](student), teacher.shape[-2:])
        return self.weight * F.mse_loss(hint, teacher)


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
        self.stages = None if stages is None else check_stages(stages, None)
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
        check_feature_lists(student_feats, teacher_feats, stages)
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
