"""Building the frozen teacher from ``MODEL.HYBRIDKT.TEACHER.*`` and loading its weights.

The network is that of the detector config the teacher was trained with (``TEACHER.CONFIG``,
see ``teacher_config``), or comes from torchvision or timm (built without weights), or is a
detectron2 ResNet;
the weights are loaded by the core's one policy (``core.load_teacher``): every weight a stage
uses must be in the file, shapes must match, unexpected keys are refused unless
``WEIGHTS_STRICT`` is False (a classifier head such as ``fc.*`` is always allowed).
"""
from __future__ import annotations

from detectron2.config import CfgNode
from detectron2.layers import ShapeSpec
from detectron2.modeling.backbone.resnet import build_resnet_backbone
from torch import nn

from ..core import InputConvention, StagedBackbone
from ..core.teacher_loading import load_teacher
from ..core.teacher_spec import TeacherSpec
from ..core.plain_vit_stages import is_timm_vit
from ..core.zoo_teachers import build_zoo_model, split_zoo_model
from .config import TEACHER_FRAMEWORKS
from .stage_split import split_detectron2_resnet
from .teacher_config import config_convention, teacher_from_config


def _zoo_teacher(framework: str, arch: str) -> StagedBackbone:
    kind = f"{framework}.{arch}"
    model = build_zoo_model(kind, where="MODEL.HYBRIDKT.TEACHER.ARCH")
    if is_timm_vit(model) and not model.dynamic_img_size:
        # detectron2 batches vary in size and no YAML key reaches the constructor: a timm ViT
        # resamples its position embedding per batch instead of refusing all but img_size.
        model = build_zoo_model(kind, {"dynamic_img_size": True},
                                where="MODEL.HYBRIDKT.TEACHER.ARCH")
    fc = getattr(model, "fc", None)
    if isinstance(fc, nn.Linear):
        # The teacher lends its feature extractor only; a classifier would sit unused.
        model.fc = nn.Identity()
    return split_zoo_model(kind, model)


def _detectron2_teacher(cfg: CfgNode, arch: str) -> StagedBackbone:
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
    return split_detectron2_resnet(build_resnet_backbone(tcfg, ShapeSpec(channels=3)))


def teacher_input_convention(cfg: CfgNode) -> InputConvention:
    """The teacher's pixel convention: its CONFIG's, else TEACHER.PIXEL_MEAN/STD/INPUT_FORMAT."""
    t = cfg.MODEL.HYBRIDKT.TEACHER
    if t.CONFIG:
        return config_convention(t.CONFIG)
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


def teacher_spec(cfg: CfgNode, default_prefix: str = "") -> TeacherSpec:
    """``MODEL.HYBRIDKT.TEACHER.*`` as the core's TeacherSpec (validated, keys named)."""
    t = cfg.MODEL.HYBRIDKT.TEACHER
    values = dict(checkpoint=t.WEIGHTS or None, prefix=t.WEIGHTS_PREFIX or default_prefix,
                  remap=t.WEIGHTS_REMAP or (), strict=t.WEIGHTS_STRICT,
                  allow_random_init=t.ALLOW_RANDOM_INIT,
                  trust_checkpoint=cfg.MODEL.HYBRIDKT.TRUST_CHECKPOINTS)
    keys = dict(checkpoint="WEIGHTS", prefix="WEIGHTS_PREFIX", remap="WEIGHTS_REMAP",
                strict="WEIGHTS_STRICT", allow_random_init="ALLOW_RANDOM_INIT")
    names = {k: f"MODEL.HYBRIDKT.TEACHER.{v}" for k, v in keys.items()}
    names["trust_checkpoint"] = "MODEL.HYBRIDKT.TRUST_CHECKPOINTS"
    return TeacherSpec.from_mapping(values, where="MODEL.HYBRIDKT.TEACHER", names=names)


def build_teacher(cfg: CfgNode) -> StagedBackbone:
    """The teacher network, split into stages, with its checkpoint loaded (not yet frozen).

    Raises:
        ValueError: an unknown framework, architecture or remap preset, or no WEIGHTS without
            ALLOW_RANDOM_INIT.
        hybridkt_ext.core.TeacherCheckpointError: the checkpoint does not fit (the message lists
            missing and unexpected keys and names the prefix/remap to fix).
    """
    t = cfg.MODEL.HYBRIDKT.TEACHER
    if t.CONFIG:  # the network (and key prefix) of the config the teacher was trained with
        staged, _, prefix = teacher_from_config(t.CONFIG)
        load_teacher(staged, teacher_spec(cfg, default_prefix=prefix))
        return staged
    spec = teacher_spec(cfg)  # before building: a typo fails in milliseconds
    if t.FRAMEWORK in ("torchvision", "timm"):
        staged = _zoo_teacher(t.FRAMEWORK, t.ARCH)
    elif t.FRAMEWORK == "detectron2":
        staged = _detectron2_teacher(cfg, t.ARCH)
    else:
        raise ValueError(
            f"MODEL.HYBRIDKT.TEACHER.FRAMEWORK is {t.FRAMEWORK!r}; use one of {TEACHER_FRAMEWORKS}"
        )
    load_teacher(staged, spec)
    return staged
