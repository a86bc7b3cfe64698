"""Stages of mmseg's convolutional backbones: the ResNet family and MobileNetV2/V3.

Each is one chain of named layers, so the parts are ``SubmoduleChain`` s over those names (the
stem joins the first layer, as the paper splits ResNet: stem+layer1 | layer2 | layer3 |
layer4) and ``core.cut_into_stages`` places the boundaries: before each downsampling or
dilation rise, after each layer the backbone returns. Dilated (D8/D16) layers are still stages:
their reduction repeats, their scale (for pairing with another network) does not.
"""
from __future__ import annotations

from torch import nn

from hybridkt_ext.core import StagedBackbone, SubmoduleChain
from hybridkt_ext.core.stage_cutting import cut_into_stages


def _cut(model: nn.Module, groups: list[list[str]],
         out_layers: tuple[int, ...]) -> tuple[StagedBackbone, tuple[int, ...]]:
    parts = [SubmoduleChain(model, names) for names in groups]
    return cut_into_stages(model, parts, ["+".join(g) for g in groups], out_layers)


def split_mmseg_resnet(model: nn.Module) -> tuple[StagedBackbone, tuple[int, ...]]:
    """ResNet, ResNetV1c/V1d, ResNeXt, ResNeSt: stem+maxpool+layer1 | layer2 | layer3 | layer4.

    ``out_indices`` count the residual layers, so they are the part indices.
    """
    stem = ["stem"] if model.deep_stem else ["conv1", model.norm1_name, "relu"]
    groups = [[*stem, "maxpool", model.res_layers[0]], *[[n] for n in model.res_layers[1:]]]
    return _cut(model, groups, tuple(model.out_indices))


def split_mmseg_mobilenet_v2(model: nn.Module) -> tuple[StagedBackbone, tuple[int, ...]]:
    """MobileNetV2: conv1+layer1 | ... , cut at strides and dilation rises (D8: 5 stages).

    ``out_indices`` count ``layer1``..``layer7``, the parts here.
    """
    groups = [["conv1", model.layers[0]], *[[n] for n in model.layers[1:]]]
    return _cut(model, groups, tuple(model.out_indices))


def split_mmseg_mobilenet_v3(model: nn.Module) -> tuple[StagedBackbone, tuple[int, ...]]:
    """MobileNetV3 (small or large, the segmentation variant with dilated last blocks).

    ``out_indices`` count ``layer0``.. the final 1x1 conv, the parts here.
    """
    return _cut(model, [[n] for n in model.layers], tuple(model.out_indices))
