"""MobileNetV1 (Howard et al. 2017), the student network of the paper's experiments.

torchvision ships MobileNetV2/V3 but not V1, so it is defined here, in torchvision's layout
(``features`` / ``avgpool`` / ``classifier``) so that the MobileNet splitters treat all three
versions alike. Each depthwise-separable block is one entry of ``features``: a stride-2 block
is then a single index, and a stage boundary never falls inside a block.
"""

from __future__ import annotations

import torch
from torch import nn

# (output channels, stride) of the 13 depthwise-separable blocks, at width 1.0.
_BLOCKS: tuple[tuple[int, int], ...] = (
    (64, 1),
    (128, 2),
    (128, 1),
    (256, 2),
    (256, 1),
    (512, 2),
    (512, 1),
    (512, 1),
    (512, 1),
    (512, 1),
    (512, 1),
    (1024, 2),
    (1024, 1),
)
_STEM_CHANNELS = 32
_MIN_CHANNELS = 8


def _conv_bn_relu(
    in_channels: int, out_channels: int, kernel_size: int, stride: int, groups: int = 1
) -> list[nn.Module]:
    # No conv bias: the BatchNorm right after it has its own shift.
    conv = nn.Conv2d(
        in_channels,
        out_channels,
        kernel_size,
        stride=stride,
        padding=kernel_size // 2,
        groups=groups,
        bias=False,
    )
    return [conv, nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True)]


class MobileNetV1(nn.Module):
    """MobileNetV1 classifier.

    Args:
        num_classes: number of output logits.
        width_mult: the paper's width multiplier alpha; every layer's channels are scaled by it,
            rounded to an int and kept at least 8.
        in_channels: channels of the input image.
    """

    def __init__(self, num_classes: int = 1000, width_mult: float = 1.0, in_channels: int = 3):
        super().__init__()
        if width_mult <= 0:
            raise ValueError(f"MobileNetV1 needs width_mult > 0, got {width_mult}.")

        def width(channels: int) -> int:
            return max(_MIN_CHANNELS, round(channels * width_mult))

        channels = width(_STEM_CHANNELS)
        layers: list[nn.Module] = [
            nn.Sequential(*_conv_bn_relu(in_channels, channels, kernel_size=3, stride=2))
        ]
        for out_channels, stride in _BLOCKS:
            out_channels = width(out_channels)
            depthwise = _conv_bn_relu(channels, channels, 3, stride, groups=channels)
            pointwise = _conv_bn_relu(channels, out_channels, kernel_size=1, stride=1)
            layers.append(nn.Sequential(*depthwise, *pointwise))
            channels = out_channels
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(channels, num_classes)

        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, 0, 0.01)
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Maps images (N, in_channels, H, W) to logits (N, num_classes)."""
        x = self.features(x)
        x = torch.flatten(self.avgpool(x), 1)
        return self.classifier(x)
