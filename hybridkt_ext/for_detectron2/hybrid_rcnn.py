"""The removed meta-architecture ``HybridRCNN``: building it fails with the YAML to write.

detectron2's own meta-architectures train with hybrid forward once their backbone's bottom-up
is the hybrid one: ``HybridKTTrainer.build_model`` (tools/train_net.py) wires any of them to the
transfer step (``transfer_wiring``), so the GeneralizedRCNN subclass that did it itself was
removed. Its name stays registered so that a config written with it stops at the model build
with the lines to write, rather than with fvcore's "No object named 'HybridRCNN'".
"""
from __future__ import annotations

from detectron2.config import CfgNode
from detectron2.modeling import META_ARCH_REGISTRY

REMOVED = ('MODEL.META_ARCHITECTURE "HybridRCNN" was removed: write META_ARCHITECTURE: '
           '"GeneralizedRCNN" under MODEL, keep BACKBONE.NAME: "build_hybridkt_fpn_backbone" and '
           "the MODEL.HYBRIDKT keys, and train with HybridKTTrainer (tools/train_net.py), which "
           "wires the transfer step into any meta-architecture.")


@META_ARCH_REGISTRY.register()
class HybridRCNN:
    """Refuses to be built: the meta-architecture was removed, the message gives its
    replacement."""

    def __init__(self, cfg: CfgNode) -> None:
        raise ValueError(REMOVED)
