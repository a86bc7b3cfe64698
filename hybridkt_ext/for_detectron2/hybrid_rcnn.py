"""``HybridRCNN``: GeneralizedRCNN with its training forward wired to the transfer step.

Kept for the configs written with it (``MODEL.META_ARCHITECTURE: HybridRCNN``). Any
meta-architecture trains with hybrid forward once its backbone's bottom-up is the hybrid one
and ``install_transfer_step`` has wired it (``HybridKTTrainer.build_model`` does, for every
meta-architecture); this class does it itself when built. Inference is GeneralizedRCNN's own on
the student path: zero overhead, plain outputs.
"""
from __future__ import annotations

from typing import Any

from detectron2.config import configurable
from detectron2.modeling import META_ARCH_REGISTRY, GeneralizedRCNN

from .transfer_wiring import find_hybrid_bottom_up, install_transfer_step


@META_ARCH_REGISTRY.register()
class HybridRCNN(GeneralizedRCNN):
    """GeneralizedRCNN trained through its hybrid bottom-up's transfer mode."""

    @configurable
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if find_hybrid_bottom_up(self) is None:
            raise ValueError(
                "HybridRCNN needs a hybrid backbone: MODEL.BACKBONE.NAME "
                f"'build_hybridkt_fpn_backbone', got a {type(self.backbone).__name__}")
        install_transfer_step(self)
