"""Declaring the stages of detectron2 bottom-up networks for the hybrid engine.

A stage ends right before a downsampling layer: detectron2's ResNet is stem+res2 | res3 | res4 |
res5, the same cut the core uses for torchvision's ResNet, so the two pair one to one.
"""
from __future__ import annotations

from detectron2.modeling.backbone import ResNet
from torch import nn

from ..core import StagedBackbone, StageSpec, merge_stages
from ..core.stage_alignment import StageMismatchError, describe_stages


def split_detectron2_resnet(resnet: ResNet) -> StagedBackbone:
    """stem+res2 | res3 | res4 | res5 of a detectron2 ResNet (state dict under ``model.``)."""
    if tuple(resnet.stage_names) != ("res2", "res3", "res4", "res5"):
        raise ValueError(
            f"the ResNet has stages {resnet.stage_names}; hybrid forward needs res2..res5: set "
            "MODEL.RESNETS.OUT_FEATURES to include 'res5'"
        )
    specs = []
    for i, name in enumerate(resnet.stage_names):
        module: nn.Module = getattr(resnet, name)
        if i == 0:
            # The stem holds no downsampling boundary of its own worth switching at (/4 after
            # its max-pool, the same scale as res2), so it joins res2.
            module = nn.Sequential(resnet.stem, module)
        specs.append(StageSpec(name, resnet._out_feature_channels[name],
                               resnet._out_feature_strides[name], module))
    return StagedBackbone(resnet, specs)


def split_bottom_up(bottom_up: nn.Module) -> StagedBackbone:
    """The stage declaration of a student bottom-up network.

    Supports detectron2's ``ResNet`` and any backbone with a ``staged()`` method returning a
    ``StagedBackbone`` whose model is the backbone itself (e.g. ``MobileNetV1Backbone``).
    """
    if isinstance(bottom_up, ResNet):
        return split_detectron2_resnet(bottom_up)
    if hasattr(bottom_up, "staged"):
        staged = bottom_up.staged()
        if staged.model is not bottom_up:
            raise ValueError(f"{type(bottom_up).__name__}.staged() must wrap the backbone itself")
        return staged
    raise TypeError(
        f"cannot split a {type(bottom_up).__name__} into stages: MODEL.HYBRIDKT.STUDENT_BOTTOM_UP "
        "must build a detectron2 ResNet or a backbone with a staged() method (see "
        "MobileNetV1Backbone)"
    )


def match_teacher_stages(student: StagedBackbone, teacher: StagedBackbone) -> StagedBackbone:
    """Merges teacher stages so that teacher stage k ends at student stage k's reduction.

    The student's stages are kept as they are (the FPN reads them by name); the teacher must
    have a stage boundary at every reduction of the student.

    Raises:
        StageMismatchError: a student reduction has no teacher stage ending there.
    """
    t_red = [s.reduction for s in teacher.stage_specs]
    groups, start = [], 0
    for spec in student.stage_specs:
        ends = [i for i, r in enumerate(t_red) if r == spec.reduction and i >= start]
        if not ends:
            raise StageMismatchError(
                f"the teacher's stages [{describe_stages(teacher)}] cannot be matched to the "
                f"student's [{describe_stages(student)}]: no teacher stage ends at reduction "
                f"{spec.reduction}. Choose a teacher with a stage at every student scale "
                "(MODEL.HYBRIDKT.TEACHER.ARCH), e.g. a ResNet"
            )
        groups.append(list(range(start, ends[-1] + 1)))
        start = ends[-1] + 1
    groups[-1].extend(range(start, len(t_red)))  # stages past the last scale: unused depth
    if len(groups) == teacher.num_stages:
        return teacher
    return merge_stages(teacher, groups)
