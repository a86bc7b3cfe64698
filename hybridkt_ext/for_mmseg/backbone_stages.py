"""Which mmseg backbones hybrid forward can split, and one line for those it cannot.

Hybrid forward switches networks between stages, so a backbone must be one chain: each stage
consuming the previous stage's single output. mmseg's ResNet family, MobileNets and
hierarchical transformers are; the backbones listed in ``NOT_A_CHAIN`` run parallel branches
or a decoder inside the backbone, and no stage boundary there carries the whole state. They
are refused at build with the reason, instead of a traceback from inside the framework.
"""
from __future__ import annotations

from typing import Callable

from torch import nn

from hybridkt_ext.core import StagedBackbone, UnsupportedBackboneError

from .cnn_stages import split_mmseg_mobilenet_v2, split_mmseg_mobilenet_v3, split_mmseg_resnet
from .mmpretrain_stages import MMPRETRAIN_SPLITTERS, split_mmpretrain_backbone
from .transformer_stages import (split_mmseg_mit, split_mmseg_mscan, split_mmseg_swin,
                                 split_mmseg_twins)
from .vgg16 import VGG16
from .vit_stages import split_mmseg_beit, split_mmseg_vit

Splitter = Callable[[nn.Module], "tuple[StagedBackbone, tuple[int, ...]]"]

# Type names (subclasses included: ResNetV1c, ResNeXt, ResNeSt are ResNets; SVT is a PCPVT;
# MAE is a BEiT) in the order they are tried.
_SPLITTERS: tuple[tuple[str, str, Splitter], ...] = (
    ("mmseg.models.backbones", "ResNet", split_mmseg_resnet),
    ("mmseg.models.backbones", "MobileNetV2", split_mmseg_mobilenet_v2),
    ("mmseg.models.backbones", "MobileNetV3", split_mmseg_mobilenet_v3),
    ("mmseg.models.backbones", "MixVisionTransformer", split_mmseg_mit),
    ("mmseg.models.backbones", "SwinTransformer", split_mmseg_swin),
    ("mmseg.models.backbones", "MSCAN", split_mmseg_mscan),
    ("mmseg.models.backbones", "PCPVT", split_mmseg_twins),
    ("mmseg.models.backbones", "VisionTransformer", split_mmseg_vit),
    ("mmseg.models.backbones", "BEiT", split_mmseg_beit),
)

# mmseg's subclasses of the types above, named in messages so users find theirs.
_KNOWN_SUBCLASSES = ("ResNetV1c", "ResNetV1d", "ResNeXt", "ResNeSt", "SVT", "MAE")
_REGISTERED: list[tuple[type, Splitter]] = []  # user splitters (register_stage_splitter)

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


def _refusal(kind: str) -> UnsupportedBackboneError:
    return UnsupportedBackboneError(
        f"{kind} cannot take part in hybrid forward: {NOT_A_CHAIN[kind]}, so it is not one "
        "chain of stages and no stage boundary carries its whole state. Use a "
        f"chain-structured backbone as student or teacher: {', '.join(supported_types())}.")


def refuse_if_not_a_chain(kind: object) -> None:
    """Raises before anything is built when a config names a backbone of ``NOT_A_CHAIN``.

    Raises:
        UnsupportedBackboneError: with the reason and the types that work.
    """
    name = kind.__name__ if isinstance(kind, type) else str(kind)
    name = name.rsplit(".", 1)[-1]  # 'mmseg.HRNet' -> 'HRNet'
    if name in NOT_A_CHAIN:
        raise _refusal(name)


def supported_types() -> list[str]:
    """Names of the backbone types this adapter splits (subclasses included)."""
    return [name for _, name, _ in _SPLITTERS] + list(_KNOWN_SUBCLASSES) + ["VGG16"] + [
        f"mmpretrain.{name}" for name, _ in MMPRETRAIN_SPLITTERS] + [
        cls.__name__ for cls, _ in _REGISTERED]


def _lookup(module: str, name: str) -> type | None:
    import importlib

    return getattr(importlib.import_module(module), name, None)


def mmseg_backbone_stages(model: nn.Module) -> tuple[StagedBackbone, tuple[int, ...]]:
    """The stages of a built mmseg (or mmpretrain) backbone, and which stages it returns.

    Returns:
        The staged backbone, and for each feature the plain backbone returns (in order) the
        index of the stage that produces it.

    Raises:
        UnsupportedBackboneError: the backbone is not one chain of stages (the message says
            why) or is of a type no splitter knows (the message lists those that work).
    """
    splitter = registered_splitter(model)
    if splitter is not None:  # the user's first: they may refine a built-in type
        return splitter(model)
    if isinstance(model, VGG16):
        staged = model.staged()
        return staged, tuple(model.out_indices)
    for module, name, splitter in _SPLITTERS:
        cls = _lookup(module, name)
        if cls is not None and isinstance(model, cls):
            return splitter(model)
    found = split_mmpretrain_backbone(model)
    if found is not None:
        return found
    refuse_if_not_a_chain(type(model))
    raise UnsupportedBackboneError(
        f"no stage splitter for {type(model).__module__}.{type(model).__name__}. Backbones "
        f"that work: {', '.join(supported_types())}. For another chain-structured backbone, "
        "declare its stages with hybridkt_ext.core.cut_into_stages and register the function "
        "with hybridkt_ext.for_mmseg.register_stage_splitter(BackboneClass).")


def registered_splitter(model: nn.Module) -> Splitter | None:
    """The splitter a user registered for ``model``'s class (or a base of it), if any."""
    return next((splitter for cls, splitter in _REGISTERED if isinstance(model, cls)), None)


def register_stage_splitter(cls: type) -> Callable[[Splitter], Splitter]:
    """Decorator: ``splitter(model) -> (StagedBackbone, out_stages)`` for your backbone class.

    Example::

        @register_stage_splitter(MyBackbone)
        def split_my_backbone(model):
            parts = [SubmoduleChain(model, [name]) for name in model.stage_names]
            return cut_into_stages(model, parts, model.stage_names, model.out_indices)
    """
    def register(splitter: Splitter) -> Splitter:
        _REGISTERED.insert(0, (cls, splitter))
        return splitter

    return register


def split_mmseg_backbone(model: nn.Module) -> StagedBackbone:
    """The stages of a built mmseg backbone (``mmseg_backbone_stages`` without the out map)."""
    return mmseg_backbone_stages(model)[0]
