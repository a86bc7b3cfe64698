"""The hybrid backbone: student bottom-up + frozen teacher in the core engine, student FPN on top.

``HybridFPN`` *is* detectron2's FPN (same lateral/output convs, same state-dict keys, same
``output_shape()`` and ``size_divisibility``); only its bottom-up is the engine. Its plain
``forward`` is the student path, so inference and evaluation are plain detectron2.
``forward_hybrid`` runs the three paths and sends each path's features through the same FPN.

State dict: ``bottom_up.engine.student.model.*`` is the plain bottom-up's state dict, next to
``bottom_up.engine.teacher.*`` and the adapters ``bottom_up.engine.to_{teacher,student}.*``;
``export.export_student_checkpoint`` maps it back onto the plain model's ``bottom_up.*``.
"""
from __future__ import annotations

from typing import Sequence

import torch
from detectron2.config import CfgNode
from detectron2.layers import ShapeSpec
from detectron2.modeling import BACKBONE_REGISTRY, FPN, Backbone
from detectron2.modeling.backbone.fpn import LastLevelMaxPool

from ..core import HybridFeatures, HybridForward, StagedBackbone
from .config import TRANSFER_MODES
from .stage_split import match_teacher_stages, split_bottom_up
from .teacher import build_teacher, student_input_convention, teacher_input_convention

FeatureDict = dict[str, torch.Tensor]


class HybridBottomUp(Backbone):
    """The engine seen as a detectron2 bottom-up network: the student's stages by name.

    Args:
        engine: the core engine over the student (and teacher, if any).
        out_features: student stage names the FPN consumes, high to low resolution.
    """

    def __init__(self, engine: HybridForward, out_features: Sequence[str]) -> None:
        super().__init__()
        self.engine = engine
        specs = {s.name: s for s in engine.student.stage_specs}
        self._out_features = list(out_features)
        self._out_feature_channels = {n: specs[n].channels for n in out_features}
        self._out_feature_strides = {n: specs[n].reduction for n in out_features}

    def forward(self, x: torch.Tensor | FeatureDict) -> FeatureDict:
        """Student path on an image batch; a dict of already computed features passes through.

        The pass-through lets ``HybridFPN`` run detectron2's own FPN.forward on the features
        of the hybrid paths instead of re-implementing its top-down pathway.
        """
        if isinstance(x, dict):
            return x
        return self.as_dict(self.engine(x))

    def as_dict(self, features: Sequence[torch.Tensor]) -> FeatureDict:
        return dict(zip(self._out_features, features))

    def output_shape(self) -> dict[str, ShapeSpec]:
        return {n: ShapeSpec(channels=self._out_feature_channels[n],
                             stride=self._out_feature_strides[n]) for n in self._out_features}


class HybridFPN(FPN):
    """detectron2's FPN over a ``HybridBottomUp``; adds the hybrid and teacher-target forwards."""

    bottom_up: HybridBottomUp

    @property
    def engine(self) -> HybridForward:
        return self.bottom_up.engine

    def forward_hybrid(self, x: torch.Tensor) -> HybridFeatures:
        """The three paths' FPN outputs, each {"p2": (N, C, H/4, W/4), ..., "p6": ...}.

        Args:
            x: (N, 3, H, W) normalised images, H and W multiples of ``size_divisibility``.
        """
        paths = self.engine.forward_hybrid(x)
        return HybridFeatures(self._neck(paths.student), self._neck(paths.student_first),
                              self._neck(paths.teacher_first))

    def _neck(self, features: Sequence[torch.Tensor]) -> FeatureDict:
        # detectron2's own top-down pathway; the bottom-up passes the feature dict through.
        return super().forward(self.bottom_up.as_dict(features))

    def forward_with_teacher(
        self, x: torch.Tensor
    ) -> tuple[FeatureDict, list[torch.Tensor], list[torch.Tensor]]:
        """Student FPN outputs plus all student and teacher stage outputs (for FitNet / AT)."""
        student_stages, teacher_stages = self.engine.forward_with_teacher(x)
        selected = self.engine.head_features(student_stages)
        return self._neck(selected), student_stages, teacher_stages


def build_hybrid_engine(cfg: CfgNode, student: StagedBackbone,
                        out_features: Sequence[str]) -> HybridForward:
    """The core engine for ``MODEL.HYBRIDKT.TRANSFER`` (no teacher at all for "none")."""
    hk = cfg.MODEL.HYBRIDKT
    if hk.TRANSFER not in TRANSFER_MODES:
        raise ValueError(f"MODEL.HYBRIDKT.TRANSFER is {hk.TRANSFER!r}; use one of {TRANSFER_MODES}")
    names = [s.name for s in student.stage_specs]
    missing = [f for f in out_features if f not in names]
    if missing:
        raise ValueError(f"MODEL.FPN.IN_FEATURES {list(out_features)} names {missing}, which "
                         f"the student bottom-up does not have; its stages are {names}")
    out_indices = [names.index(f) for f in out_features]
    teacher = None
    if hk.TRANSFER != "none":
        teacher = match_teacher_stages(student, build_teacher(cfg))
    if not isinstance(hk.CHECKPOINT_TEACHER, bool):
        raise ValueError(f"MODEL.HYBRIDKT.CHECKPOINT_TEACHER must be True or False, got "
                         f"{hk.CHECKPOINT_TEACHER!r}")
    switch_points = list(hk.SWITCH_POINTS) or None
    return HybridForward(student, teacher, switch_points=switch_points, out_indices=out_indices,
                         student_input=student_input_convention(cfg),
                         teacher_input=teacher_input_convention(cfg),
                         hybrid_paths=hk.TRANSFER == "hybrid",
                         checkpoint_teacher=hk.CHECKPOINT_TEACHER)


@BACKBONE_REGISTRY.register()
def build_hybridkt_fpn_backbone(cfg: CfgNode, input_shape: ShapeSpec) -> HybridFPN:
    """Student bottom-up (``MODEL.HYBRIDKT.STUDENT_BOTTOM_UP``) + teacher + the student's FPN.

    Set ``MODEL.BACKBONE.NAME: build_hybridkt_fpn_backbone`` and
    ``MODEL.META_ARCHITECTURE: HybridRCNN``; everything else stays the student's config.
    """
    name = cfg.MODEL.HYBRIDKT.STUDENT_BOTTOM_UP
    if name not in BACKBONE_REGISTRY or "fpn" in name:
        raise ValueError(
            f"MODEL.HYBRIDKT.STUDENT_BOTTOM_UP {name!r} must be a registered bottom-up builder "
            "(no FPN: the FPN is added here), e.g. build_resnet_backbone or "
            "build_mobilenet_v1_backbone"
        )
    bottom_up = BACKBONE_REGISTRY.get(name)(cfg, input_shape)
    in_features = list(cfg.MODEL.FPN.IN_FEATURES)
    engine = build_hybrid_engine(cfg, split_bottom_up(bottom_up), in_features)
    return HybridFPN(
        bottom_up=HybridBottomUp(engine, in_features),
        in_features=in_features,
        out_channels=cfg.MODEL.FPN.OUT_CHANNELS,
        norm=cfg.MODEL.FPN.NORM,
        top_block=LastLevelMaxPool(),
        fuse_type=cfg.MODEL.FPN.FUSE_TYPE,
    )
