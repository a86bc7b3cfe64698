"""Which mmdet backbones hybrid forward can split, and one line for those it cannot.

mmdet's chain-structured backbones share their layout with mmseg's (mmseg ported them), so most
splitters are the OpenMMLab layer's, matched here to mmdet's classes: the project's MobileNetV1
(the paper's detection student, ``mobilenet_v1``), the ResNet family (ResNet, ResNetV1d,
ResNeXt, ResNeSt, Res2Net, RegNet), MobileNetV2, SwinTransformer, PVT / PVTv2 (laid out as
SegFormer's MiT), the layer lists of CSPDarknet, CSPNeXt and EfficientNet, and mmpretrain's
ConvNeXt and PoolFormer. Other ``mmseg.<type>`` backbones in mmdet configs fall through to the
mmseg adapter's table, imported only for a model of mmseg (an mmdet user needs no mmseg). The
backbones in ``NOT_A_CHAIN`` run parallel branches, a decoder, or are re-run by their neck,
and are refused at build with the reason. Users register splitters of their own backbone
classes with this module's ``register_stage_splitter``.
"""
from __future__ import annotations

from typing import Callable

from torch import nn

from hybridkt_ext.core import StagedBackbone, SubmoduleChain
from hybridkt_ext.core.stage_cutting import cut_into_stages
from hybridkt_ext.for_openmmlab.cnn_stages import split_mmseg_mobilenet_v2, split_mmseg_resnet
from hybridkt_ext.for_openmmlab.mmpretrain_stages import MMPRETRAIN_ENTRIES
from hybridkt_ext.for_openmmlab.splitter_table import (Fallback, Splitter, SplitterEntry,
                                                       SplitterTable)
from hybridkt_ext.for_openmmlab.transformer_stages import split_mmseg_mit, split_mmseg_swin

from .mobilenet_v1 import split_mobilenet_v1


def split_named_layers(model: nn.Module) -> tuple[StagedBackbone, tuple[int, ...]]:
    """Backbones running ``model.layers`` (names, or an nn.ModuleList) in order; ``out_indices``
    count those layers (CSPDarknet, CSPNeXt: stem, stage1..; EfficientNet)."""
    names = list(model.layers) if not isinstance(model.layers, nn.ModuleList) \
        else [f"layers.{i}" for i in range(len(model.layers))]
    parts = [SubmoduleChain(model, [n]) for n in names]
    return cut_into_stages(model, parts, names, tuple(model.out_indices))


def split_regnet(model: nn.Module) -> tuple[StagedBackbone, tuple[int, ...]]:
    """RegNet: a ResNet whose stem has no max pooling (stem+layer1 | layer2 | ...)."""
    groups = [["conv1", model.norm1_name, "relu", model.res_layers[0]],
              *[[n] for n in model.res_layers[1:]]]
    parts = [SubmoduleChain(model, names) for names in groups]
    return cut_into_stages(model, parts, ["+".join(g) for g in groups], tuple(model.out_indices))


NOT_A_CHAIN: dict[str, str] = {
    "HRNet": "it keeps parallel branches at several resolutions and fuses them at every stage",
    "HourglassNet": "its hourglass modules decode back up with skip connections inside the "
                    "backbone",
    "TridentResNet": "its trident blocks run three dilation branches side by side",
    "DetectoRS_ResNet": "its recursive feature pyramid runs the backbone's stages a second time "
                        "with the neck's feedback",
    "DetectoRS_ResNeXt": "its recursive feature pyramid runs the backbone's stages a second time "
                         "with the neck's feedback",
}

_MMDET = "mmdet.models.backbones"
# Tried in order: a subclass matches its parent's entry unless it comes first (RegNet is a
# ResNet without the max pooling); DetectoRS_ResNet, also a ResNet, is refused before.
SPLITTERS = SplitterTable(
    "mmdet",
    entries=(
        SplitterEntry("hybridkt_ext.for_mmdet.mobilenet_v1", "MobileNetV1", split_mobilenet_v1),
        SplitterEntry(_MMDET, "RegNet", split_regnet),
        SplitterEntry(_MMDET, "ResNet", split_mmseg_resnet),  # ResNetV1d, ResNeXt, ResNeSt..
        SplitterEntry(_MMDET, "MobileNetV2", split_mmseg_mobilenet_v2),
        SplitterEntry(_MMDET, "SwinTransformer", split_mmseg_swin),
        SplitterEntry(_MMDET, "PyramidVisionTransformer", split_mmseg_mit),  # PVTv2 too
        SplitterEntry(_MMDET, "CSPDarknet", split_named_layers),
        SplitterEntry(_MMDET, "CSPNeXt", split_named_layers),
        SplitterEntry(_MMDET, "EfficientNet", split_named_layers),
        *MMPRETRAIN_ENTRIES,
    ),
    not_a_chain=NOT_A_CHAIN,
    register_with="hybridkt_ext.for_mmdet.register_stage_splitter",
    subclasses=("ResNetV1d", "ResNeXt", "ResNeSt", "Res2Net", "PyramidVisionTransformerV2"),
    fallback=Fallback("mmseg", "hybridkt_ext.for_mmseg.backbone_stages:SPLITTERS",
                      listed_by="hybridkt_ext.for_mmseg.supported_types()"),
)


def mmdet_backbone_stages(model: nn.Module) -> tuple[StagedBackbone, tuple[int, ...]]:
    """The stages of a built mmdet backbone (or an mmpretrain or mmseg one), and for each
    feature it returns the index of the stage producing it.

    Raises:
        UnsupportedBackboneError: not one chain of stages, or a type no splitter knows.
    """
    return SPLITTERS.stages(model)


def refuse_if_not_a_chain(kind: object) -> None:
    """Raises before anything is built when a config names a backbone of ``NOT_A_CHAIN``
    (or, for ``mmseg.<type>``, one the mmseg adapter refuses).

    Raises:
        UnsupportedBackboneError: with the reason and the types that work.
    """
    SPLITTERS.refuse_if_not_a_chain(kind)


def supported_types() -> list[str]:
    """Names of the mmdet backbone types this adapter splits (subclasses and registered
    included); ``mmseg.<type>`` works for each of ``hybridkt_ext.for_mmseg.supported_types()``."""
    return SPLITTERS.supported_types()


def register_stage_splitter(cls: type) -> Callable[[Splitter], Splitter]:
    """Decorator: ``splitter(model) -> (StagedBackbone, out_stages)`` for your mmdet backbone
    class (and its subclasses), tried before the built-in splitters; see
    ``hybridkt_ext.for_mmseg.register_stage_splitter`` for an example."""
    return SPLITTERS.register(cls)
