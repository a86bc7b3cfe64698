"""What a classification run (``hybridkt-train-cls``) trains and the files it writes.

Known before anything trains, so that the work dir can be checked first
(``hybridkt_ext.core.work_dir_outputs.prepare_work_dir``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from ..plotting import PLOT_NAME
from .experiment import student_files, student_run_name

ALPHA_MODES = ("hybrid", "fixed")
"""The student modes that train the hybrid paths and so log alpha (and get the plot)."""


def teacher_file(work_dir: Path, arch: str) -> Path:
    """The weights a teacher training writes (its log CSV beside it, same stem)."""
    return work_dir / f"teacher_{arch}.pth"


def student_runs(modes: Sequence[str], fixed_alphas: Sequence[float]) -> list[tuple[str, float]]:
    """One ``(mode, alpha)`` per student: mode "fixed" once per alpha (the Fig. 9 sweep), every
    other mode once (its alpha unused, 1.0)."""
    return [(mode, alpha) for mode in modes
            for alpha in (fixed_alphas if mode == "fixed" else [1.0])]


def planned_outputs(work_dir: Path, teacher: str, modes: Sequence[str],
                    fixed_alphas: Sequence[float], trains_teacher: bool,
                    trains_students: bool) -> list[Path]:
    """Every file the run writes into ``work_dir``.

    Args:
        work_dir: the run's folder.
        teacher: the teacher's architecture (names the teacher's files).
        modes: the student modes, in order.
        fixed_alphas: the alphas of mode "fixed".
        trains_teacher: the run trains the teacher (``--demo``, ``--train-teacher``).
        trains_students: the run trains the students (all but ``--train-teacher``).
    """
    files = []
    if trains_teacher:
        weights = teacher_file(work_dir, teacher)
        files += [weights, weights.with_suffix(".csv")]
    if trains_students:
        for mode, alpha in student_runs(modes, fixed_alphas):
            files += student_files(work_dir, student_run_name(mode, alpha))
        if set(ALPHA_MODES) & set(modes):
            files.append(work_dir / PLOT_NAME)
    return files
