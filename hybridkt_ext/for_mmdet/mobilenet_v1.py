"""MobileNetV1 as an mmdet backbone: the paper's Table 4 student (mmdet ships no MobileNetV1).

The network is the core's ``MobileNetV1`` (torchvision layout), without its classifier. Its
13 depthwise-separable blocks and the stride-2 stem are grouped into the four resolutions a
ResNet returns (/4, /8, /16, /32, channels 128, 256, 512, 1024 at width 1), so an FPN written
for them takes it and the hybrid paths pair its stages one to one with a ResNet teacher. A
plain mmdet config of an exported MobileNetV1 student imports this package for the backbone
class only (``custom_imports=['hybridkt_ext.for_mmdet']``).
"""
from __future__ import annotations

from typing import Sequence

import torch
from mmdet.registry import MODELS
from mmengine.model import BaseModule
from torch import nn

from hybridkt_ext.core import MobileNetV1 as _MobileNetV1
from hybridkt_ext.core import StagedBackbone, SubmoduleChain
from hybridkt_ext.core.stage_cutting import cut_into_stages

# features[a:b] of each returned resolution: stem + blocks 1-3 (/4), 4-5 (/8), 6-11 (/16),
# 12-13 (/32).
STAGE_BLOCKS = ((0, 4), (4, 6), (6, 12), (12, 14))


@MODELS.register_module()
class MobileNetV1(BaseModule):
    """MobileNetV1 feature extractor returning the stages in ``out_indices`` (0: /4 .. 3: /32).

    Args:
        width_mult: the paper's width multiplier of every layer.
        out_indices: the stages returned, in order.
        init_cfg: mmengine init (e.g. ``dict(type='Pretrained', checkpoint=...)``).
    """

    def __init__(self, width_mult: float = 1.0, out_indices: Sequence[int] = (0, 1, 2, 3),
                 init_cfg: dict | None = None) -> None:
        super().__init__(init_cfg=init_cfg)
        bad = [i for i in out_indices if i not in range(len(STAGE_BLOCKS))]
        if bad or not out_indices:
            raise ValueError(f"MobileNetV1: out_indices={tuple(out_indices)} must be a "
                             f"non-empty subset of 0..{len(STAGE_BLOCKS) - 1} (/4 .. /32).")
        self.features = _MobileNetV1(num_classes=1, width_mult=width_mult).features
        self.out_indices = tuple(out_indices)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        outs = []
        for k, (start, stop) in enumerate(STAGE_BLOCKS):
            for i in range(start, stop):
                x = self.features[i](x)
            if k in self.out_indices:
                outs.append(x)
        return tuple(outs)


def split_mobilenet_v1(model: nn.Module) -> tuple[StagedBackbone, tuple[int, ...]]:
    """The four resolutions of ``MobileNetV1`` as stages (``out_indices`` count them)."""
    groups = [[f"features.{i}" for i in range(a, b)] for a, b in STAGE_BLOCKS]
    parts = [SubmoduleChain(model, names) for names in groups]
    return cut_into_stages(model, parts, [f"stage{k}" for k in range(len(groups))],
                           model.out_indices)
