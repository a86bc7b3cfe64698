"""Channel-wise distillation (CWD): Shu et al., "Channel-wise Knowledge Distillation for Dense
Prediction", ICCV 2021, as MMRazor's ``ChannelWiseDivergence`` computes it."""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .stage_pairs import StagePairLoss, check_non_negative, resize_to

__all__ = ["ChannelWiseDivergenceLoss"]


class ChannelWiseDivergenceLoss(StagePairLoss):
    """Per channel, the KL divergence between the teacher's and the student's spatial softmax.

    Each channel of a (N, C, H, W) map becomes a distribution over its H*W positions,
    ``softmax(x / tau)``; the loss of a stage is
    ``weight * tau^2 / (N * C) * sum_{n,c} KL(softmax(t_nc / tau) || softmax(s_nc / tau))``,
    MMRazor's normalisation, and several stages are summed. Where the student's channels differ
    from the teacher's, a 1x1 convolution (trained with the student) maps them first, as
    MMRazor's CWD configs put a connector on the student; where the spatial sizes differ, the
    student's map is bilinearly resized to the teacher's.

    The paper applies CWD to the last feature map or the logits of a dense head; here it acts
    on backbone stages, by default the last one.

    Args:
        student_channels: channels of each student stage.
        teacher_channels: channels of each teacher stage (same number of stages).
        stages: indices of the stages to transfer; default: the last stage.
        weight: factor of the loss (non-negative); 3.0 as in MMRazor's CWD configs.
        tau: softmax temperature (positive); 1.0 as MMRazor's default.
    """

    def __init__(self, student_channels: Sequence[int], teacher_channels: Sequence[int],
                 stages: Sequence[int] | None = None, weight: float = 3.0,
                 tau: float = 1.0) -> None:
        super().__init__(student_channels, teacher_channels, stages)
        self.weight = check_non_negative("weight", weight)
        if tau <= 0:
            raise ValueError(f"`tau` must be positive; got {tau}.")
        self.tau = float(tau)
        self.aligners = nn.ModuleList(
            nn.Identity() if student_channels[i] == teacher_channels[i]
            else nn.Conv2d(student_channels[i], teacher_channels[i], kernel_size=1)
            for i in self.stages)

    def divergence(self, student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        """``tau^2 / (N * C) * sum KL(p_t || p_s)`` of two (N, C, H, W) maps of one shape."""
        n, c = teacher.shape[:2]
        log_p_s = F.log_softmax(student.flatten(2) / self.tau, dim=2)  # (N, C, H*W)
        log_p_t = F.log_softmax(teacher.flatten(2) / self.tau, dim=2)
        kl = (log_p_t.exp() * (log_p_t - log_p_s)).sum()
        return kl * self.tau**2 / (n * c)

    def pair_loss(self, position: int, student: torch.Tensor, teacher: torch.Tensor
                  ) -> torch.Tensor:
        """The weighted CWD loss of one stage: align, resize, divergence."""
        if teacher.shape[-2:].numel() == 1:  # softmax over one position is 1: KL is 0
            raise ValueError(
                f"CWD stage {self.stages[position]}: the teacher's map is 1x1, which has no "
                "spatial distribution (the loss would be 0); choose a stage with a larger map "
                "(stages=[...]).")
        student = resize_to(self.aligners[position](student), teacher.shape[-2:])
        return self.weight * self.divergence(student, teacher)
