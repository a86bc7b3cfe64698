"""``HybridBackbone``: an mmseg backbone that wraps the student and a frozen teacher.

``forward`` is the plain student backbone's forward (same features), so inference, validation
and export are plain mmseg. During a training step (``core.TransferStep``, installed on the
segmentor's ``loss`` by ``HybridKTHook``) it returns each path's features in turn, so any
segmentor's own heads train every path.

State dict layout: ``engine.student.model.*`` is the plain student backbone's state dict,
``engine.teacher.model.*`` the teacher's, ``engine.to_teacher.*``/``engine.to_student.*`` the
adapters and ``transfer_loss.*`` FitNet's regressors; export keeps only the first.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch
from mmengine.model import BaseModule
from mmseg.registry import MODELS
from torch import nn

from hybridkt_ext.core import (HybridFeatures, HybridForward, HybridTrainingError,
                               InputConvention, StagedBackbone, StageMismatchError,
                               TeacherInputTransform, aligned_stage_groups, merge_stages)
from hybridkt_ext.core.closest_names import did_you_mean, keyword_names, refuse_unknown_keys
from hybridkt_ext.for_openmmlab.backbone_source import BackboneSource
from hybridkt_ext.core.transfer_step import (TransferStep, build_balancer, build_transfer_loss,
                                             check_transfer_mode)

from .backbone_stages import mmseg_source
from .teacher_builder import build_teacher

STUDENT_PREFIX = "engine.student.model."


@MODELS.register_module()
class HybridBackbone(BaseModule):
    """Student backbone + frozen teacher + adapters, for mmseg segmentors.

    Args:
        student: the original backbone config: any chain-structured mmseg backbone
            (``backbone_stages.supported_types()``), e.g. ``{{_base_.model.backbone}}``.
        teacher: the teacher spec (see ``teacher_builder``); None only with transfer='none'.
        transfer: 'hybrid' (the paper), 'none' (plain student), 'fitnet' or 'at' baselines.
        switch_points: stage indices before which hybrid paths switch (default: all).
        stage_groups: optional ``dict(student=[[0, 1], [2], ...], teacher=[...])`` merging
            stages when the two networks' stage counts differ (default: core.aligned_stage_groups).
        student_input: the convention of the images the student receives; by default the
            segmentor's data preprocessor's (see ``adopt_student_input``).
        balance: ``dict(mode='dynamic'|'fixed', fixed_alpha=1.0, sync_across_ranks=True)``,
            how the hybrid paths' losses combine (core.LossBalancer's arguments).
        fitnet: kwargs of core.FitNetLoss (stages, weight).
        at: kwargs of core.AttentionTransferLoss (stages, beta, p).
        checkpoint_teacher: recompute the teacher stages that run with autograd during
            backward instead of keeping their activations (less memory, one more teacher
            forward; identical losses and gradients).
        init_cfg: must be None: the student's own config carries its init.
    """

    @staticmethod
    def backbone_source() -> BackboneSource:
        """Builds the student and unscoped teacher types; the mmdet adapter returns its own."""
        return mmseg_source()

    def __init__(self, student: dict, teacher: dict | None = None, transfer: str = "hybrid",
                 switch_points: Sequence[int] | None = None, stage_groups: dict | None = None,
                 student_input: dict | None = None, fitnet: dict | None = None,
                 at: dict | None = None, checkpoint_teacher: bool = False,
                 balance: dict | None = None, init_cfg: dict | None = None,
                 **unknown: object) -> None:
        super().__init__(init_cfg=None)
        # A misspelled `swtich_points` would otherwise be Python's TypeError at the end of the
        # Runner's config dump, or, once accepted, an option silently not applied.
        refuse_unknown_keys(unknown, hybrid_backbone_keys(), "HybridBackbone")
        if init_cfg is not None:
            raise ValueError("HybridBackbone: put init_cfg/pretrained into `student` (and "
                             "`teacher.checkpoint`), not on HybridBackbone itself.")
        if not isinstance(checkpoint_teacher, bool):
            raise ValueError("HybridBackbone: checkpoint_teacher must be True or False, got "
                             f"{checkpoint_teacher!r}.")
        check_transfer_mode(transfer, "HybridBackbone: transfer")
        balancer = build_balancer(transfer, balance, "HybridBackbone: balance")
        if not isinstance(student, dict) or "type" not in student:
            raise ValueError("HybridBackbone: `student` must be the original backbone dict "
                             f"with a 'type', got {student!r}.")
        if transfer != "none" and teacher is None:
            raise ValueError(f"HybridBackbone: transfer={transfer!r} needs a `teacher` spec; "
                             "use transfer='none' to train the student alone.")
        kind, source = student["type"], self.backbone_source()
        # Before building: VPD, say, fails inside mmseg otherwise.
        source.refuse_if_not_a_chain(kind)
        if isinstance(kind, str) and source.registry.get(kind) is None:
            hint = did_you_mean(kind, source.registry.module_dict)
            raise ValueError(f"HybridBackbone: student.type={kind!r} is not a registered "
                             f"{source.framework} backbone.{hint} Custom backbones must be "
                             "imported first (custom_imports).")
        self.transfer = transfer
        plain = source.registry.build(student)
        # The stage producing each feature the plain student returns, in its order.
        staged, self.out_indices = source.stages(plain)
        if student_input:
            refuse_unknown_keys(student_input, keyword_names(InputConvention),
                                "HybridBackbone.student_input")
        convention = InputConvention(**dict(student_input)) if student_input else None
        self._student_input_given = convention is not None
        self.teacher_random_init = False
        if transfer == "none":
            self.engine = HybridForward(staged, out_indices=self.out_indices)
            self.transfer_step = TransferStep(self.engine, transfer, balancer)
            return
        teacher_staged, teacher_input = build_teacher(teacher, source)
        # No checkpoint: a random teacher, allowed for smoke runs only; the hook logs it and
        # every checkpoint's meta records it.
        self.teacher_random_init = isinstance(teacher, dict) and teacher.get("checkpoint") is None
        self._teacher_convention = teacher_input
        staged, teacher_staged, out_indices = _pair_stages(staged, teacher_staged,
                                                           self.out_indices, stage_groups)
        self.engine = HybridForward(
            staged, teacher_staged, switch_points=switch_points, out_indices=out_indices,
            student_input=convention, teacher_input=teacher_input,
            hybrid_paths=transfer == "hybrid", checkpoint_teacher=checkpoint_teacher)
        # Registered here (state dict: backbone.transfer_loss.*): FitNet's regressors train.
        self.transfer_loss = build_transfer_loss(transfer, self.engine, fitnet, at)
        self.transfer_step = TransferStep(self.engine, transfer, balancer, self.transfer_loss)

    @property
    def student(self) -> nn.Module:
        """The plain mmseg student backbone."""
        return self.engine.student.model

    @property
    def teacher(self) -> StagedBackbone | None:
        return self.engine.teacher

    def init_weights(self) -> None:
        # Only the student is initialised: the teacher holds its checkpoint (mmengine's
        # recursive init would otherwise re-initialise it), adapters keep torch's default.
        if hasattr(self.student, "init_weights"):
            self.student.init_weights()
        self._is_init = True

    def adopt_student_input(self, convention: InputConvention) -> None:
        """The segmentor's data preprocessor convention, unless ``student_input`` was given.

        The teacher input transform maps what the student receives to what the teacher was
        trained on; only the segmentor knows the former.
        """
        if self._student_input_given or self.teacher is None:
            return
        old = self.engine.teacher_input
        teacher = self._teacher_convention or convention
        self.engine.teacher_input = TeacherInputTransform(convention, teacher).to(old.scale.device)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(N, 3, H, W) -> the features the plain student backbone returns.

        Outside a training step this *is* the plain student backbone (inference, validation,
        export: zero overhead). During ``TransferStep.run`` it returns the active path's
        features, in student channels, so the segmentor's own neck and heads compute each
        path's loss.

        Raises:
            HybridTrainingError: a training forward with a teacher that does not run through
                the transfer step (it would train the student alone, silently).
        """
        if self.transfer_step.running:
            return tuple(self.transfer_step.features(x))
        if self.training and torch.is_grad_enabled() and self.transfer != "none":
            raise HybridTrainingError(
                f"HybridBackbone(transfer={self.transfer!r}) was called for training outside "
                "its transfer step, which would train the student alone. Add "
                "custom_hooks=[dict(type='HybridKTHook')] to the config (it wraps the "
                "segmentor's loss), or call hybridkt_ext.for_mmseg.install_transfer_step(model).")
        return self.student(x)

    def forward_hybrid(self, x: torch.Tensor) -> HybridFeatures:
        """The three paths' features at the student's out_indices (student channel counts)."""
        return self.engine.forward_hybrid(x)


def hybrid_backbone_keys() -> list[str]:
    """The keys a ``HybridBackbone`` config dict may have (its constructor's, and ``type``)."""
    return keyword_names(HybridBackbone.__init__) + ["type"]


def check_hybrid_backbone_keys(config: Any) -> None:
    """Refuses unknown keys of every ``HybridBackbone`` dict in a config, before building.

    The tools call it before the Runner logs the environment and the whole config, so the one
    line that matters is not the last of hundreds.
    """
    if isinstance(config, Mapping):
        if config.get("type") == "HybridBackbone":
            refuse_unknown_keys(config, hybrid_backbone_keys(), "HybridBackbone")
        for value in config.values():
            check_hybrid_backbone_keys(value)
    elif isinstance(config, (list, tuple)):
        for value in config:
            check_hybrid_backbone_keys(value)


def _pair_stages(student: StagedBackbone, teacher: StagedBackbone, out_indices: Sequence[int],
                 stage_groups: dict | None) -> tuple[StagedBackbone, StagedBackbone, list[int]]:
    """Merges stages so the counts match; maps the student's out_indices onto merged stages."""
    n_student = student.num_stages
    if stage_groups is not None:
        unknown = set(stage_groups) - {"student", "teacher"}
        if unknown:
            raise ValueError(f"stage_groups keys must be 'student'/'teacher', got {unknown}.")
        groups = stage_groups.get("student") or [[i] for i in range(n_student)]
        student = merge_stages(student, groups)
        teacher = merge_stages(teacher, stage_groups.get("teacher")
                               or [[i] for i in range(teacher.num_stages)])
    else:
        groups, teacher_groups = aligned_stage_groups(student, teacher)
        student = merge_stages(student, groups)
        teacher = merge_stages(teacher, teacher_groups)
    if student.num_stages != teacher.num_stages:
        raise StageMismatchError(
            f"stage_groups give the student {student.num_stages} stages and the teacher "
            f"{teacher.num_stages}; give both the same number of groups.")
    ends = {g[-1]: k for k, g in enumerate(groups)}
    inside = [i for i in out_indices if i not in ends]
    if inside:
        raise StageMismatchError(
            f"the student's out_indices {tuple(out_indices)} include {inside}, which fall inside "
            f"merged stages {groups}; hybrid paths only produce features where both networks "
            "switch. Pass HybridBackbone(stage_groups=dict(student=..., teacher=...)) so each "
            "out index ends a group.")
    return student, teacher, [ends[i] for i in out_indices]
