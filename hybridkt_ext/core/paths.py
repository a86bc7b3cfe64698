"""Which network runs each stage on each of the three forward paths.

Path 3 (normal): S S S S. Path 1 (student first): S T S T. Path 2 (teacher first): T S T S.
The paper switches at every stage boundary; ``switch_points`` lets a user switch at fewer.
"""
from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Iterable, Sequence

STUDENT = "S"
TEACHER = "T"
HYBRID_PATHS = ("student_first", "teacher_first")


def hybrid_path_name(kind: str, teacher: int) -> str:
    """The name of teacher ``teacher``'s path ``kind`` (one of ``HYBRID_PATHS``): the first
    teacher's paths keep their names, teacher k's are ``'<kind>:<k>'``."""
    return kind if teacher == 0 else f"{kind}:{teacher}"


def split_path_name(name: str) -> tuple[str, int | None]:
    """``'teacher_first:1'`` -> ``('teacher_first', 1)``; ``'student'`` -> ``('student', None)``.

    Raises:
        ValueError: not the name of a path.
    """
    kind, _, index = name.partition(":")
    if kind == "student" and not index:
        return kind, None
    if kind in HYBRID_PATHS and (not index or (index.isdigit() and index != "0")):
        return kind, int(index or 0)
    raise ValueError(f"{name!r} is not a path name: 'student', {HYBRID_PATHS[0]!r}, "
                     f"{HYBRID_PATHS[1]!r}, or '<one of those two>:<k>' for teacher k >= 1.")


@dataclass(frozen=True)
class PathPlan:
    """Per-path network letters, one per stage ("S" student, "T" teacher).

    Attributes:
        student: path 3, the student alone (loss L3).
        student_first: path 1, starts with the student's first stage (loss L1).
        teacher_first: path 2, starts with the teacher's first stage (loss L2).
    """

    student: str
    student_first: str
    teacher_first: str

    def items(self) -> tuple[tuple[str, str], ...]:
        """(path name, plan) pairs in the order the engine evaluates them."""
        return (("student", self.student), ("student_first", self.student_first),
                ("teacher_first", self.teacher_first))


def make_path_plan(num_stages: int, switch_points: Sequence[int] | None = None) -> PathPlan:
    """Builds the three plans.

    Args:
        num_stages: number of (aligned) stages of both networks.
        switch_points: stage indices ``k`` (1 <= k < num_stages) before which the hybrid paths
            change network. ``None`` means every boundary, the paper's default.

    Raises:
        ValueError: if switch_points is not a list of integers, or a point is out of range,
            repeated, or none is given.
    """
    if num_stages < 2:
        raise ValueError(
            f"hybrid forward needs at least 2 stages to switch between, got {num_stages}; "
            "split the backbones before their downsampling layers (see core.splitters)"
        )
    if switch_points is None:
        points = list(range(1, num_stages))
    else:
        given = _stage_indices(switch_points)
        points = sorted(given)
        bad = [p for p in points if not 1 <= p < num_stages]
        if bad:
            raise ValueError(
                f"switch_points {given} has {bad} outside 1..{num_stages - 1}: a "
                f"switch point k switches network before stage k of the {num_stages} stages"
            )
        if len(set(points)) != len(points):
            raise ValueError(f"switch_points {given} repeats an index")
        if not points:
            raise ValueError(
                "switch_points is empty: path 1 would equal the student path. Give at least "
                "one stage index, or leave it unset to switch at every boundary"
            )
    letters = []
    current = STUDENT
    for stage in range(num_stages):
        if stage in points:
            current = TEACHER if current == STUDENT else STUDENT
        letters.append(current)
    student_first = "".join(letters)
    teacher_first = student_first.translate(str.maketrans("ST", "TS"))
    return PathPlan(STUDENT * num_stages, student_first, teacher_first)


def _stage_indices(switch_points: object) -> list[int]:
    # int() would accept 1.7 (as 1), True (as 1) and "2"; a switch point is a stage index, so
    # anything but an integer is a config mistake worth naming.
    if isinstance(switch_points, (str, bytes)) or not isinstance(switch_points, Iterable):
        raise ValueError(
            f"switch_points must be a list of stage indices such as [1, 3], got "
            f"{switch_points!r}; leave it unset (None) to switch at every stage boundary"
        )
    points = list(switch_points)
    wrong = [p for p in points if isinstance(p, bool) or not isinstance(p, numbers.Integral)]
    if wrong:
        raise ValueError(
            f"switch_points {points} holds {wrong}, which are not integer stage indices"
        )
    return [int(p) for p in points]
