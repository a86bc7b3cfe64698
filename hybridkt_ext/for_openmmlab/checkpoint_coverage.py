"""Refuses to test a checkpoint that does not hold the model's weights.

mmengine loads a test checkpoint with ``strict=False``: keys the model has but the file lacks
keep their random initialisation, and the run reports an mIoU of a random network with one
"missing keys" log line as the only sign. Testing asks for every weight.
"""
from __future__ import annotations

import os

from mmengine.model import is_model_wrapper
from torch import nn

from hybridkt_ext.core import CheckpointMismatchError, read_checkpoint_file

from .student_export import HYBRID_STUDENT_PREFIX


def check_checkpoint_covers(model: nn.Module, checkpoint: str | os.PathLike,
                            trust: bool = False) -> None:
    """Raises unless ``checkpoint`` holds a tensor for every key of ``model``'s state dict.

    Raises:
        CheckpointMismatchError: keys are missing (named, with the config to use when the file
            is a hybrid training checkpoint tested with a plain config).
        CheckpointFileError: the file cannot be read.
    """
    if is_model_wrapper(model):
        model = model.module
    saved = read_checkpoint_file(checkpoint, trust=trust)
    state = saved.get("state_dict", saved) if isinstance(saved, dict) else {}
    missing = sorted(set(model.state_dict()) - set(state))
    if not missing:
        return
    if any(k.startswith(HYBRID_STUDENT_PREFIX) for k in state):
        raise CheckpointMismatchError(
            f"{checkpoint} is a hybrid training checkpoint (its student is under "
            f"{HYBRID_STUDENT_PREFIX}*), and this config's model is not hybrid: test it with "
            "the hybrid config it was trained with, or export its student first "
            "(tools/export_seg_student.py CONFIG CHECKPOINT student.pth).")
    raise CheckpointMismatchError(
        f"{checkpoint} lacks {len(missing)} of the model's {len(model.state_dict())} weights "
        f"({', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}): testing would "
        "report a partly random network. Give the checkpoint trained with this config.")
