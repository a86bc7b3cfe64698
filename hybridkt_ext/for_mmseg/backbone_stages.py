"""Which mmseg backbones hybrid forward can split, and one line for those it cannot.

Hybrid forward switches networks between stages, so a backbone must be one chain: each stage
consuming the previous stage's single output. mmseg's ResNet family, MobileNets, hierarchical
transformers, plain ViTs, the project's VGG16 and mmpretrain's ConvNeXt and PoolFormer are;
the backbones listed in ``NOT_A_CHAIN`` run parallel branches or a decoder inside the backbone,
and no stage boundary there carries the whole state. They are refused at build with the
reason, instead of a traceback from inside the framework. ``SPLITTERS`` is the mmseg
adapter's ``SplitterTable``; the mmdet adapter's falls through to it for ``mmseg.<type>``.
"""
from __future__ import annotations

from typing import Callable

from mmseg.registry import MODELS
from torch import nn

from hybridkt_ext.core import StagedBackbone
from hybridkt_ext.for_openmmlab.backbone_source import BackboneSource
from hybridkt_ext.for_openmmlab.cnn_stages import (split_mmseg_mobilenet_v2,
                                                   split_mmseg_mobilenet_v3, split_mmseg_resnet)
from hybridkt_ext.for_openmmlab.mmpretrain_stages import MMPRETRAIN_ENTRIES
from hybridkt_ext.for_openmmlab.splitter_table import (Fallback, Splitter, SplitterEntry,
                                                       SplitterTable)
from hybridkt_ext.for_openmmlab.transformer_stages import (split_mmseg_mit, split_mmseg_mscan,
                                                           split_mmseg_swin, split_mmseg_twins)
from hybridkt_ext.for_openmmlab.vit_stages import split_mmseg_beit, split_mmseg_vit


def split_vgg16(model: nn.Module) -> tuple[StagedBackbone, tuple[int, ...]]:
    """The project's VGG16 (``vgg16.py``) declares its own stages."""
    return model.staged(), tuple(model.out_indices)


NOT_A_CHAIN: dict[str, str] = {
    "HRNet": "it keeps parallel branches at several resolutions and fuses them at every stage",
    "BiSeNetV1": "it runs a spatial path and a context path side by side",
    "BiSeNetV2": "it runs a detail branch and a semantic branch side by side",
    "STDCContextPathNet": "its context path fuses several stage outputs through attention "
                          "refinement modules",
    "DDRNet": "it runs two resolution branches with bilateral fusions",
    "PIDNet": "it runs three branches (proportional, integral, derivative)",
    "ICNet": "it cascades three input resolutions",
    "FastSCNN": "it fuses a learning-to-downsample path with a global feature branch",
    "CGNet": "it re-injects the downsampled input image into every stage",
    "ERFNet": "its decoder is part of the backbone",
    "UNet": "its decoder, with skip connections, is part of the backbone",
    "VPD": "its features come from a diffusion UNet, whose decoder and skip connections are "
           "part of the backbone",
}

_MMSEG = "mmseg.models.backbones"
SPLITTERS = SplitterTable(
    "mmseg",
    entries=(
        SplitterEntry(_MMSEG, "ResNet", split_mmseg_resnet),
        SplitterEntry(_MMSEG, "MobileNetV2", split_mmseg_mobilenet_v2),
        SplitterEntry(_MMSEG, "MobileNetV3", split_mmseg_mobilenet_v3),
        SplitterEntry(_MMSEG, "MixVisionTransformer", split_mmseg_mit),
        SplitterEntry(_MMSEG, "SwinTransformer", split_mmseg_swin),
        SplitterEntry(_MMSEG, "MSCAN", split_mmseg_mscan),
        SplitterEntry(_MMSEG, "PCPVT", split_mmseg_twins),  # SVT too
        SplitterEntry(_MMSEG, "VisionTransformer", split_mmseg_vit),
        SplitterEntry(_MMSEG, "BEiT", split_mmseg_beit),  # MAE too
        SplitterEntry("hybridkt_ext.for_mmseg.vgg16", "VGG16", split_vgg16),
        *MMPRETRAIN_ENTRIES,
    ),
    not_a_chain=NOT_A_CHAIN,
    register_with="hybridkt_ext.for_mmseg.register_stage_splitter",
    subclasses=("ResNetV1c", "ResNetV1d", "ResNeXt", "ResNeSt", "SVT", "MAE"),
    # A detector's backbone as the teacher (teacher=dict(config='mmdet::...')): mmdet's table,
    # imported only for a model of mmdet (an mmseg user needs no mmdet).
    fallback=Fallback("mmdet", "hybridkt_ext.for_mmdet.backbone_stages:SPLITTERS",
                      listed_by="hybridkt_ext.for_mmdet.supported_types()"),
)


def mmseg_backbone_stages(model: nn.Module) -> tuple[StagedBackbone, tuple[int, ...]]:
    """The stages of a built mmseg (or mmpretrain) backbone, and which stages it returns.

    Returns:
        The staged backbone, and for each feature the plain backbone returns (in order) the
        index of the stage that produces it.

    Raises:
        UnsupportedBackboneError: the backbone is not one chain of stages (the message says
            why) or is of a type no splitter knows (the message lists those that work).
    """
    return SPLITTERS.stages(model)


def split_mmseg_backbone(model: nn.Module) -> StagedBackbone:
    """The stages of a built mmseg backbone (``mmseg_backbone_stages`` without the out map)."""
    return SPLITTERS.stages(model)[0]


def refuse_if_not_a_chain(kind: object) -> None:
    """Raises before anything is built when a config names a backbone of ``NOT_A_CHAIN``.

    Raises:
        UnsupportedBackboneError: with the reason and the types that work.
    """
    SPLITTERS.refuse_if_not_a_chain(kind)


def supported_types() -> list[str]:
    """Names of the backbone types this adapter splits (subclasses and registered included)."""
    return SPLITTERS.supported_types()


def register_stage_splitter(cls: type) -> Callable[[Splitter], Splitter]:
    """Decorator: ``splitter(model) -> (StagedBackbone, out_stages)`` for your backbone class
    (and its subclasses), tried before the built-in splitters.

    Example::

        @register_stage_splitter(MyBackbone)
        def split_my_backbone(model):
            parts = [SubmoduleChain(model, [name]) for name in model.stage_names]
            return cut_into_stages(model, parts, model.stage_names, model.out_indices)
    """
    return SPLITTERS.register(cls)


def mmseg_source() -> BackboneSource:
    """Where ``HybridBackbone`` builds mmseg backbones, and how it cuts them."""
    return BackboneSource("mmseg", MODELS, SPLITTERS.stages, SPLITTERS.refuse_if_not_a_chain)
