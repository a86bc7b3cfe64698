"""``HybridBackbone`` for mmseg segmentors: the OpenMMLab hybrid backbone, building from mmseg's
registry.

Everything a hybrid backbone does (the frozen teacher, the adapters, the three paths through the
segmentor's own neck and heads, the student path outside a training step, the student-only export
layout ``engine.student.model.*``) is ``hybridkt_ext.for_openmmlab.OpenMMLabHybridBackbone``. What
is mmseg's: the student dict and an unscoped teacher ``type`` are mmseg backbones, cut by this
adapter's stage table (``backbone_stages``).
"""
from __future__ import annotations

from mmseg.registry import MODELS

from hybridkt_ext.core import InputConvention, StagedBackbone
from hybridkt_ext.for_openmmlab.backbone_source import BackboneSource
from hybridkt_ext.for_openmmlab.hybrid_backbone import OpenMMLabHybridBackbone
from hybridkt_ext.for_openmmlab.teacher_builder import build_teacher as build_openmmlab_teacher

from .backbone_stages import mmseg_source


@MODELS.register_module()
class HybridBackbone(OpenMMLabHybridBackbone):
    """Student backbone + frozen teacher + adapters, for mmseg segmentors.

    Arguments: see ``hybridkt_ext.for_openmmlab.OpenMMLabHybridBackbone``; ``student`` is the
    segmentor's original backbone dict (``{{_base_.model.backbone}}``), ``teacher`` the teacher
    spec.
    """

    @staticmethod
    def backbone_source() -> BackboneSource:
        return mmseg_source()


def build_teacher(spec: dict) -> tuple[StagedBackbone, InputConvention | None]:
    """The teacher of a ``HybridBackbone(teacher=spec)``, built, split and loaded from mmseg's
    registry (see ``hybridkt_ext.for_openmmlab.teacher_builder.build_teacher``)."""
    return build_openmmlab_teacher(spec, mmseg_source())
