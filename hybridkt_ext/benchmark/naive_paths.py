"""A reference hybrid forward: three independent forwards, nothing shared.

It is what a straightforward implementation does: every path starts from the image, S1
runs twice, and the teacher is a plain copy whose weights still require grad (kept out of the
optimiser only), so backward computes its weight gradients too. The engine must give the same
losses with fewer FLOPs; tests and ``tools/benchmark.py`` compare the two. Not for training.
"""
from __future__ import annotations

import copy

import torch

from hybridkt_ext.core.hybrid_forward import HybridFeatures, HybridForward
from hybridkt_ext.core.paths import STUDENT, TEACHER
from hybridkt_ext.core.stages import StagedBackbone

StageSizes = tuple[list[tuple[int, int]], list[tuple[int, int]]]


def naive_teacher(engine: HybridForward) -> StagedBackbone:
    """A copy of ``engine``'s teacher (same weights) whose parameters require grad.

    It lives outside the engine, whose per-step guard would freeze it again: a naive
    implementation keeps the teacher's weights out of the optimiser and nothing more. Eval
    mode, like the engine's teacher, so both give the same features.
    """
    teacher = copy.deepcopy(engine._require_teacher()).eval()
    for p in teacher.parameters():
        p.requires_grad_(True)
    return teacher


def native_stage_sizes(engine: HybridForward, x: torch.Tensor) -> StageSizes:
    """Output sizes of every student and teacher stage for inputs shaped like ``x``.

    The naive reference needs them to resize adapter outputs; any implementation can cache
    them per input shape, so comparisons compute them once, outside what they measure.
    """
    teacher = engine._require_teacher()
    with torch.no_grad():
        student_sizes = [tuple(f.shape[-2:]) for f in engine.student(x)]
        teacher_sizes = [tuple(f.shape[-2:]) for f in teacher(engine.teacher_input(x))]
    return student_sizes, teacher_sizes


def naive_hybrid_forward(engine: HybridForward, teacher: StagedBackbone, x: torch.Tensor,
                         sizes: StageSizes) -> HybridFeatures:
    """Runs each path of ``engine`` from scratch with ``teacher``; features like
    ``forward_hybrid``'s.

    Student stages of the hybrid paths do not update running statistics (the engine's rule),
    so both leave identical model state. ``teacher`` is used as given: the engine's guard is
    not applied to it, so ``naive_teacher(engine)`` keeps its weights' gradients.

    Args:
        engine: gives the student, the adapters, the path plan and the teacher's input.
        teacher: the teacher the paths run (``naive_teacher(engine)`` or ``engine.teacher``).
        x: (N, 3, H, W) images in the student's convention.
        sizes: ``native_stage_sizes(engine, x)``.
    """
    student_sizes, teacher_sizes = sizes
    teacher_image = engine.teacher_input(x)
    per_path = []
    for name, plan in engine.plan.items():
        h = x if plan[0] == STUDENT else teacher_image
        feats = []
        for i, net in enumerate(plan):
            if i > 0 and plan[i - 1] != net:
                prev = str(i - 1)
                h = (engine.to_student[prev](h, student_sizes[i - 1]) if net == STUDENT
                     else engine.to_teacher[prev](h, teacher_sizes[i - 1]))
            if net == TEACHER:
                h = teacher.stage(i)(h)
            elif name == "student":
                h = engine.student.stage(i)(h)
            else:
                with engine._stats_guard.frozen():
                    h = engine.student.stage(i)(h)
            if i in engine.out_indices:
                feats.append(h if net == STUDENT
                             else engine.to_student[str(i)](h, student_sizes[i]))
        per_path.append(feats)
    return HybridFeatures(*per_path)
