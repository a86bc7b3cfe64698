"""Activation-boundary transfer (AB): Heo et al., "Knowledge Transfer via Distillation of
Activation Boundaries Formed by Hidden Neurons", AAAI 2019."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from .stage_pairs import StagePairLoss, check_non_negative, resize_to

__all__ = ["ActivationBoundaryLoss"]


class ActivationBoundaryLoss(StagePairLoss):
    """The student's neurons learn on which side of zero the teacher's are (hinge-squared).

    A connector (1x1 convolution + BN, trained with the student) maps the student's feature to
    the teacher's channels, giving ``s``; with the teacher's feature ``t`` and margin ``m`` the
    loss of a stage is the mean over elements of
    ``(s + m)^2 * 1[s > -m and t <= 0] + (s - m)^2 * 1[s <= m and t > 0]``: a student neuron
    is pushed below ``-m`` where the teacher's is inactive and above ``m`` where it is active.
    Several stages are summed, times ``weight``. Where spatial sizes differ, ``s`` is bilinearly
    resized to the teacher's size.

    Deviations from the paper, both deliberate:

    * Our stage outputs are taken after the block's ReLU, so the teacher's pre-activation sign
      is read as ``t > 0`` (active) versus ``t == 0`` (inactive); the paper reads the
      pre-ReLU response, which gives the same activation pattern.
    * The paper uses AB as an initialisation phase before training with the task loss alone;
      here it is added to the task loss throughout, as FitNet is, so every baseline is one
      loss term beside the student's own.

    Args:
        student_channels: channels of each student stage.
        teacher_channels: channels of each teacher stage (same number of stages).
        stages: indices of the stages to transfer; default: the last stage (the paper places
            connectors at the end of several block groups: pass their indices for that).
        weight: factor of the summed loss (non-negative).
        margin: the margin ``m`` (positive); 1.0 as in the paper.
    """

    def __init__(self, student_channels: Sequence[int], teacher_channels: Sequence[int],
                 stages: Sequence[int] | None = None, weight: float = 1.0,
                 margin: float = 1.0) -> None:
        super().__init__(student_channels, teacher_channels, stages)
        self.weight = check_non_negative("weight", weight)
        if margin <= 0:
            raise ValueError(f"`margin` must be positive; got {margin}.")
        self.margin = float(margin)
        self.connectors = nn.ModuleList(
            nn.Sequential(nn.Conv2d(student_channels[i], teacher_channels[i], 1, bias=False),
                          nn.BatchNorm2d(teacher_channels[i]))
            for i in self.stages)

    def boundary_loss(self, student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        """The mean hinge-squared boundary loss of connector output and teacher feature."""
        m = self.margin
        inactive = ((student > -m) & (teacher <= 0)).to(student.dtype)
        active = ((student <= m) & (teacher > 0)).to(student.dtype)
        return ((student + m).pow(2) * inactive + (student - m).pow(2) * active).mean()

    def pair_loss(self, position: int, student: torch.Tensor, teacher: torch.Tensor
                  ) -> torch.Tensor:
        """The weighted AB loss of one stage: connector, resize, boundary loss."""
        student = resize_to(self.connectors[position](student), teacher.shape[-2:])
        return self.weight * self.boundary_loss(student, teacher)
