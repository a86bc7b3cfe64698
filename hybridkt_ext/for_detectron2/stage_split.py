"""Declaring the stages of detectron2 bottom-up networks for the hybrid engine.

A stage ends right before a downsampling layer: detectron2's ResNet is stem+res2 | res3 | res4 |
res5, the same cut the core uses for torchvision's ResNet, so the two pair one to one. Its RegNet
(and any ``AnyNet``) is stem+s1 | s2 | s3 | s4 alike. Stage names are the bottom-up's own output
feature names, because the FPN reads the stage outputs by those names.

Stage modules are ``SubmoduleChain`` s over the bottom-up's named children rather than
references to them (the core's convention): a child replaced after the split is the one that
runs.
"""
from __future__ import annotations

from typing import Sequence

from detectron2.modeling.backbone import ResNet
from detectron2.modeling.backbone.regnet import AnyNet
from detectron2.modeling.backbone.vit import ViT
from torch import nn

from ..core import StagedBackbone, StageSpec, SubmoduleChain, merge_stages
from ..core.stage_alignment import StageMismatchError, describe_stages
from .vitdet_stages import split_detectron2_vit

_RESNET_STAGES = ("res2", "res3", "res4", "res5")

# The bottom-up types split_bottom_up knows, for its error message.
SUPPORTED_BOTTOM_UPS = ("detectron2 ResNet (build_resnet_backbone)",
                        "detectron2 RegNet / AnyNet (e.g. configs/new_baselines/*regnet*)",
                        "detectron2 ViT (ViTDet's backbone.net)",
                        "a backbone with a staged() method (e.g. MobileNetV1Backbone)")


def _dilation(modules: Sequence[nn.Module]) -> int:
    """The largest dilation of any convolution in ``modules`` (1 when there is none).

    Read off any submodule with a ``dilation`` attribute rather than nn.Conv2d only: the
    deformable convolutions of ``MODEL.RESNETS.DEFORM_ON_PER_STAGE`` are no nn.Conv2d but
    carry the dilation of the stage they replace.
    """
    found = [1]
    for module in modules:
        for m in module.modules():
            value = getattr(m, "dilation", None)
            if isinstance(value, int):
                found.append(value)
            elif isinstance(value, tuple) and all(isinstance(v, int) for v in value):
                found.extend(value)
    return max(found)


def _stage(model: nn.Module, name: str, names: Sequence[str]) -> StageSpec:
    """The stage running ``names`` of ``model`` whose output is the feature ``name``.

    Channels and reduction are the backbone's own ``_out_feature_channels`` /
    ``_out_feature_strides`` (what its ``output_shape()`` reports to the FPN); the scale is the
    reduction the stage would have without dilation, so a DC5 res5 (/16) pairs with a
    teacher's /32 stage.
    """
    chain = SubmoduleChain(model, names)
    reduction = model._out_feature_strides[name]
    return StageSpec(name, model._out_feature_channels[name], reduction, chain,
                     scale=reduction * _dilation(chain.submodules()))


def split_detectron2_resnet(resnet: ResNet) -> StagedBackbone:
    """stem+res2 | res3 | res4 (| res5) of a detectron2 ResNet (state dict under ``model.``).

    detectron2 builds res2 up to the last stage named in ``MODEL.RESNETS.OUT_FEATURES``, so a
    C4 model's backbone (``OUT_FEATURES ['res4']``, res5 inside ``Res5ROIHeads``) has three
    stages, and hybrid forward switches inside the backbone only. A dilated res5 (DC5,
    ``RES5_DILATION 2``) keeps reduction 16 but gets scale 32.

    Raises:
        ValueError: the ResNet has fewer than two stages (nothing to switch between) or stages
            other than a prefix of res2..res5.
    """
    names = tuple(resnet.stage_names)
    if len(names) < 2 or names != _RESNET_STAGES[: len(names)]:
        raise ValueError(
            f"the ResNet has stages {names}; hybrid forward switches between stages and needs "
            "at least res2 and res3 (res2..res4 for a C4 model, res2..res5 otherwise): set "
            "MODEL.RESNETS.OUT_FEATURES to include 'res4' (C4) or 'res5'"
        )
    # The stem holds no downsampling boundary of its own worth switching at (/4 after its
    # max-pool, the same scale as res2), so it joins res2.
    specs = [_stage(resnet, name, ("stem", name) if i == 0 else (name,))
             for i, name in enumerate(names)]
    return StagedBackbone(resnet, specs)


def split_detectron2_regnet(regnet: AnyNet) -> StagedBackbone:
    """stem+s1 | s2 | s3 | s4 of a detectron2 RegNet (any ``AnyNet``; state under ``model.``).

    Unlike the ResNet, an AnyNet builds all its stages whatever its ``out_features``, so every
    stage is declared (a RegNet has four for the usual parameters). The stem (/2) joins s1
    (/4): the teachers' first stage ends at /4 too.

    Raises:
        ValueError: the network has fewer than two stages.
    """
    names = [name for _, name in regnet.stages_and_names]
    if len(names) < 2:
        raise ValueError(
            f"the {type(regnet).__name__} has stages {names}; hybrid forward switches between "
            "stages and needs at least two"
        )
    specs = [_stage(regnet, name, ("stem", name) if i == 0 else (name,))
             for i, name in enumerate(names)]
    return StagedBackbone(regnet, specs)


def split_bottom_up(bottom_up: nn.Module) -> StagedBackbone:
    """The stage declaration of a student bottom-up network.

    Supports detectron2's ``ResNet``, its ``RegNet`` (any ``AnyNet``) and any backbone with a
    ``staged()`` method returning a ``StagedBackbone`` whose model is the backbone itself
    (e.g. ``MobileNetV1Backbone``).

    Raises:
        TypeError: an unsupported bottom-up (the message names the supported ones).
        ValueError: a supported one with too few stages, or a ``staged()`` over another model.
    """
    if isinstance(bottom_up, ResNet):
        return split_detectron2_resnet(bottom_up)
    if isinstance(bottom_up, AnyNet):
        return split_detectron2_regnet(bottom_up)
    if isinstance(bottom_up, ViT):  # ViTDet's net, inside SimpleFeaturePyramid
        return split_detectron2_vit(bottom_up)
    if callable(getattr(bottom_up, "staged", None)):
        staged = bottom_up.staged()
        if staged.model is not bottom_up:
            raise ValueError(f"{type(bottom_up).__name__}.staged() must wrap the backbone itself")
        return staged
    raise TypeError(
        f"cannot split a {type(bottom_up).__name__} into stages: MODEL.HYBRIDKT.STUDENT_BOTTOM_UP "
        f"must build one of: {'; '.join(SUPPORTED_BOTTOM_UPS)}"
    )


def _scale_words(spec: StageSpec) -> str:
    # "reduction" for an undilated stage: that is what users see in output_shape().
    if spec.scale == spec.reduction:
        return f"reduction {spec.reduction}"
    return (f"scale {spec.scale} (the undilated reduction of {spec.name!r}, which runs at "
            f"/{spec.reduction})")


def match_teacher_stages(student: StagedBackbone, teacher: StagedBackbone) -> StagedBackbone:
    """Merges teacher stages so that teacher stage k ends at student stage k's scale.

    Stages pair by ``scale`` (the reduction without dilation): a DC5 student's res5 (/16, scale
    32) pairs with the teacher's /32 stage, and the adapters interpolate between the sizes.
    The student's stages are kept as they are (the FPN reads them by name); the teacher must
    have a stage boundary at every scale of the student. Teacher stages past the student's
    last scale are dropped: they would carry the teacher's last output to a coarser scale than
    the student's (a C4 student ends at res4, /16), and nothing would consume them.

    Raises:
        StageMismatchError: a student scale has no teacher stage ending there.
    """
    t_scale = [s.scale for s in teacher.stage_specs]
    s_scale = [s.scale for s in student.stage_specs]
    if min(len(set(t_scale)), len(set(s_scale))) == 1 < max(len(t_scale), len(s_scale)):
        # A plain ViT (teacher, or ViTDet's student) keeps one resolution: its block groups
        # have no scale to pair by, so they pair stage for stage (as core.align_stages does)
        # and the adapters resize.
        if teacher.num_stages == student.num_stages:
            return teacher
        raise StageMismatchError(
            f"the teacher's stages [{describe_stages(teacher)}] and the student's "
            f"[{describe_stages(student)}]: a plain ViT's stages all run at one scale and pair "
            "stage for stage, so both need the same number of stages (a plain ViT has four "
            "block groups).")
    groups, start = [], 0
    for spec in student.stage_specs:
        ends = [i for i, s in enumerate(t_scale) if s == spec.scale and i >= start]
        if not ends:
            if spec.scale in t_scale[:start]:
                # A student stage that keeps the resolution (an AnyNet stage of stride 1):
                # the teacher's stage at that scale already pairs with the previous one.
                why = (f"the student has several stages at {_scale_words(spec)} and the "
                       "teacher's stage there already pairs with the first of them. Give the "
                       "student one stage per scale (a stride of 2 in every stage)")
            else:
                why = (f"no teacher stage ends at {_scale_words(spec)}. Choose a teacher with "
                       "a stage at every student scale (MODEL.HYBRIDKT.TEACHER.ARCH), e.g. a "
                       "ResNet")
            raise StageMismatchError(
                f"the teacher's stages [{describe_stages(teacher)}] cannot be matched to the "
                f"student's [{describe_stages(student)}]: {why}"
            )
        groups.append(list(range(start, ends[-1] + 1)))
        start = ends[-1] + 1
    if start < teacher.num_stages:
        teacher = StagedBackbone(teacher.model, teacher.stage_specs[:start])
    if len(groups) == teacher.num_stages:
        return teacher
    return merge_stages(teacher, groups)
