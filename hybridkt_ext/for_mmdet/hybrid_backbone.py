"""``HybridBackbone`` for mmdet detectors: the mmseg adapter's, building from mmdet's registry.

Everything a hybrid backbone does (the frozen teacher, the adapters, the three paths through the
detector's own neck and heads, the plain student forward outside a training step, the student-only
export layout ``engine.student.model.*``) is framework-neutral OpenMMLab code in
``hybridkt_ext.for_mmseg.hybrid_backbone``. What differs is where backbones come from: the student
dict and an unscoped teacher ``type`` are mmdet backbones (``ResNet`` is mmdet's ResNet), cut by
this adapter's stage table (``backbone_stages``).
"""
from __future__ import annotations

from mmdet.registry import MODELS

from hybridkt_ext.for_mmseg.hybrid_backbone import HybridBackbone as _OpenMMLabHybridBackbone
from hybridkt_ext.for_openmmlab.backbone_source import BackboneSource

from .backbone_stages import mmdet_backbone_stages, refuse_if_not_a_chain


@MODELS.register_module(name="HybridBackbone")
class HybridBackbone(_OpenMMLabHybridBackbone):
    """Student backbone + frozen teacher + adapters, for mmdet detectors.

    Arguments as ``hybridkt_ext.for_mmseg.HybridBackbone``: ``student`` is the detector's
    original backbone dict (``{{_base_.model.backbone}}``), ``teacher`` the teacher spec.
    """

    @staticmethod
    def backbone_source() -> BackboneSource:
        return BackboneSource("mmdet", MODELS, mmdet_backbone_stages, refuse_if_not_a_chain)
