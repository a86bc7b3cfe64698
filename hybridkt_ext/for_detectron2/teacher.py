"""Building the frozen teacher from ``MODEL.HYBRIDKT.TEACHER.*`` and loading its weights."""
from __future__ import annotations

import logging

import torchvision
from detectron2.config import CfgNode
from detectron2.layers import ShapeSpec
from detectron2.modeling.backbone.resnet import build_resnet_backbone
from torch import nn

from ..core import InputConvention, StagedBackbone, load_teacher_weights, split_backbone
from ..core.checkpoint import DETECTRON2_RESNET_TO_TORCHVISION
from .config import TEACHER_FRAMEWORKS
from .stage_split import split_detectron2_resnet

logger = logging.getLogger(__name__)

# MODEL.HYBRIDKT.TEACHER.WEIGHTS_REMAP presets: name -> (pattern, replacement) regex rules.
REMAP_PRESETS: dict[str, tuple[tuple[str, str], ...]] = {
    "": (),
    "detectron2_resnet_to_torchvision": DETECTRON2_RESNET_TO_TORCHVISION,
}


def _torchvision_teacher(arch: str) -> tuple[nn.Module, StagedBackbone]:
    try:
        model = torchvision.models.get_model(arch, weights=None)
    except ValueError as err:
        raise ValueError(
            f"MODEL.HYBRIDKT.TEACHER.ARCH {arch!r} is not a torchvision model ({err}); see "
            "torchvision.models.list_models()"
        ) from None
    if isinstance(model, torchvision.models.ResNet):
        # The teacher lends its feature extractor only; a classifier would sit unused.
        model.fc = nn.Identity()
    return model, split_backbone(model)


def _detectron2_teacher(cfg: CfgNode, arch: str) -> tuple[nn.Module, StagedBackbone]:
    try:
        depth = int(arch.lower().removeprefix("resnet"))
    except ValueError:
        depth = -1
    if depth not in (18, 34, 50, 101, 152):
        raise ValueError(
            f"MODEL.HYBRIDKT.TEACHER.ARCH {arch!r}: a detectron2 teacher is a ResNet, name it "
            "'resnet<depth>' with depth 18, 34, 50, 101 or 152"
        )
    tcfg = cfg.clone()
    tcfg.defrost()
    r = tcfg.MODEL.RESNETS
    # A standard ResNet whatever the student's MODEL.RESNETS says; frozen by the engine.
    r.DEPTH, r.OUT_FEATURES, r.NORM = depth, ["res2", "res3", "res4", "res5"], "FrozenBN"
    r.NUM_GROUPS, r.WIDTH_PER_GROUP, r.STEM_OUT_CHANNELS = 1, 64, 64
    r.RES2_OUT_CHANNELS = 64 if depth < 50 else 256
    r.RES5_DILATION, r.DEFORM_ON_PER_STAGE = 1, [False] * 4
    tcfg.MODEL.BACKBONE.FREEZE_AT = 0
    resnet = build_resnet_backbone(tcfg, ShapeSpec(channels=3))
    return resnet, split_detectron2_resnet(resnet)


def teacher_input_convention(cfg: CfgNode) -> InputConvention:
    """The teacher's pixel convention from MODEL.HYBRIDKT.TEACHER.PIXEL_MEAN/STD/INPUT_FORMAT."""
    t = cfg.MODEL.HYBRIDKT.TEACHER
    try:
        return InputConvention(tuple(t.PIXEL_MEAN), tuple(t.PIXEL_STD), t.INPUT_FORMAT)
    except ValueError as err:
        raise ValueError(f"MODEL.HYBRIDKT.TEACHER.PIXEL_MEAN/PIXEL_STD/INPUT_FORMAT: {err}") \
            from None


def student_input_convention(cfg: CfgNode) -> InputConvention:
    """What detectron2 feeds the backbone: INPUT.FORMAT images minus PIXEL_MEAN over PIXEL_STD."""
    if cfg.INPUT.FORMAT not in ("RGB", "BGR"):
        raise ValueError(f"INPUT.FORMAT {cfg.INPUT.FORMAT!r}: hybridkt needs 'RGB' or 'BGR' input")
    return InputConvention(tuple(cfg.MODEL.PIXEL_MEAN), tuple(cfg.MODEL.PIXEL_STD),
                           cfg.INPUT.FORMAT)


def build_teacher(cfg: CfgNode) -> StagedBackbone:
    """The teacher network, split into stages, with its checkpoint loaded (not yet frozen).

    Raises:
        ValueError: an unknown framework, architecture or remap preset.
        hybridkt_ext.core.TeacherCheckpointError: the checkpoint does not fit (the message lists
            missing and unexpected keys and names the prefix/remap to fix).
    """
    t = cfg.MODEL.HYBRIDKT.TEACHER
    if t.FRAMEWORK == "torchvision":
        model, staged = _torchvision_teacher(t.ARCH)
    elif t.FRAMEWORK == "detectron2":
        model, staged = _detectron2_teacher(cfg, t.ARCH)
    else:
        raise ValueError(
            f"MODEL.HYBRIDKT.TEACHER.FRAMEWORK is {t.FRAMEWORK!r}; use one of {TEACHER_FRAMEWORKS}"
        )
    if t.WEIGHTS_REMAP not in REMAP_PRESETS:
        raise ValueError(
            f"MODEL.HYBRIDKT.TEACHER.WEIGHTS_REMAP {t.WEIGHTS_REMAP!r} is not a preset; use one "
            f"of {sorted(REMAP_PRESETS)}"
        )
    if t.WEIGHTS:
        report = load_teacher_weights(model, t.WEIGHTS, prefix=t.WEIGHTS_PREFIX,
                                      remap=REMAP_PRESETS[t.WEIGHTS_REMAP],
                                      strict=t.WEIGHTS_STRICT)
        logger.info("teacher %s: loaded %d tensors from %s (%d missing, %d unexpected)",
                    t.ARCH, len(report.loaded), t.WEIGHTS, len(report.missing),
                    len(report.unexpected))
    else:
        logger.warning("MODEL.HYBRIDKT.TEACHER.WEIGHTS is empty: the teacher keeps random "
                       "weights and transfers no knowledge (fine for tests only)")
    return staged
