"""Which mmdet backbones hybrid forward can split, and one line for those it cannot.

mmdet's chain-structured backbones share their layout with mmseg's (mmseg ported them), so the
splitters are the mmseg adapter's, matched here to mmdet's classes: the project's MobileNetV1
(the paper's detection student, ``mobilenet_v1``), the ResNet family (ResNet,
ResNetV1d, ResNeXt, ResNeSt, Res2Net, RegNet), MobileNetV2, SwinTransformer, PVT / PVTv2 (laid
out as SegFormer's MiT), and the layer lists of CSPDarknet, CSPNeXt and EfficientNet. Scoped
types of other OpenMMLab packages in mmdet configs (``mmpretrain.ConvNeXt``,
``mmseg.MixVisionTransformer``...) fall through to the mmseg adapter's table. The backbones in
``NOT_A_CHAIN`` run parallel branches, a decoder, or are re-run by their neck, and are refused
at build with the reason.
"""
from __future__ import annotations

from torch import nn

from hybridkt_ext.core import StagedBackbone, SubmoduleChain, UnsupportedBackboneError
from hybridkt_ext.core.stage_cutting import cut_into_stages
from hybridkt_ext.for_mmseg.backbone_stages import (Splitter, mmseg_backbone_stages,
                                                    registered_splitter)
from hybridkt_ext.for_mmseg.backbone_stages import supported_types as mmseg_supported_types
from hybridkt_ext.for_mmseg.cnn_stages import split_mmseg_mobilenet_v2, split_mmseg_resnet
from hybridkt_ext.for_mmseg.transformer_stages import split_mmseg_mit, split_mmseg_swin


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


# (class name in mmdet.models.backbones, splitter), tried in order: a subclass matches its
# parent's entry unless it comes first (RegNet is a ResNet without the max pooling).
_SPLITTERS: tuple[tuple[str, Splitter], ...] = (
    ("RegNet", split_regnet),
    ("ResNet", split_mmseg_resnet),  # ResNetV1d, ResNeXt, ResNeSt, Res2Net
    ("MobileNetV2", split_mmseg_mobilenet_v2),
    ("SwinTransformer", split_mmseg_swin),
    ("PyramidVisionTransformer", split_mmseg_mit),  # PVTv2 too
    ("CSPDarknet", split_named_layers),
    ("CSPNeXt", split_named_layers),
    ("EfficientNet", split_named_layers),
)
_KNOWN_SUBCLASSES = ("ResNetV1d", "ResNeXt", "ResNeSt", "Res2Net",
                     "PyramidVisionTransformerV2")

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


def supported_types() -> list[str]:
    """Names of the mmdet backbone types this adapter splits (subclasses included)."""
    return ["MobileNetV1"] + [name for name, _ in _SPLITTERS] + list(_KNOWN_SUBCLASSES) + [
        n if "." in n else f"mmseg.{n}" for n in mmseg_supported_types()]


def refuse_if_not_a_chain(kind: object) -> None:
    """Raises before anything is built when a config names a backbone of ``NOT_A_CHAIN``.

    Raises:
        UnsupportedBackboneError: with the reason and the types that work.
    """
    name = (kind.__name__ if isinstance(kind, type) else str(kind)).rsplit(".", 1)[-1]
    if name in NOT_A_CHAIN:
        raise UnsupportedBackboneError(
            f"{name} cannot take part in hybrid forward: {NOT_A_CHAIN[name]}, so it is not one "
            "chain of stages and no stage boundary carries its whole state. Use a "
            f"chain-structured backbone as student or teacher: {', '.join(supported_types())}.")


def _own_splitters() -> tuple[tuple[type, Splitter], ...]:
    from .mobilenet_v1 import MobileNetV1, split_mobilenet_v1

    return ((MobileNetV1, split_mobilenet_v1),)


def mmdet_backbone_stages(model: nn.Module) -> tuple[StagedBackbone, tuple[int, ...]]:
    """The stages of a built mmdet backbone (or another package's, through the mmseg table),
    and for each feature it returns the index of the stage producing it.

    Raises:
        UnsupportedBackboneError: not one chain of stages, or a type no splitter knows.
    """
    import mmdet.models.backbones as backbones

    registered = registered_splitter(model)  # the user's own (register_stage_splitter) first
    if registered is not None:
        return registered(model)
    refuse_if_not_a_chain(type(model))  # DetectoRS_ResNet is a ResNet: refuse it first
    found = [(getattr(backbones, name), splitter) for name, splitter in _SPLITTERS]
    for cls, splitter in [*_own_splitters(), *found]:
        if isinstance(model, cls):
            return splitter(model)
    try:
        return mmseg_backbone_stages(model)
    except UnsupportedBackboneError:
        raise UnsupportedBackboneError(
            f"no stage splitter for {type(model).__module__}.{type(model).__name__}. mmdet "
            f"backbones that work: {', '.join(supported_types())}. For another chain-structured "
            "backbone, declare its stages with hybridkt_ext.core.cut_into_stages and register "
            "the function with hybridkt_ext.for_mmseg.register_stage_splitter(BackboneClass)."
        ) from None
