"""A teacher named by the detectron2 config it was trained with, in an mmseg or mmdet config.

``teacher=dict(config='COCO-Detection/faster_rcnn_R_50_FPN_3x.yaml', checkpoint='model_final.pkl')``
(a YAML file or model-zoo path; a LazyConfig as ``'detectron2::new_baselines/....py'``, since
``.py`` alone is an mmengine config): the teacher is that config's bottom-up, built and split
by the detectron2 adapter (``for_detectron2.teacher_config``), fed that config's pixel
convention, its weights read under ``backbone.bottom_up.`` (FPN) or ``backbone.`` (C4) of the
detector's file. detectron2 is imported only for such a teacher.
"""
from __future__ import annotations

from hybridkt_ext.core import InputConvention, StagedBackbone
from hybridkt_ext.core.teacher_loading import load_teacher
from hybridkt_ext.core.teacher_spec import TeacherSpec

DETECTRON2_SCOPE = "detectron2::"


def is_detectron2_config(name: object) -> bool:
    """A YAML config (detectron2's format) or a name scoped ``detectron2::``."""
    return isinstance(name, str) and (name.startswith(DETECTRON2_SCOPE)
                                      or name.endswith((".yaml", ".yml")))


def build_detectron2_config_teacher(name: str, loading: dict
                                    ) -> tuple[StagedBackbone, InputConvention]:
    """The teacher of detectron2 config ``name`` with ``loading`` (TeacherSpec keys) applied."""
    try:
        from hybridkt_ext.for_detectron2.teacher_config import teacher_from_config
    except ImportError as err:
        raise ValueError(f"teacher.config {name!r} is a detectron2 config, and detectron2 cannot "
                         f"be imported ({err}); install it (docs/detectron2.md) or name the "
                         f"teacher as a backbone dict.") from None
    staged, convention, prefix = teacher_from_config(name.removeprefix(DETECTRON2_SCOPE))
    spec = TeacherSpec.from_mapping({"prefix": prefix, **loading})
    load_teacher(staged, spec)
    return staged, spec.input or convention
