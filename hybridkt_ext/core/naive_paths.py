"""A reference hybrid forward: three independent forwards, nothing shared.

It is what a straightforward implementation does: every path starts from the image, S1 runs
twice, T1 runs with autograd. The engine must give the same losses with fewer FLOPs; tests
and ``tools/benchmark.py`` compare the two. Not for training.
"""
from __future__ import annotations

import torch

from .hybrid_forward import HybridFeatures, HybridForward
from .paths import STUDENT, TEACHER


def naive_hybrid_forward(engine: HybridForward, x: torch.Tensor) -> HybridFeatures:
    """Runs each path of ``engine`` from scratch; returns features like ``forward_hybrid``.

    Sizes for the adapters come from a separate native pass of each network, as a naive
    implementation would have to do. Student stages of the hybrid paths do not update running
    statistics (same rule as the engine), so both leave identical model state.
    """
    teacher = engine._require_teacher()
    student_sizes = [tuple(f.shape[-2:]) for f in engine.student(x)]
    teacher_image = engine.teacher_input(x)
    teacher_sizes = [tuple(f.shape[-2:]) for f in teacher(teacher_image)]
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
