"""MobileNetV1 as a detectron2 bottom-up backbone (the paper's Table 4 student), plus its FPN.

The stride-2 stem is merged into the first /4 stage so the backbone exposes the four stages
ResNet exposes (/4, /8, /16, /32), named ``stage2`` .. ``stage5`` after their stride 2**k; the
hybrid paths then pair them one to one with a ResNet teacher.

A plain detectron2 config of an exported MobileNetV1 student needs this module and nothing else
of hybridkt: ``add_mobilenet_v1_config(cfg)`` adds the ``MODEL.MOBILENET_V1`` keys, and importing
it registers ``build_mobilenet_v1_fpn_backbone`` (detectron2 has no MobileNetV1).
"""
from __future__ import annotations

import torch
from detectron2.config import CfgNode as CN
from detectron2.layers import FrozenBatchNorm2d, ShapeSpec
from detectron2.modeling import BACKBONE_REGISTRY, FPN, Backbone
from detectron2.modeling.backbone.fpn import LastLevelMaxPool
from torch import nn

from ..core import MobileNetV1, StagedBackbone, StageSpec, merge_stages, split_backbone

_NORMS = ("BN", "FrozenBN")


def add_mobilenet_v1_config(cfg: CN) -> None:
    """Adds ``MODEL.MOBILENET_V1.*`` to a detectron2 config (in place)."""
    cfg.MODEL.MOBILENET_V1 = CN()
    # Width multiplier of every layer (1.0 is the paper's MobileNet-v1).
    cfg.MODEL.MOBILENET_V1.WIDTH_MULT = 1.0
    # Norm layers: "BN" (batch statistics, trainable) or "FrozenBN" (fixed affine).
    cfg.MODEL.MOBILENET_V1.NORM = "BN"
    # Output features, named by stride 2**k: "stage2" (/4) ... "stage5" (/32).
    cfg.MODEL.MOBILENET_V1.OUT_FEATURES = ["stage2", "stage3", "stage4", "stage5"]


class MobileNetV1Backbone(Backbone):
    """MobileNetV1 feature extractor with detectron2's Backbone interface.

    Args:
        width_mult: width multiplier of every layer.
        norm: "BN" or "FrozenBN".
        out_features: names of the returned stages among ``stage2`` .. ``stage5``.
        in_channels: channels of the input image.
    """

    def __init__(self, width_mult: float = 1.0, norm: str = "BN",
                 out_features: tuple[str, ...] = ("stage2", "stage3", "stage4", "stage5"),
                 in_channels: int = 3) -> None:
        super().__init__()
        if norm not in _NORMS:
            raise ValueError(f"MODEL.MOBILENET_V1.NORM is {norm!r}; use one of {_NORMS}")
        net = MobileNetV1(num_classes=1, width_mult=width_mult, in_channels=in_channels)
        # Detection uses the feature maps only; dropping the head keeps every parameter used
        # (DDP rejects unused ones) and the state dict free of a classifier.
        net.avgpool = nn.Identity()
        net.classifier = nn.Identity()
        if norm == "FrozenBN":
            net = FrozenBatchNorm2d.convert_frozen_batchnorm(net)
        self.net = net
        staged = split_backbone(net)  # reductions 2, 4, 8, 16, 32
        reductions = [s.reduction for s in staged.stage_specs]
        groups, start = [], 0
        for i, red in enumerate(reductions):
            last_of_scale = i + 1 == len(reductions) or reductions[i + 1] != red
            if red >= 4 and last_of_scale:
                groups.append(list(range(start, i + 1)))
                start = i + 1
        merged = merge_stages(staged, groups)
        self._stages = tuple(
            StageSpec(f"stage{spec.reduction.bit_length() - 1}", spec.channels, spec.reduction,
                      spec.module)
            for spec in merged.stage_specs
        )
        names = [s.name for s in self._stages]
        unknown = [f for f in out_features if f not in names]
        if unknown or not out_features:
            raise ValueError(
                f"MODEL.MOBILENET_V1.OUT_FEATURES {list(out_features)} must name stages among "
                f"{names}"
            )
        self._out_features = list(out_features)
        self._out_feature_channels = {s.name: s.channels for s in self._stages}
        self._out_feature_strides = {s.name: s.reduction for s in self._stages}
        self._last = max(names.index(f) for f in out_features)

    def staged(self) -> StagedBackbone:
        """The stage declaration the hybrid engine pairs with the teacher (state under model.)."""
        return StagedBackbone(self, self._stages)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """(N, C, H, W) -> {name: (N, C_k, H/2**k, W/2**k)} for the out features."""
        outputs = {}
        for spec in self._stages[: self._last + 1]:
            x = spec.module(x)
            if spec.name in self._out_features:
                outputs[spec.name] = x
        return outputs

    def output_shape(self) -> dict[str, ShapeSpec]:
        return {
            name: ShapeSpec(channels=self._out_feature_channels[name],
                            stride=self._out_feature_strides[name])
            for name in self._out_features
        }


@BACKBONE_REGISTRY.register()
def build_mobilenet_v1_backbone(cfg, input_shape: ShapeSpec) -> MobileNetV1Backbone:
    """MobileNetV1 bottom-up from ``MODEL.MOBILENET_V1.*`` (see add_mobilenet_v1_config)."""
    mcfg = cfg.MODEL.MOBILENET_V1
    return MobileNetV1Backbone(width_mult=mcfg.WIDTH_MULT, norm=mcfg.NORM,
                               out_features=tuple(mcfg.OUT_FEATURES),
                               in_channels=input_shape.channels)


@BACKBONE_REGISTRY.register()
def build_mobilenet_v1_fpn_backbone(cfg, input_shape: ShapeSpec) -> FPN:
    """The plain MobileNetV1-FPN a student exported from a hybrid run loads into."""
    return FPN(
        bottom_up=build_mobilenet_v1_backbone(cfg, input_shape),
        in_features=cfg.MODEL.FPN.IN_FEATURES,
        out_channels=cfg.MODEL.FPN.OUT_CHANNELS,
        norm=cfg.MODEL.FPN.NORM,
        top_block=LastLevelMaxPool(),
        fuse_type=cfg.MODEL.FPN.FUSE_TYPE,
    )
