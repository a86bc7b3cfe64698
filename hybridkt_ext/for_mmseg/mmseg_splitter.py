"""Stage declarations for mmseg backbones: ``ResNet`` (V1c/V1d included) and our ``VGG16``.

A stage ends right before a downsampling layer: ResNet is stem + maxpool + ``layer1`` |
``layer2`` | ``layer3`` | ``layer4`` (dilated D8/D16 stages are still stages, their reduction
repeating the previous one). The result is a ``StagedBackbone`` over the built mmseg module,
so its state dict is mmseg's own under ``model.``.

Stage callables look their modules up by attribute name at call time instead of holding
references: mmengine's Runner replaces every SyncBN by a new BatchNorm module on single-process
runs (``revert_sync_batchnorm``), and a held reference would keep running the old layer.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from hybridkt_ext.core import StagedBackbone, StageSpec


class AttributeChain(nn.Module):
    """Runs ``owner.<name>`` for each name in order, looked up at every call.

    Args:
        owner: the module that owns the layers (not registered here: no duplicate keys).
        names: attribute names (``"0"``, ``"1"``... for an nn.Sequential owner).
    """

    def __init__(self, owner: nn.Module, names: Sequence[str]) -> None:
        super().__init__()
        if not names:
            raise ValueError("AttributeChain needs at least one attribute name.")
        self._owner = (owner,)  # a tuple: nn.Module does not register what it holds
        self.names = tuple(names)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        owner = self._owner[0]
        for name in self.names:
            x = getattr(owner, name)(x)
        return x

    def extra_repr(self) -> str:
        return f"{type(self._owner[0]).__name__}.{'/'.join(self.names)}"


def _block_channels(layer: nn.Module, name: str) -> int:
    last = layer[-1]
    conv = getattr(last, "conv3", None) or getattr(last, "conv2", None)
    if conv is None:
        raise ValueError(f"cannot read the output channels of {name}: its last block has "
                         "neither conv3 (Bottleneck) nor conv2 (BasicBlock).")
    return conv.out_channels


def split_mmseg_resnet(model: nn.Module) -> StagedBackbone:
    """Splits an mmseg ``ResNet`` (any depth, V1c/V1d stems, dilated or not) into stages.

    Reductions come from the strides: 4 after the stem and max-pool, then the product of
    ``model.strides`` (D8: 4, 8, 8, 8; plain: 4, 8, 16, 32).
    """
    from mmseg.models.backbones import ResNet

    if not isinstance(model, ResNet):
        raise TypeError(f"split_mmseg_resnet expects an mmseg ResNet, got {type(model).__name__}")
    stem = ["stem"] if model.deep_stem else ["conv1", "norm1", "relu"]
    reduction = 4  # stride-2 stem conv, stride-2 max-pool
    stages = []
    for i, layer_name in enumerate(model.res_layers):
        reduction *= int(model.strides[i])
        names = [*stem, "maxpool", layer_name] if i == 0 else [layer_name]
        layer = getattr(model, layer_name)
        stages.append(StageSpec("+".join(names), _block_channels(layer, layer_name), reduction,
                                AttributeChain(model, names)))
    return StagedBackbone(model, stages)


def split_mmseg_backbone(model: nn.Module) -> StagedBackbone:
    """Splits a built mmseg backbone with the splitter for its type.

    Raises:
        TypeError: the type has no splitter here; the message names the supported ones.
    """
    from mmseg.models.backbones import ResNet

    from .vgg16 import VGG16

    if isinstance(model, ResNet):
        return split_mmseg_resnet(model)
    if isinstance(model, VGG16):
        return model.staged()
    raise TypeError(
        f"no stage splitter for {type(model).__name__}; hybridkt_ext.for_mmseg splits mmseg's "
        "ResNet family (ResNet, ResNetV1c, ResNetV1d) and VGG16. For other backbones declare "
        "the stages with hybridkt_ext.core.StagedBackbone(model, [StageSpec(...), ...])."
    )
