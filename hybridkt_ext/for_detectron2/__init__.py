"""detectron2 adapter of hybridkt: importing it registers everything below.

* ``build_hybridkt_fpn_backbone`` (BACKBONE_REGISTRY): student bottom-up + frozen teacher in the
  core engine, the student's FPN on every path;
* ``build_mobilenet_v1_backbone`` / ``build_mobilenet_v1_fpn_backbone``: the paper's student;
* ``build_hybridkt_retinanet_fpn_backbone`` (RetinaNet) and ``build_hybridkt_backbone`` (C4);
* ``install_transfer_step``: any meta-architecture's training forward over the paths;
* ``citypersons_*`` datasets and ``CityPersonsEvaluator`` (MR^-2);
* ``HybridKTTrainer`` (DefaultTrainer + evaluator + ``HybridKTHook``, CPU ``launch`` too);
* ``SafeDetectionCheckpointer``: checkpoint reads that never unpickle code;
* ``save_student_checkpoint`` / ``plain_student_config`` for the plain student config.
"""
try:
    import detectron2  # noqa: F401
except ImportError:
    raise ImportError(
        "hybridkt_ext.for_detectron2 needs detectron2, which is not on PyPI: install it from "
        "source, pip install --no-build-isolation "
        "'git+https://github.com/facebookresearch/detectron2.git' (details: "
        "https://detectron2.readthedocs.io/en/latest/tutorials/install.html)"
    ) from None

from .citypersons import register_all_citypersons, register_citypersons
from .citypersons_evaluation import CityPersonsEvaluator
from .config import add_hybridkt_config
from .export import plain_student_config, save_student_checkpoint, student_state_dict
from .hooks import HybridKTHook
from .hybrid_backbone import (HybridBottomUp, HybridFPN, build_hybridkt_backbone,
                              build_hybridkt_fpn_backbone, build_hybridkt_retinanet_fpn_backbone)
from . import hybrid_rcnn  # noqa: F401  (a removed name, refused with the new form)
from .mobilenet_v1_backbone import (
    MobileNetV1Backbone,
    add_mobilenet_v1_config,
    build_mobilenet_v1_backbone,
    build_mobilenet_v1_fpn_backbone,
)
from .safe_checkpointer import SafeDetectionCheckpointer
from .synthetic_dense_targets import register_dense_synthetic
from .trainer import HybridKTTrainer
from .transfer_wiring import find_hybrid_bottom_up, install_transfer_step

register_all_citypersons()
register_dense_synthetic()

__all__ = [
    "CityPersonsEvaluator", "HybridBottomUp", "HybridFPN", "HybridKTHook", "HybridKTTrainer",
    "MobileNetV1Backbone", "SafeDetectionCheckpointer", "add_hybridkt_config",
    "add_mobilenet_v1_config",
    "build_hybridkt_backbone", "build_hybridkt_fpn_backbone",
    "build_hybridkt_retinanet_fpn_backbone", "build_mobilenet_v1_backbone",
    "find_hybrid_bottom_up", "install_transfer_step",
    "build_mobilenet_v1_fpn_backbone", "save_student_checkpoint", "plain_student_config",
    "register_all_citypersons", "register_citypersons", "student_state_dict",
]
