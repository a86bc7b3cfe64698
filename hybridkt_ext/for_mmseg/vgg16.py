"""VGG16 for DeepLab: the paper's segmentation student, which mmseg does not ship.

The layout is torchvision's ``vgg16().features`` (same indices), so a torchvision ImageNet
checkpoint loads with ``init_cfg=dict(type='Pretrained', checkpoint=...)`` (its classifier keys
are reported unexpected and skipped). DeepLab's output stride 8 follows DeepLab-v1/v2: pool4
and pool5 keep the resolution (3x3, stride 1, padding 1) and conv5 is dilated by 2.
"""
from __future__ import annotations

from typing import Sequence

import torch
from mmengine.model import BaseModule
from mmseg.registry import MODELS
from torch import nn

from hybridkt_ext.core import StagedBackbone, StageSpec, SubmoduleChain

_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")
_POOL_INDICES = (4, 9, 16, 23, 30)  # positions of the five max-pools in ``features``
_OUTPUT_STRIDES = (8, 16, 32)


@MODELS.register_module()
class VGG16(BaseModule):
    """VGG16 feature extractor with five stages (split before each pool; pool5 joins stage 5).

    Stage outputs: conv1 (64 ch, /1), conv2 (128, /2), conv3 (256, /4), conv4 (512, /8),
    conv5 + pool5 (512, /32, /16 or /8 depending on ``output_stride``).

    Args:
        output_stride: 32 (plain), 16 (pool5 stride 1) or 8 (pool4 and pool5 stride 1,
            conv5 dilation 2), the reduction of the last stage.
        out_indices: stages whose outputs ``forward`` returns, in 0..4.
        init_cfg: mmengine init config, e.g. a torchvision checkpoint via ``Pretrained``.
    """

    def __init__(self, output_stride: int = 8, out_indices: Sequence[int] = (4,),
                 init_cfg: dict | list | None = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if output_stride not in _OUTPUT_STRIDES:
            raise ValueError(f"VGG16: output_stride={output_stride} must be one of "
                             f"{_OUTPUT_STRIDES}.")
        out_indices = tuple(out_indices)
        if not out_indices or any(not 0 <= i <= 4 for i in out_indices):
            raise ValueError(f"VGG16: out_indices={out_indices} must name stages in 0..4.")
        self.output_stride = output_stride
        self.out_indices = out_indices
        # Pools that keep the resolution: pool5 from /16 down, pool4 as well at /8.
        keep = {30} if output_stride == 16 else {23, 30} if output_stride == 8 else set()
        layers: list[nn.Module] = []
        in_ch = 3
        for item in _CFG:
            index = len(layers)
            if item == "M":
                layers.append(nn.MaxPool2d(3, 1, 1) if index in keep else nn.MaxPool2d(2, 2))
                continue
            dilation = 2 if output_stride == 8 and index > 23 else 1
            layers += [nn.Conv2d(in_ch, item, 3, padding=dilation, dilation=dilation),
                       nn.ReLU(inplace=True)]
            in_ch = item
        self.features = nn.Sequential(*layers)
        self._reductions = (1, 2, 4, 8, output_stride)
        self._channels = (64, 128, 256, 512, 512)
        self._spans = ((0, 4), (4, 9), (9, 16), (16, 23), (23, 31))

    def init_weights(self) -> None:
        if self.init_cfg is None:
            # torchvision's VGG init: Kaiming fan-out for convs, zero biases.
            for m in self.modules():
                if isinstance(m, nn.Conv2d):
                    nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                    nn.init.zeros_(m.bias)
            self._is_init = True
            return
        super().init_weights()

    def staged(self) -> StagedBackbone:
        """The five stages as a StagedBackbone over this module (state dict under ``model.``)."""
        names = ("conv1", "pool1+conv2", "pool2+conv3", "pool3+conv4", "pool4+conv5+pool5")
        stages = [
            StageSpec(name, ch, red, SubmoduleChain(self, [f"features.{i}" for i in range(a, b)]))
            for name, ch, red, (a, b) in zip(names, self._channels, self._reductions, self._spans)
        ]
        return StagedBackbone(self, stages)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(N, 3, H, W) -> the stage outputs at ``out_indices``."""
        outs = []
        for stage, (start, end) in enumerate(self._spans):
            for i in range(start, end):
                x = self.features[i](x)
            if stage in self.out_indices:
                outs.append(x)
        return tuple(outs)
