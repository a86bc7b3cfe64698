"""Factor transfer (FT): Kim et al., "Paraphrasing Complex Network: Network Compression via
Factor Transfer", NeurIPS 2018."""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .stage_pairs import StagePairLoss, check_non_negative, resize_to

__all__ = ["FactorTransferLoss"]


def _conv_layers(channels: Sequence[int], transposed: bool = False) -> nn.Sequential:
    """3x3 (transposed) convolutions through ``channels``, each with BN and leaky ReLU (0.1),
    the paper's paraphraser and translator layers (stride 1: the factor keeps the map size)."""
    conv = nn.ConvTranspose2d if transposed else nn.Conv2d
    layers: list[nn.Module] = []
    for cin, cout in zip(channels[:-1], channels[1:]):
        layers += [conv(cin, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout),
                   nn.LeakyReLU(0.1)]
    return nn.Sequential(*layers)


class Paraphraser(nn.Module):
    """A convolutional auto-encoder of a teacher feature; its code is the teacher's factor.

    Args:
        channels: the teacher feature's channels C.
        factor_channels: the factor's channels (the paper's paraphrase rate times C).
    """

    def __init__(self, channels: int, factor_channels: int) -> None:
        super().__init__()
        self.encoder = _conv_layers((channels, channels, factor_channels, factor_channels))
        self.decoder = _conv_layers((factor_channels, factor_channels, channels, channels),
                                    transposed=True)


class FactorTransferLoss(StagePairLoss):
    """The student's translated factor matches the teacher's paraphrased factor.

    Per chosen stage, a paraphraser (3 conv layers encoding, 3 transposed conv layers decoding)
    auto-encodes the teacher's feature; its code is the teacher factor ``F_t``. A translator
    (3 conv layers) maps the student's feature to a student factor ``F_s`` of the same
    channels. With both factors flattened per sample, the FT term is
    ``beta * mean |F_t / ||F_t||_2 - F_s / ||F_s||_2|`` (the paper's p = 1). Where spatial
    sizes differ, ``F_s`` is bilinearly resized to the size of ``F_t``. Several stages are
    summed.

    Deviation from the paper: the paper pre-trains the paraphraser on the teacher and then
    freezes it. Here it trains online from the first step, by its reconstruction loss
    ``reconstruction_weight * mse(decoder(F_t), t)`` on the detached teacher feature, which
    is added to the returned loss; ``F_t`` is detached in the FT term, so that term moves only
    the translator and the student, never the paraphraser. Early in training the targets
    therefore move while the paraphraser learns.

    Args:
        student_channels: channels of each student stage.
        teacher_channels: channels of each teacher stage (same number of stages).
        stages: indices of the stages to transfer; default: the last stage.
        beta: factor of the FT term (non-negative); tune per setting.
        rate: the paraphrase rate, factor channels / teacher channels (positive); the paper
            uses 0.5.
        reconstruction_weight: factor of the paraphraser's reconstruction loss (non-negative).
    """

    def __init__(self, student_channels: Sequence[int], teacher_channels: Sequence[int],
                 stages: Sequence[int] | None = None, beta: float = 1000.0, rate: float = 0.5,
                 reconstruction_weight: float = 1.0) -> None:
        super().__init__(student_channels, teacher_channels, stages)
        self.beta = check_non_negative("beta", beta)
        self.reconstruction_weight = check_non_negative("reconstruction_weight",
                                                        reconstruction_weight)
        if rate <= 0:
            raise ValueError(f"`rate` must be positive; got {rate}.")
        self.rate = float(rate)
        factors = [max(1, round(teacher_channels[i] * rate)) for i in self.stages]
        self.paraphrasers = nn.ModuleList(
            Paraphraser(teacher_channels[i], f) for i, f in zip(self.stages, factors))
        self.translators = nn.ModuleList(
            _conv_layers((student_channels[i], student_channels[i], f, f))
            for i, f in zip(self.stages, factors))

    @staticmethod
    def factor_distance(student_factor: torch.Tensor, teacher_factor: torch.Tensor
                        ) -> torch.Tensor:
        """``mean |F_t / ||F_t|| - F_s / ||F_s|||`` of the per-sample flattened factors."""
        s = F.normalize(student_factor.flatten(1), dim=1)
        t = F.normalize(teacher_factor.flatten(1), dim=1)
        return (t - s).abs().mean()

    def pair_loss(self, position: int, student: torch.Tensor, teacher: torch.Tensor
                  ) -> torch.Tensor:
        """``beta`` times one stage's FT term plus its weighted reconstruction loss."""
        paraphraser = self.paraphrasers[position]
        teacher_factor = paraphraser.encoder(teacher)  # teacher is detached: trains the encoder
        reconstruction = F.mse_loss(paraphraser.decoder(teacher_factor), teacher)
        student_factor = resize_to(self.translators[position](student), teacher_factor.shape[-2:])
        transfer = self.factor_distance(student_factor, teacher_factor.detach())
        return self.beta * transfer + self.reconstruction_weight * reconstruction
