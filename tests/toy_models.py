"""Small staged CNNs for fast tests of the core (no torchvision models needed)."""

from __future__ import annotations

import torch
from torch import nn

from hybridkt_ext.core import HybridForward, StagedBackbone, StageSpec


def conv_bn(cin: int, cout: int, stride: int, padding: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride, padding, bias=False), nn.BatchNorm2d(cout), nn.ReLU()
    )


class ToyNet(nn.Module):
    """Stages at reductions 1, 2, 4 (``widths`` channels); ``padding`` changes odd sizes."""

    def __init__(
        self, widths: tuple[int, ...] = (4, 8, 16), padding: int = 1, num_classes: int = 3
    ) -> None:
        super().__init__()
        layers, cin = [], 3
        for i, w in enumerate(widths):
            layers.append(conv_bn(cin, w, 1 if i == 0 else 2, padding))
            cin = w
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x).mean((2, 3)))


def staged(net: ToyNet) -> StagedBackbone:
    specs, red = [], 1
    for i, block in enumerate(net.features):
        red *= block[0].stride[0]
        specs.append(StageSpec(f"features.{i}", block[0].out_channels, red, block))
    return StagedBackbone(net, specs)


def make_engine(
    seed: int = 0, teacher_widths=(6, 12, 24), teacher_padding: int = 1, **kwargs
) -> tuple[HybridForward, nn.Linear]:
    """A ToyNet student + wider ToyNet teacher engine, and a linear head on the last stage."""
    torch.manual_seed(seed)
    student = ToyNet()
    teacher = ToyNet(teacher_widths, padding=teacher_padding)
    engine = HybridForward(staged(student), staged(teacher), **kwargs)
    return engine, student.fc


def head_loss(head: nn.Linear, feats: list[torch.Tensor], target: torch.Tensor) -> torch.Tensor:
    return nn.functional.cross_entropy(head(feats[-1].mean((2, 3))), target)
