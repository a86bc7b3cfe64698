"""Splitters: cut a known backbone into stages that end right before each downsampling layer.

The paper switches between teacher and student "before entering the downsampling layer", so
stage boundaries sit at resolution changes. Rules shared by every splitter:

* A stage ends right before a layer that lowers the resolution: a conv or pool with a stride
  above 1. torchvision's dilated variants (ResNet's ``replace_stride_with_dilation``,
  MobileNetV3's ``dilated``) trade such a stride for dilation; the layer keeps the resolution
  but still starts a new stage, whose reduction then equals the previous one.
* A stage that would hold only parameter-free layers (VGG's trailing max-pool) is merged into
  the previous stage (into the next one if it is the first), so the stages together cover the
  whole feature extractor and the last stage output equals the plain feature extractor's.
* Stage modules are fresh containers over the model's own submodules: no parameter is created,
  copied or re-initialised, and ``StagedBackbone.state_dict()`` is the model's under ``model.``.
* Stage outputs are NCHW. torchvision's Swin runs NHWC between its ``features`` entries, so its
  stages permute at both ends (an exact view: the next stage gets the very same tensor back).
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import nn
from torchvision.models import (VGG, ConvNeXt, EfficientNet, MobileNetV2, MobileNetV3, RegNet,
                                ResNet, SwinTransformer, VisionTransformer)

from .mobilenet_v1 import MobileNetV1
from .plain_vit_stages import split_plain_vit
from .stage_cutting import conv_dilation, probe_shapes
from .stages import StagedBackbone, StageSpec, SubmoduleChain

_STRIDED = (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)


def _as_int(value: int | tuple[int, ...]) -> int:
    return max(value) if isinstance(value, tuple) else value


def _stride(module: nn.Module) -> int:
    """Largest stride of any conv or pool inside ``module`` (1 when there is none).

    The largest rather than the product: a residual block strides its main path and its
    shortcut in parallel, and a block lowers the resolution once.
    """
    return max((_as_int(m.stride) for m in module.modules() if isinstance(m, _STRIDED)), default=1)


def _out_channels(module: nn.Module, name: str) -> int:
    """Output channels of a stage: those of its last conv (in registration order)."""
    convs = [m for m in module.modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise ValueError(f"stage {name!r} has no nn.Conv2d to read its output channels from.")
    return convs[-1].out_channels


def _has_params(modules: Sequence[nn.Module]) -> bool:
    return any(True for m in modules for _ in m.parameters())


def _require(model: nn.Module, cls: type, splitter: str) -> None:
    if not isinstance(model, cls):
        raise TypeError(
            f"{splitter} expects a {cls.__module__}.{cls.__name__}, got "
            f"{type(model).__name__}; split_backbone picks the splitter from the type."
        )


def _spans(children: Sequence[nn.Module], cuts: Sequence[int]) -> list[tuple[int, int]]:
    """Turns cut indices into ``[start, end)`` spans, merging parameter-free spans away."""
    edges = sorted({0, len(children), *cuts})
    spans: list[tuple[int, int]] = []
    for start, end in zip(edges, edges[1:]):
        if spans and not _has_params(children[start:end]):
            spans[-1] = (spans[-1][0], end)
        else:
            spans.append((start, end))
    if len(spans) > 1 and not _has_params(children[spans[0][0] : spans[0][1]]):
        spans[:2] = [(spans[0][0], spans[1][1])]
    return spans


def _downsampling_indices(blocks: Sequence[nn.Module]) -> list[int]:
    """Indices of the entries that lower the resolution or replace that by a larger dilation."""
    cuts, dilation = [], 1
    for index, block in enumerate(blocks):
        block_dilation = conv_dilation([block])
        if _stride(block) > 1 or block_dilation > dilation:
            cuts.append(index)
        dilation = max(dilation, block_dilation)
    return cuts


def _split_chain(model: nn.Module, names: Sequence[str],
                 label: Callable[[int, int], str]) -> StagedBackbone:
    """Splits the chain of submodules ``names`` (forward order) before each downsampling entry.

    Reductions are the products of the entries' strides; ``label(start, end)`` names the stage
    that runs ``names[start:end]``.
    """
    children = [model.get_submodule(name) for name in names]
    stages, reduction = [], 1
    for start, end in _spans(children, _downsampling_indices(children)):
        for child in children[start:end]:
            reduction *= _stride(child)
        name = label(start, end)
        stages.append(StageSpec(name, _out_channels(nn.ModuleList(children[start:end]), name),
                                reduction, SubmoduleChain(model, names[start:end]),
                                scale=reduction * conv_dilation(children[start:end])))
    return StagedBackbone(model, stages)


def _split_features(model: nn.Module) -> StagedBackbone:
    """Splits ``model.features`` before each downsampling entry; reductions from the strides."""
    names = [f"features.{key}" for key in model.features._modules]
    return _split_chain(model, names, lambda start, end: f"features[{start}:{end}]")


def split_resnet(model: ResNet) -> StagedBackbone:
    """Splits a torchvision ResNet into stem + ``layer1``, ``layer2``, ``layer3``, ``layer4``.

    Reductions are the products of the blocks' strides (4, 8, 16, 32 for the plain models; a
    layer built with ``replace_stride_with_dilation`` keeps the previous reduction).

    Args:
        model: any torchvision ResNet (BasicBlock or Bottleneck, ResNeXt and wide included).

    Returns:
        A 4-stage backbone; ``fc`` stays in the model but in no stage.
    """
    _require(model, ResNet, "split_resnet")
    stem = (model.conv1, model.bn1, model.relu, model.maxpool)
    reduction = 1
    for module in stem:
        reduction *= _stride(module)
    stages = []
    for name in ("layer1", "layer2", "layer3", "layer4"):
        layer: nn.Sequential = getattr(model, name)
        for block in layer:
            reduction *= _stride(block)
        names = ("conv1", "bn1", "relu", "maxpool", name) if name == "layer1" else (name,)
        stage_name = "+".join(names)
        stages.append(StageSpec(stage_name, _out_channels(layer, stage_name), reduction,
                                SubmoduleChain(model, names),
                                scale=reduction * conv_dilation([layer])))
    return StagedBackbone(model, stages)


def split_vgg(model: VGG) -> StagedBackbone:
    """Splits a torchvision VGG (with or without BN) before each max-pool of ``features``.

    The trailing max-pool joins the last stage, so VGG16 has 5 stages with reductions
    1, 2, 4, 8, 32 and the last stage output equals ``model.features(x)``.
    """
    _require(model, VGG, "split_vgg")
    return _split_features(model)


def split_mobilenet_v1(model: MobileNetV1) -> StagedBackbone:
    """Splits a MobileNetV1 before each stride-2 block: reductions 2, 4, 8, 16, 32.

    The stride-2 stem is ``features[0]``; the first stage starts there and ends before the next
    stride-2 block, since a stage before the stem would be empty.
    """
    _require(model, MobileNetV1, "split_mobilenet_v1")
    return _split_features(model)


def split_mobilenet_v2(model: MobileNetV2) -> StagedBackbone:
    """Splits a torchvision MobileNetV2 before each stride-2 entry of ``features``.

    The final 1x1 conv (1280 channels at width 1.0) belongs to the last stage.
    """
    _require(model, MobileNetV2, "split_mobilenet_v2")
    return _split_features(model)


def split_mobilenet_v3(model: MobileNetV3) -> StagedBackbone:
    """Splits a torchvision MobileNetV3 (large or small) before each stride-2 entry of ``features``.

    The final 1x1 conv of ``features`` belongs to the last stage. With ``dilated=True`` the
    dilated block that replaces the last stride-2 block still starts a stage (reduction 16).
    """
    _require(model, MobileNetV3, "split_mobilenet_v3")
    return _split_features(model)


def split_efficientnet(model: EfficientNet) -> StagedBackbone:
    """Splits a torchvision EfficientNet (B0-B7 and V2) before each stride-2 entry of ``features``.

    EfficientNet-B0: reductions 2, 4, 8, 16, 32 with 16, 24, 40, 112, 1280 channels; the
    final 1x1 conv of ``features`` belongs to the last stage, ``avgpool`` and ``classifier``
    stay in the model but in no stage.
    """
    _require(model, EfficientNet, "split_efficientnet")
    return _split_features(model)


def split_regnet(model: RegNet) -> StagedBackbone:
    """Splits a torchvision RegNet (X and Y) into ``stem`` and the blocks of ``trunk_output``.

    Every RegNet block group starts with a stride-2 block, so the stride-2 stem is a stage of its
    own: reductions 2, 4, 8, 16, 32. ``avgpool`` and ``fc`` stay in the model but in no stage.
    """
    _require(model, RegNet, "split_regnet")
    names = ["stem"] + [f"trunk_output.{key}" for key in model.trunk_output._modules]
    return _split_chain(model, names, lambda start, end: "+".join(names[start:end]))


def split_convnext(model: ConvNeXt) -> StagedBackbone:
    """Splits a torchvision ConvNeXt before each downsampling layer of ``features``.

    Each stage is a downsampling layer (the stem for the first) plus its blocks: reductions
    4, 8, 16, 32. The classifier's LayerNorm2d runs after the global pooling, so it is part of
    the head and of no stage; the last stage output equals ``model.features(x)``.
    """
    _require(model, ConvNeXt, "split_convnext")
    return _split_features(model)


class _NHWCChain(SubmoduleChain):
    """A ``SubmoduleChain`` over modules that run NHWC, with NCHW input and output.

    The permutes are views, so the next stage's permute back hands its modules the exact tensor
    (values and memory layout) the plain model would pass them.

    Args:
        root: the model owning the submodules.
        names: dotted submodule names in forward order.
        nhwc_input: permute the input to NHWC first (False for the stage that takes the image).
    """

    def __init__(self, root: nn.Module, names: Sequence[str], nhwc_input: bool) -> None:
        super().__init__(root, names)
        self.nhwc_input = nhwc_input

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.nhwc_input:
            x = x.permute(0, 2, 3, 1)
        return super().forward(x).permute(0, 3, 1, 2)


def split_swin(model: SwinTransformer, probe_size: int = 64) -> StagedBackbone:
    """Splits a torchvision Swin Transformer (v1 or v2) before each patch merging of ``features``.

    ``features`` runs NHWC; each stage permutes to NCHW at its end and back at the start of the
    next, so stage outputs are (N, C, H, W): reductions 4, 8, 16, 32. The final ``norm`` is part
    of the last stage, not a tap: no stage follows it, so in-stream and tap differ only in what
    the stage outputs, and in-stream makes that output equal ``model.permute(model.norm(
    model.features(x)))``, the feature map the classifier pools, also when Swin is the teacher
    (hybrid paths and feature mimicking read teacher stage outputs, never teacher taps).
    Patch merging has no strided conv, so a zero probe finds the downsampling entries.

    Args:
        model: a torchvision ``SwinTransformer`` (``swin_t``, ``swin_v2_t``, ...).
        probe_size: height and width of the probe image (see ``split_sequential``).
    """
    _require(model, SwinTransformer, "split_swin")
    keys = [f"features.{key}" for key in model.features._modules]
    parts = [_NHWCChain(model, [key], nhwc_input=i > 0) for i, key in enumerate(keys)]
    shapes = probe_shapes(model, parts, probe_size=probe_size)
    children = list(model.features)
    stages = []
    for start, end in _spans(children, _probed_cuts(shapes, probe_size)):
        names = keys[start:end] + (["norm"] if end == len(keys) else [])
        channels, height, _ = shapes[end - 1]
        reduction = round(probe_size / height)
        name = f"features[{start}:{end}]" + ("+norm" if end == len(keys) else "")
        stages.append(StageSpec(name, channels, reduction,
                                _NHWCChain(model, names, nhwc_input=start > 0)))
    return StagedBackbone(model, stages)


def _probed_cuts(shapes: Sequence[tuple[int, int, int]], probe_size: int) -> list[int]:
    """Indices of the parts whose probe output is at least 2x smaller than their input.

    ``round(H_in / H_out) >= 2``: a valid-padding conv that trims a border does not downsample.
    """
    heights_in = [probe_size] + [height for _, height, _ in shapes[:-1]]
    return [i for i, (h_in, (_, h_out, _)) in enumerate(zip(heights_in, shapes))
            if round(h_in / h_out) >= 2]


def split_sequential(
    module: nn.Sequential, in_channels: int = 3, probe_size: int = 64
) -> StagedBackbone:
    """The generic splitter: finds the downsampling children of an nn.Sequential with a probe.

    A zero image of ``probe_size`` squared runs through the children one at a time (in eval
    mode, without autograd; every training flag is restored afterwards). A child downsamples
    when ``round(H_in / H_out) >= 2``: a valid-padding conv that trims a border is not a
    downsampling. A stage ends before each downsampling child, with the parameter-free merge
    rule of this module. Channels and reductions (``round(probe_size / H_out)``) come from the
    probe. The default 64 resolves total strides up to 32 (the last map keeps 2x2 pixels); a
    deeper module needs a larger probe, and a probe that shrinks to 1 pixel raises.

    A module that never downsamples is one valid stage, with reduction 1.

    Args:
        module: the feature extractor, e.g. ``model.features``.
        in_channels: channels of the input image.
        probe_size: height and width of the probe image.

    Returns:
        A backbone whose ``model`` is ``module`` itself.

    Raises:
        ValueError: ``module`` is not an nn.Sequential, is empty, or does not map a
            4-D probe to 4-D feature maps of at least 2x2 pixels.
    """
    if not isinstance(module, nn.Sequential):
        raise ValueError(
            f"split_sequential needs an nn.Sequential, got {type(module).__name__}; pass the "
            "model's feature extractor (e.g. model.features) or wrap its layers in "
            "nn.Sequential(...)."
        )
    children = list(module)
    if not children:
        raise ValueError(
            f"split_sequential got an empty {type(module).__name__} (no children); pass the "
            "nn.Sequential that holds the feature extractor's layers."
        )
    shapes = probe_shapes(module, children, in_channels, probe_size)
    stages = []
    for start, end in _spans(children, _probed_cuts(shapes, probe_size)):
        channels, height, _ = shapes[end - 1]
        reduction = round(probe_size / height)
        names = list(module._modules)[start:end]
        stages.append(
            StageSpec(f"[{start}:{end}]", channels, reduction, SubmoduleChain(module, names))
        )
    return StagedBackbone(module, stages)


_SPLITTERS: tuple[tuple[type, Callable[..., StagedBackbone]], ...] = (
    (ResNet, split_resnet),
    (VGG, split_vgg),
    (MobileNetV1, split_mobilenet_v1),
    (MobileNetV2, split_mobilenet_v2),
    (MobileNetV3, split_mobilenet_v3),
    (EfficientNet, split_efficientnet),
    (RegNet, split_regnet),
    (ConvNeXt, split_convnext),
    (SwinTransformer, split_swin),
    (VisionTransformer, split_plain_vit),
    (nn.Sequential, split_sequential),
)


def split_backbone(model: nn.Module) -> StagedBackbone:
    """Splits ``model`` with the splitter for its type.

    Args:
        model: a torchvision ResNet, VGG, MobileNetV2, MobileNetV3, EfficientNet (v1 or v2),
            RegNet, ConvNeXt, SwinTransformer (v1 or v2) or VisionTransformer, a MobileNetV1, or an
            nn.Sequential (split with ``split_sequential`` and its defaults).

    Raises:
        TypeError: no splitter knows the type of ``model``.
    """
    for cls, splitter in _SPLITTERS:
        if isinstance(model, cls):
            return splitter(model)
    raise TypeError(
        f"split_backbone has no splitter for {type(model).__module__}.{type(model).__name__}; "
        "call split_sequential on its feature extractor (an nn.Sequential), or declare its "
        "StageSpecs by hand and build StagedBackbone(model, stages)."
    )
