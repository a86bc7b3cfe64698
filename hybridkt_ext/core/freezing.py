"""Freezing the teacher.

The teacher is frozen because its weights *are* the knowledge being transferred: the paper
keeps "all sub-networks from the teacher network ... frozen and not updated by
back-propagation, to preserve the feature extraction knowledge". Frozen means three things:
no parameter requires grad (backward then computes only input gradients through it), every
module stays in eval mode even under ``model.train()`` (BatchNorm uses and keeps its running
statistics; dropout is off), and nothing else writes to its buffers.
"""
from __future__ import annotations

from torch import nn

from .errors import HybridKTError


class TeacherNotFrozenError(HybridKTError, RuntimeError):
    """The teacher has trainable parameters or modules in training mode."""


def freeze_teacher(teacher: nn.Module) -> nn.Module:
    """Sets ``requires_grad=False`` on every parameter and puts every module in eval mode."""
    for p in teacher.parameters():
        p.requires_grad_(False)
    teacher.eval()
    return teacher


def assert_teacher_frozen(teacher: nn.Module, name: str = "teacher") -> None:
    """Raises ``TeacherNotFrozenError`` listing what is trainable or in training mode."""
    trainable = [n for n, p in teacher.named_parameters() if p.requires_grad]
    training = [n or "<root>" for n, m in teacher.named_modules() if m.training]
    if trainable or training:
        parts = []
        if trainable:
            parts.append(f"{len(trainable)} trainable parameter(s), e.g. {trainable[:3]}")
        if training:
            parts.append(f"{len(training)} module(s) in training mode, e.g. {training[:3]}")
        raise TeacherNotFrozenError(
            f"the {name} must be frozen but has " + " and ".join(parts) + ". Something "
            "re-enabled gradients or called .train() on it directly (e.g. a custom "
            "init_weights or an optimizer wrapper); build it through HybridForward, which "
            "freezes it, and do not unfreeze it afterwards."
        )
