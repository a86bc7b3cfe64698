"""``HybridBackbone``: an mmseg backbone that wraps the student and a frozen teacher.

``forward`` is the plain student backbone's forward (same tuple of features), so inference,
validation and export are plain mmseg. ``HybridEncoderDecoder.loss`` calls
``forward_hybrid`` (three paths) or ``forward_with_teacher`` (FitNet/AT) instead.

State dict layout: ``engine.student.model.*`` is the plain student backbone's state dict,
``engine.teacher.model.*`` the teacher's, ``engine.to_teacher.*``/``engine.to_student.*`` the
adapters and ``transfer_loss.*`` FitNet's regressors; export keeps only the first.
"""
from __future__ import annotations

import difflib
from typing import Sequence

import torch
from mmengine.model import BaseModule
from mmseg.registry import MODELS
from torch import nn

from hybridkt_ext.core import (AttentionTransferLoss, FitNetLoss, HybridFeatures, HybridForward,
                               InputConvention, StagedBackbone, StageMismatchError,
                               aligned_stage_groups, feature_map, merge_stages)

from .backbone_stages import mmseg_backbone_stages, refuse_if_not_a_chain
from .teacher_builder import build_teacher

TRANSFER_MODES = ("hybrid", "none", "fitnet", "at")
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
        student_input: the convention of the images the student receives; the
            HybridEncoderDecoder fills it from its data_preprocessor.
        fitnet: kwargs of core.FitNetLoss (stages, weight).
        at: kwargs of core.AttentionTransferLoss (stages, beta, p).
        checkpoint_teacher: recompute the teacher stages that run with autograd during
            backward instead of keeping their activations (less memory, one more teacher
            forward; identical losses and gradients).
        init_cfg: must be None: the student's own config carries its init.
    """

    def __init__(self, student: dict, teacher: dict | None = None, transfer: str = "hybrid",
                 switch_points: Sequence[int] | None = None, stage_groups: dict | None = None,
                 student_input: dict | None = None, fitnet: dict | None = None,
                 at: dict | None = None, checkpoint_teacher: bool = False,
                 init_cfg: dict | None = None) -> None:
        super().__init__(init_cfg=None)
        if init_cfg is not None:
            raise ValueError("HybridBackbone: put init_cfg/pretrained into `student` (and "
                             "`teacher.checkpoint`), not on HybridBackbone itself.")
        if not isinstance(checkpoint_teacher, bool):
            raise ValueError("HybridBackbone: checkpoint_teacher must be True or False, got "
                             f"{checkpoint_teacher!r}.")
        if transfer not in TRANSFER_MODES:
            raise ValueError(f"HybridBackbone: transfer={transfer!r} must be one of "
                             f"{TRANSFER_MODES}.")
        if not isinstance(student, dict) or "type" not in student:
            raise ValueError("HybridBackbone: `student` must be the original backbone dict "
                             f"with a 'type', got {student!r}.")
        if transfer != "none" and teacher is None:
            raise ValueError(f"HybridBackbone: transfer={transfer!r} needs a `teacher` spec; "
                             "use transfer='none' to train the student alone.")
        kind = student["type"]
        refuse_if_not_a_chain(kind)  # before building: VPD, say, fails inside mmseg otherwise
        if isinstance(kind, str) and MODELS.get(kind) is None:
            close = difflib.get_close_matches(kind, list(MODELS.module_dict), n=3)
            hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
            raise ValueError(f"HybridBackbone: student.type={kind!r} is not a registered mmseg "
                             f"backbone.{hint} Custom backbones must be imported first "
                             "(custom_imports).")
        self.transfer = transfer
        plain = MODELS.build(student)
        # The stage producing each feature the plain student returns, in its order.
        staged, self.out_indices = mmseg_backbone_stages(plain)
        convention = InputConvention(**dict(student_input)) if student_input else None
        if transfer == "none":
            self.engine = HybridForward(staged, out_indices=self.out_indices)
            return
        teacher_staged, teacher_input = build_teacher(teacher)
        staged, teacher_staged, out_indices = _pair_stages(staged, teacher_staged,
                                                           self.out_indices, stage_groups)
        self.engine = HybridForward(
            staged, teacher_staged, switch_points=switch_points, out_indices=out_indices,
            student_input=convention, teacher_input=teacher_input,
            hybrid_paths=transfer == "hybrid", checkpoint_teacher=checkpoint_teacher)
        s_ch = [s.channels for s in staged.stage_specs]
        t_ch = [s.channels for s in teacher_staged.stage_specs]
        if transfer == "fitnet":
            self.transfer_loss = FitNetLoss(s_ch, t_ch, **dict(fitnet or {}))
        elif transfer == "at":
            self.transfer_loss = AttentionTransferLoss(**dict(at or {}))

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

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Exactly the plain student backbone: (N, 3, H, W) -> its features."""
        return self.student(x)

    def forward_hybrid(self, x: torch.Tensor) -> HybridFeatures:
        """The three paths' features at the student's out_indices (student channel counts)."""
        return self.engine.forward_hybrid(x)

    def forward_with_teacher(
            self, x: torch.Tensor) -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
        """Student head features and the FitNet/AT transfer loss for one batch."""
        student_out, teacher_out = self.engine.forward_with_teacher(x)
        feats = tuple(self.engine.head_features(student_out))
        return feats, self.transfer_loss([feature_map(s) for s in student_out], teacher_out)


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
