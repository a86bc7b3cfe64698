"""A reference hybrid forward: three independent forwards, nothing shared.

It is what a straightforward implementation does: every path starts from the image and S1
runs twice. The engine must give the same losses with fewer FLOPs; tests and
``tools/benchmark.py`` compare the two. Not for training.
"""
from __future__ import annotations

import torch

from hybridkt_ext.core.hybrid_forward import HybridFeatures, HybridForward
from hybridkt_ext.core.paths import STUDENT, TEACHER

StageSizes = tuple[list[tuple[int, int]], list[tuple[int, int]]]


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


def naive_hybrid_forward(engine: HybridForward, x: torch.Tensor,
                         sizes: StageSizes) -> HybridFeatures:
    """Runs each path of ``engine`` from scratch; returns features like ``forward_hybrid``.

    Student stages of the hybrid paths do not update running statistics (the engine's rule),
    so both leave identical model state. Whether the teacher's weights get gradients is the
    caller's choice (``requires_grad``): a naive implementation often leaves them on and only
    keeps them out of the optimiser.
    """
    teacher = engine._require_teacher()
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
