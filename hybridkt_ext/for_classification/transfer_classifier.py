"""A classifier trained with one of the paper's transfer modes, on the core engine.

Modes: "none" (student alone), "kd", "fitnet", "at", "ft", "ab" (the paper's Table 1
baselines), "cwd" (channel-wise distillation), "hybrid" (dynamic alpha), "hybrid_alternate"
(the student path and one hybrid path per step) and "fixed" (hybrid with a fixed alpha,
Fig. 9). The mimicking baselines take their core loss's defaults except
FitNet's weight, AT's beta and CWD's stage: the penultimate one, since a classifier's last
stage is 1x1 at small inputs (32 px digits), where a spatial softmax is constant. All share
one student, one frozen teacher and one loss function (cross-entropy), so comparisons differ
by the mode alone.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..core import (HybridForward, StagedBackbone, TransferSettings, TransferStep, align_stages,
                    export_student_state_dict, kd_loss)

MODES = ("none", "kd", "fitnet", "at", "ft", "ab", "cwd", "hybrid", "hybrid_alternate",
         "fixed")


class TransferClassifier(nn.Module):
    """Student classifier + optional frozen teacher, with ``training_step`` per mode.

    Args:
        student: the student's stages (its ``model`` is the whole plain classifier).
        student_head: maps the student's last stage output to logits.
        mode: one of ``MODES``.
        teacher: the teacher's stages (its ``model`` is the whole teacher classifier); needed
            by every mode except "none".
        teacher_head: the teacher's own head, needed by "kd".
        fixed_alpha: the weight of L1 + L2 in mode "fixed".
        switch_points: hybrid switch points (default: every shared stage boundary).
        kd_temperature: softmax temperature of "kd".
        fitnet_weight: weight of the FitNet hint loss.
        at_beta: AT's beta (1000 in the AT paper).
    """

    def __init__(self, student: StagedBackbone, student_head: Callable, mode: str = "hybrid",
                 teacher: StagedBackbone | None = None, teacher_head: Callable | None = None,
                 fixed_alpha: float = 1.0, switch_points=None, kd_temperature: float = 4.0,
                 fitnet_weight: float = 1.0, at_beta: float = 1000.0) -> None:
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"mode {mode!r} is not one of {MODES}")
        if mode != "none" and teacher is None:
            raise ValueError(f"mode {mode!r} needs a teacher; use mode 'none' to train alone")
        if mode == "kd" and teacher_head is None:
            raise ValueError("mode 'kd' needs the teacher's classifier head (teacher_head)")
        self.mode = mode
        self.student_head = student_head
        self.teacher_head = teacher_head
        self.kd_temperature = kd_temperature
        if mode == "none":
            teacher = None
        elif teacher is not None:
            student, teacher = align_stages(student, teacher)
        last = student.num_stages - 1
        # Every mode but KD is one of the core's transfer modes: one dispatch for all adapters.
        core_mode = {"fixed": "hybrid", "kd": "none"}.get(mode, mode)
        balance = dict(mode="fixed", fixed_alpha=fixed_alpha) if mode == "fixed" else None
        options = {"fitnet": dict(weight=fitnet_weight), "at": dict(beta=at_beta),
                   "cwd": dict(stages=[last - 1])}
        settings = TransferSettings.check(core_mode, balance, {core_mode: options.get(core_mode)},
                                          teacher is not None, "mode")
        self.engine = HybridForward(student, teacher, switch_points=switch_points,
                                    out_indices=(last,), hybrid_paths=settings.mode.hybrid_paths)
        # Registered (state dict: transfer_loss.*): FitNet's regressors train with the
        # student. The mode is a string (``mode``), as in every adapter; this is its loss.
        self.transfer_loss = settings.mode.loss(self.engine, settings.options)
        self.step = TransferStep(self.engine, core_mode, settings.balancer, self.transfer_loss)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Student logits (N, num_classes): the plain student, no teacher involved."""
        return self.student_head(self.engine(x)[-1])

    def training_step(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor,
                                                                      dict[str, float]]:
        """Returns the loss to back-propagate and detached values to log (``hkt_L3`` is the
        student path's task loss in every mode, a mimicking loss is ``hkt_transfer``)."""
        if self.mode == "kd":
            logits = self(x)
            with torch.no_grad():
                teacher_feats = self.engine.teacher(self.engine.teacher_input(x))
                teacher_logits = self.teacher_head(teacher_feats[-1])
            task = F.cross_entropy(logits, y)
            transfer = kd_loss(logits, teacher_logits, self.kd_temperature)
            return task + transfer, {"hkt_L3": task.item(), "hkt_transfer": transfer.item()}
        # The classifier's own forward, once per path: the stages yield the active path.
        result = self.step.run(
            lambda: {"loss_ce": F.cross_entropy(self.student_head(self.step.features(x)[-1]), y)},
            lambda losses: losses["loss_ce"])
        return result.total, {k: float(v) for k, v in result.log_values.items()}

    def student_state_dict(self) -> dict[str, torch.Tensor]:
        """The plain student classifier's state dict (loads into ``build_classifier(...)``)."""
        return export_student_state_dict(self.state_dict(), "engine.student.model.",
                                         drop_prefixes=("engine.", "transfer_loss."))
