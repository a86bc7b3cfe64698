"""The built teacher stands in for its keys when a checkpoint without them is loaded.

Checkpoints leave the teacher out (``teacher_in_checkpoints``): its weights come from the
teacher file when the model is built. Any load of such a checkpoint that does not go through
``HybridKTHook`` (mmseg's ``init_model``, mmdet's ``init_detector``, a plain
``load_checkpoint``, EMAHook's load into its averaged model) would otherwise report every
teacher tensor as a missing key: kilobytes of warnings that bury the student keys that really
are missing, or a failed strict load. A load pre-hook on the teacher fills the keys the
checkpoint lacks with the teacher's own tensors (a no-op copy); keys the checkpoint has are
loaded as before (a checkpoint written without the hook still carries its teacher).
"""
from __future__ import annotations

from torch import nn


def _fill_missing_teacher_keys(teacher: nn.Module, state_dict: dict, prefix: str,
                               *_rest) -> None:
    for key, value in teacher.state_dict().items():
        state_dict.setdefault(prefix + key, value)


def keep_teacher_on_load(teacher: nn.Module) -> None:
    """Registers the fill on ``teacher`` (a module-level function taking the module, so a
    deep copy, as EMAHook makes, fills from its own teacher)."""
    teacher.register_load_state_dict_pre_hook(_fill_missing_teacher_keys)
