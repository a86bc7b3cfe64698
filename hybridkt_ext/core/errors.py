"""The one base class of every error this project raises on purpose.

Tools catch ``HybridKTError`` and print its message in one line: each subclass's message
already names the problem and the fix, so a traceback through the framework adds nothing.
Subclasses keep their historical builtin base too (``ValueError``, ``RuntimeError``, ...), so
code that caught those keeps working.
"""
from __future__ import annotations


class HybridKTError(Exception):
    """Base of every error hybridkt_ext raises about the user's input, files or training."""


class UnsupportedBackboneError(HybridKTError, TypeError):
    """A backbone hybrid forward cannot split into a chain of stages (the message says why)."""


class TeacherMismatchError(HybridKTError, RuntimeError):
    """The teacher built from the config is not the one a resumed checkpoint was trained with."""


class HybridTrainingError(HybridKTError, RuntimeError):
    """A hybrid backbone is trained outside its transfer step (the wiring is missing)."""


class CheckpointMismatchError(HybridKTError, RuntimeError):
    """A checkpoint to resume or test does not fit the model built from the config."""
