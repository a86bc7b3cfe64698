"""Checks shared by the evaluator and the CityPersons readers: boxes the benchmark can score.

A box is ``[x1, y1, w, h]`` with finite coordinates and ``w, h >= 0``. Zero sizes pass: the
official script scores them (such a box overlaps nothing), and the release itself has
all-zero visible boxes (people groups). Everything else (NaN, inf, negative sizes) gives
numbers without meaning, so it is refused with ``InvalidAnnotationError``, whose one-line
message names the file or image, the row, and what a valid row is.
"""
from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from hybridkt_ext.core.errors import HybridKTError

__all__ = ["InvalidAnnotationError", "box_problem", "is_number", "is_number_row"]


class InvalidAnnotationError(HybridKTError, ValueError):
    """Ground truth or detections the evaluator cannot score as given, or an annotation file
    without a field it needs (the message names the image and the row)."""


def is_number(value: Any) -> bool:
    """True for an int or float (numpy's included); False for bool, None, strings, lists.

    numpy would convert ``"0.9"`` and ``None`` to floats (0.9, NaN) without a word, and a
    JSON ``true`` is no score either, so values are checked before any conversion.
    """
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def is_number_row(value: Any, length: int) -> bool:
    """True for a list, tuple or 1-D array of exactly ``length`` numbers (see ``is_number``)."""
    if isinstance(value, np.ndarray):
        return value.ndim == 1 and len(value) == length and value.dtype.kind in "iuf"
    return (isinstance(value, (list, tuple)) and len(value) == length
            and all(map(is_number, value)))


def box_problem(boxes: np.ndarray) -> tuple[int, str] | None:
    """The first row of (N, 4) float boxes ``[x1, y1, w, h]`` that cannot be scored, and why.

    Args:
        boxes: (N, 4) float array.

    Returns:
        ``(row, problem)`` for the first bad row, None when every row is a valid box.
    """
    nonfinite = ~np.isfinite(boxes).all(axis=1)
    negative = (boxes[:, 2:] < 0).any(axis=1)  # NaN compares False: those are nonfinite
    bad = np.flatnonzero(nonfinite | negative)
    if not bad.size:
        return None
    row = int(bad[0])
    problem = "a NaN or infinite coordinate" if nonfinite[row] else "a negative width or height"
    return row, f"{problem} in {boxes[row].tolist()}"
