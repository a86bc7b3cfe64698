"""``HybridBackbone`` for mmdet detectors: the OpenMMLab hybrid backbone, building from mmdet's
registry.

Everything a hybrid backbone does (the frozen teacher, the adapters, the three paths through the
detector's own neck and heads, the student path outside a training step, the student-only
export layout ``engine.student.model.*``) is ``hybridkt_ext.for_openmmlab.OpenMMLabHybridBackbone``. What differs is where backbones come from: the student
dict and an unscoped teacher ``type`` are mmdet backbones (``ResNet`` is mmdet's ResNet), cut by
this adapter's stage table (``backbone_stages``).
"""
from __future__ import annotations

from mmdet.registry import MODELS

from hybridkt_ext.for_openmmlab.backbone_source import BackboneSource
from hybridkt_ext.for_openmmlab.hybrid_backbone import OpenMMLabHybridBackbone

from .backbone_stages import mmdet_backbone_stages, refuse_if_not_a_chain


@MODELS.register_module(name="HybridBackbone")
class HybridBackbone(OpenMMLabHybridBackbone):
    """Student backbone + frozen teacher + adapters, for mmdet detectors.

    Arguments: see ``hybridkt_ext.for_openmmlab.OpenMMLabHybridBackbone``; ``student`` is the detector's
    original backbone dict (``{{_base_.model.backbone}}``), ``teacher`` the teacher spec.
    """

    @staticmethod
    def backbone_source() -> BackboneSource:
        return BackboneSource("mmdet", MODELS, mmdet_backbone_stages, refuse_if_not_a_chain)
