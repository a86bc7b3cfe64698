"""The hybrid bottom-up: student bottom-up + frozen teacher in the core engine, as a detectron2
Backbone, and the backbone builders that put it under detectron2's own FPN (or use it alone).

``HybridBottomUp`` is the core's ``TransferBackbone`` returning the student's stage features by
name, exactly as the plain bottom-up does, so detectron2's FPN, RPN, ROI, RetinaNet, FCOS and
semantic heads run unchanged. While a training step runs (``core.TransferStep``, wired onto the
meta-architecture's ``forward`` by ``transfer_wiring``) it returns each path's features in turn:
the FPN and the heads then train every path. Inference and evaluation are the student path.

State dict: ``<bottom_up>.engine.student.model.*`` is the plain bottom-up's state dict, next to
``<bottom_up>.engine.teacher.*`` (``teacher.<k>.*`` with several teachers,
``MODEL.HYBRIDKT.TEACHERS``), the adapters ``<bottom_up>.engine.to_{teacher,student}.*``
and FitNet's regressors ``<bottom_up>.transfer_loss.*``; ``export.save_student_checkpoint``
maps it back onto the plain model.
"""
from __future__ import annotations

from typing import Sequence

import torch
from detectron2.config import CfgNode
from detectron2.layers import ShapeSpec
from detectron2.modeling import BACKBONE_REGISTRY, FPN, Backbone
from detectron2.modeling.backbone.fpn import LastLevelMaxPool, LastLevelP6P7

from ..core import (HybridFeatures, HybridForward, InputConvention, StagedBackbone,
                    TransferBackbone, TransferMode, TransferSettings, transfer_mode,
                    transfer_mode_names)
from ..core.hybrid_forward import check_teacher_precision
from .config import CONFIG_BALANCE_MODES, DEFAULT_FIXED_ALPHA
from ..core.stage_alignment import StageMismatchError
from .stage_split import match_teacher_stages, split_bottom_up
from .teacher import (TeacherEntry, build_teacher, check_teacher_sampling,
                      student_input_convention, teacher_entries, teacher_input_conventions)

FeatureDict = dict[str, torch.Tensor]


class HybridBottomUp(TransferBackbone, Backbone):
    """The engine seen as a detectron2 bottom-up network: the student's stages by name.

    Args:
        engine: the core engine over the student (and teacher, if any).
        out_features: student stage names the consumer (FPN, or the heads) reads.
        settings: the transfer mode, balance and loss options (``transfer_settings(cfg)``).
        teacher_input: the teacher's own pixel convention (to rebuild the input transform
            when the meta-architecture's convention is adopted).
    """

    transfer_key = "MODEL.HYBRIDKT.TRANSFER"
    wiring_hint = ("train with tools/train_net.py / HybridKTTrainer, or call "
                   "hybridkt_ext.for_detectron2.install_transfer_step(model) first.")

    def __init__(self, engine: HybridForward, out_features: Sequence[str],
                 settings: TransferSettings, teacher_input: InputConvention | None = None) -> None:
        super().__init__()
        specs = {s.name: s for s in engine.student.stage_specs}
        self._out_features = list(out_features)
        self._out_feature_channels = {n: specs[n].channels for n in out_features}
        self._out_feature_strides = {n: specs[n].reduction for n in out_features}
        self.setup_transfer(engine, settings, teacher_input)

    @property
    def out_features(self) -> list[str]:
        return list(self._out_features)

    def forward(self, x: torch.Tensor | FeatureDict) -> FeatureDict:
        """Student path on an image batch (or the active path during a training step).

        A dict of already computed features passes through, which lets ``HybridFPN`` run
        detectron2's own FPN.forward on given features.
        """
        if isinstance(x, dict):
            return x
        return self.as_dict(self.transfer_features(x))

    def plain_student_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The plain student bottom-up's forward, in ``out_features`` order."""
        features = self.student(x)
        return [features[name] for name in self._out_features]

    def as_dict(self, features: Sequence[torch.Tensor]) -> FeatureDict:
        return dict(zip(self._out_features, features))

    def output_shape(self) -> dict[str, ShapeSpec]:
        return {n: ShapeSpec(channels=self._out_feature_channels[n],
                             stride=self._out_feature_strides[n]) for n in self._out_features}


class HybridFPN(FPN):
    """detectron2's FPN over a ``HybridBottomUp`` (its forward is FPN's own); adds the
    three paths' FPN outputs as one call, for inspection and tests."""

    bottom_up: HybridBottomUp

    @property
    def engine(self) -> HybridForward:
        return self.bottom_up.engine

    def forward_hybrid(self, x: torch.Tensor) -> HybridFeatures:
        """Every path's FPN outputs, each {"p2": (N, C, H/4, W/4), ..., "p6": ...}."""
        return self.engine.forward_hybrid(x).map(
            lambda f: super(HybridFPN, self).forward(self.bottom_up.as_dict(f)))


def transfer_settings(cfg: CfgNode) -> TransferSettings:
    """``MODEL.HYBRIDKT``'s transfer mode, balance and loss options, checked.

    Every registered mode's options are YAML keys (``TransferMode.yaml_options``). yacs always
    holds a value for each: the selected mode reads its own, and a key of another mode changed
    from its default is refused (it would be ignored), as FIXED_ALPHA outside BALANCE "fixed".
    """
    hk = cfg.MODEL.HYBRIDKT
    if hk.BALANCE not in CONFIG_BALANCE_MODES:
        raise ValueError(
            f"MODEL.HYBRIDKT.BALANCE is {hk.BALANCE!r}; use one of {CONFIG_BALANCE_MODES} "
            "(train without a teacher with MODEL.HYBRIDKT.TRANSFER 'none')")
    selected = transfer_mode(hk.TRANSFER, "MODEL.HYBRIDKT.TRANSFER")
    options = {}
    for name in transfer_mode_names():
        for option in transfer_mode(name).yaml_options:
            value = hk[option.key]
            if name != selected.name and value != option.default:
                raise ValueError(
                    f"MODEL.HYBRIDKT.{option.key} is {value!r}, an option of TRANSFER "
                    f"{name!r}, but TRANSFER is {selected.name!r}: it would be ignored. Set "
                    f"MODEL.HYBRIDKT.TRANSFER {name!r} or drop the key.")
            if name == selected.name and not (option.empty_is_default and value == []):
                options[option.option] = list(value) if isinstance(value, tuple) else value
    balance = dict(mode=hk.BALANCE)
    sampling = check_teacher_sampling(hk.TEACHER_SAMPLING)
    if sampling != "all":  # the default stays out: a one-teacher balance is what it was
        balance["teachers"] = sampling
    # Read (and checked) before anything is built; a mode without a teacher reads none.
    count = len(teacher_entries(cfg)) if selected.needs_teacher else 1
    # FIXED_ALPHA always has a value in a yacs config: pass it where it weighs the paths, and
    # where it was changed from its default (the core then refuses a value it would ignore).
    if (hk.BALANCE == "fixed" and selected.hybrid_paths) or hk.FIXED_ALPHA != DEFAULT_FIXED_ALPHA:
        balance["fixed_alpha"] = hk.FIXED_ALPHA
    return TransferSettings.check(selected.name, balance, {selected.name: options},
                                  where="MODEL.HYBRIDKT.TRANSFER", owner="MODEL.HYBRIDKT",
                                  teacher_count=count)


def build_hybrid_engine(cfg: CfgNode, student: StagedBackbone, out_features: Sequence[str],
                        mode: TransferMode) -> HybridForward:
    """The core engine for ``mode`` (no teacher at all for a mode without one)."""
    hk = cfg.MODEL.HYBRIDKT
    names = [s.name for s in student.stage_specs]
    missing = [f for f in out_features if f not in names]
    if missing:
        raise ValueError(f"the consumer of the bottom-up reads {list(out_features)} "
                         f"(MODEL.FPN.IN_FEATURES or MODEL.RESNETS.OUT_FEATURES), but {missing} "
                         f"are not stages of the student bottom-up; its stages are {names}")
    out_indices = [names.index(f) for f in out_features]
    if not isinstance(hk.RECOMPUTE_TEACHER, bool):
        raise ValueError(f"MODEL.HYBRIDKT.RECOMPUTE_TEACHER must be True or False, got "
                         f"{hk.RECOMPUTE_TEACHER!r}")
    teacher_precision = _teacher_precision(hk.TEACHER_PRECISION)  # before the teacher is built
    teacher, names, teacher_input = None, None, None
    if mode.needs_teacher:
        entries = teacher_entries(cfg)
        teachers = [_matched_teacher(student, build_teacher(cfg, e), e, entries)
                    for e in entries]
        # One teacher (either form) is the engine, layout and logs of the one-teacher keys.
        teacher = teachers[0] if len(teachers) == 1 else teachers
        names = None if len(teachers) == 1 else [e.name for e in entries]
        teacher_input = teacher_input_conventions(cfg)
    switch_points = list(hk.SWITCH_POINTS) or None
    return HybridForward(student, teacher, switch_points=switch_points, out_indices=out_indices,
                         student_input=student_input_convention(cfg),
                         teacher_input=teacher_input, teacher_names=names,
                         hybrid_paths=mode.hybrid_paths,
                         recompute_teacher=hk.RECOMPUTE_TEACHER,
                         teacher_precision=teacher_precision)


def _matched_teacher(student: StagedBackbone, teacher: StagedBackbone, entry: TeacherEntry,
                     entries: list[TeacherEntry]) -> StagedBackbone:
    """``match_teacher_stages`` for one of the config's teachers, naming it among the others.

    Every teacher pairs with the student's stages on its own (the student keeps its stages:
    the FPN reads them by name), so one teacher that cannot pair is named with the others.
    """
    try:
        return match_teacher_stages(student, teacher)
    except StageMismatchError as err:
        if len(entries) == 1:
            raise
        others = [e.label() for e in entries if e is not entry]
        # match_teacher_stages names the one-teacher key: name this teacher's.
        why = str(err).rstrip(".").replace("MODEL.HYBRIDKT.TEACHER.", f"{entry.where}.")
        raise StageMismatchError(
            f"{entry.label()}: {why}. Each teacher pairs with the student's stages on its own, "
            f"and {', '.join(others)} pair(s) with these same student stages: replace "
            f"{entry.where} with a teacher that has a stage at every student scale, or drop it "
            "from MODEL.HYBRIDKT.TEACHERS.") from None


def build_hybrid_bottom_up(cfg: CfgNode, input_shape: ShapeSpec,
                           out_features: Sequence[str]) -> HybridBottomUp:
    """The student bottom-up of ``MODEL.HYBRIDKT.STUDENT_BOTTOM_UP`` wrapped with the teacher."""
    hk = cfg.MODEL.HYBRIDKT
    name = hk.STUDENT_BOTTOM_UP
    if name not in BACKBONE_REGISTRY or "fpn" in name:
        raise ValueError(
            f"MODEL.HYBRIDKT.STUDENT_BOTTOM_UP {name!r} must be a registered bottom-up builder "
            "(no FPN: the FPN is added by the hybrid builder), e.g. build_resnet_backbone or "
            "build_mobilenet_v1_backbone"
        )
    settings = transfer_settings(cfg)  # before the teacher is built
    bottom_up = BACKBONE_REGISTRY.get(name)(cfg, input_shape)
    engine = build_hybrid_engine(cfg, split_bottom_up(bottom_up), out_features, settings.mode)
    return HybridBottomUp(engine, out_features, settings,
                          teacher_input_conventions(cfg) if settings.mode.needs_teacher else None)


def _fpn(cfg: CfgNode, bottom_up: HybridBottomUp, top_block) -> HybridFPN:
    return HybridFPN(bottom_up=bottom_up, in_features=list(cfg.MODEL.FPN.IN_FEATURES),
                     out_channels=cfg.MODEL.FPN.OUT_CHANNELS, norm=cfg.MODEL.FPN.NORM,
                     top_block=top_block, fuse_type=cfg.MODEL.FPN.FUSE_TYPE)


@BACKBONE_REGISTRY.register()
def build_hybridkt_fpn_backbone(cfg: CfgNode, input_shape: ShapeSpec) -> HybridFPN:
    """``build_resnet_fpn_backbone`` with the hybrid bottom-up: R-CNN (Faster, Mask, Cascade,
    Keypoint), Panoptic FPN and SemanticSegmentor configs.

    Set ``MODEL.BACKBONE.NAME: build_hybridkt_fpn_backbone`` and name the student's bottom-up
    builder in ``MODEL.HYBRIDKT.STUDENT_BOTTOM_UP``; everything else stays the config's.
    """
    in_features = list(cfg.MODEL.FPN.IN_FEATURES)
    return _fpn(cfg, build_hybrid_bottom_up(cfg, input_shape, in_features), LastLevelMaxPool())


@BACKBONE_REGISTRY.register()
def build_hybridkt_retinanet_fpn_backbone(cfg: CfgNode, input_shape: ShapeSpec) -> HybridFPN:
    """``build_retinanet_resnet_fpn_backbone`` with the hybrid bottom-up: P3-P7 (P6/P7 from
    the last student stage, as detectron2 computes them from res5)."""
    in_features = list(cfg.MODEL.FPN.IN_FEATURES)
    bottom_up = build_hybrid_bottom_up(cfg, input_shape, in_features)
    last = bottom_up.output_shape()[in_features[-1]].channels
    return _fpn(cfg, bottom_up, LastLevelP6P7(last, cfg.MODEL.FPN.OUT_CHANNELS))


@BACKBONE_REGISTRY.register()
def build_hybridkt_backbone(cfg: CfgNode, input_shape: ShapeSpec) -> HybridBottomUp:
    """The hybrid bottom-up alone, for configs without FPN: C4 (``MODEL.RESNETS.OUT_FEATURES``
    ['res4'], res5 in ``Res5ROIHeads``); three stages switch, stem+res2 | res3 | res4."""
    return build_hybrid_bottom_up(cfg, input_shape, list(cfg.MODEL.RESNETS.OUT_FEATURES))


def _teacher_precision(value: object) -> str | None:
    """``MODEL.HYBRIDKT.TEACHER_PRECISION``: "" (yacs has no None) is the step's own."""
    if value == "":
        return None
    check_teacher_precision(value, "MODEL.HYBRIDKT.TEACHER_PRECISION", '""')
    return value
