"""Classifiers by name, their stages, and the head that maps the last stage to logits."""
from __future__ import annotations

from typing import Callable

import torch
import torchvision
from torch import nn

from ..core import MobileNetV1, StagedBackbone, split_backbone

ARCHITECTURES = ("resnet18", "resnet34", "resnet50", "resnet101", "vgg16", "vgg16_bn",
                 "mobilenet_v1", "mobilenet_v1_0.5", "mobilenet_v1_0.25", "mobilenet_v2",
                 "mobilenet_v3_small", "mobilenet_v3_large")


def build_classifier(arch: str, num_classes: int) -> nn.Module:
    """A randomly initialised classifier (weights come from checkpoints, never downloads)."""
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}; choose one of {ARCHITECTURES}")
    if arch.startswith("mobilenet_v1"):
        width = float(arch.split("_")[-1]) if arch.count("_") == 2 else 1.0
        return MobileNetV1(num_classes=num_classes, width_mult=width)
    return getattr(torchvision.models, arch)(weights=None, num_classes=num_classes)


def classifier_head(model: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """Maps the last stage's feature map (N, C, H, W) to logits with the model's own layers.

    Pooling is global average pooling for every family, so any input size works (VGG's
    torchvision head flattens a 7x7 map; it gets the global average broadcast to 7x7, which is
    what its AdaptiveAvgPool2d does to maps smaller than 7x7 anyway).
    """
    if isinstance(model, torchvision.models.ResNet):
        return lambda f: model.fc(torch.flatten(model.avgpool(f), 1))
    if isinstance(model, torchvision.models.VGG):
        return lambda f: model.classifier(torch.flatten(model.avgpool(f), 1))
    if isinstance(model, (MobileNetV1, torchvision.models.MobileNetV2,
                          torchvision.models.MobileNetV3)):
        pool = getattr(model, "avgpool", None) or nn.AdaptiveAvgPool2d(1)
        return lambda f: model.classifier(torch.flatten(pool(f), 1))
    raise TypeError(f"no classifier head known for {type(model).__name__}")


def staged_classifier(arch: str, num_classes: int) -> tuple[StagedBackbone, Callable]:
    """Builds ``arch`` and returns its stages and head (the head uses the model's modules)."""
    model = build_classifier(arch, num_classes)
    return split_backbone(model), classifier_head(model)
