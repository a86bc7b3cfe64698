"""Where an OpenMMLab adapter builds backbones, and how it cuts them into stages.

mmseg and mmdet (and any other mmengine-based framework) share everything a ``HybridBackbone``
does except three things: the registry that builds the student and an unscoped teacher type,
the table of stage splitters for its backbone classes, and the list of backbones it refuses.
A ``BackboneSource`` names those three (each adapter's ``backbone_stages`` gives the last two
from its ``SplitterTable``), so the mmdet adapter is the mmseg one with its own.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from mmengine.registry import Registry
from torch import nn

from hybridkt_ext.core import StagedBackbone


@dataclass(frozen=True)
class BackboneSource:
    """Attributes:
        framework: the package name, in messages ('mmseg', 'mmdet').
        registry: its MODELS registry (backbones are built there; scoped types such as
            'mmpretrain.ConvNeXt' reach the other packages).
        stages: ``model -> (StagedBackbone, out_stages)`` for a built backbone.
        refuse_if_not_a_chain: raises UnsupportedBackboneError for a type name or class it
            refuses, before anything is built.
    """

    framework: str
    registry: Registry
    stages: Callable[[nn.Module], "tuple[StagedBackbone, tuple[int, ...]]"]
    refuse_if_not_a_chain: Callable[[object], None]

