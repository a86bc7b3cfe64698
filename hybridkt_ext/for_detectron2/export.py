"""Student-only export: a checkpoint the plain detectron2 student config loads, no hybridkt.

The plain config is the hybrid one with ``MODEL.META_ARCHITECTURE: GeneralizedRCNN`` and the
FPN builder of the student's bottom-up (``build_resnet_fpn_backbone`` for a ResNet student,
``build_mobilenet_v1_fpn_backbone`` for MobileNetV1, which is registered by this package).
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from ..core import export_student_state_dict, save_atomically
from .hooks import unwrap_model

# Where the hybrid model keeps the student bottom-up, and where the plain model has it.
STUDENT_PREFIX = "backbone.bottom_up.engine.student.model."
PLAIN_PREFIX = "backbone.bottom_up."
# Hybrid-only parts: teacher and adapters (inside the engine), FitNet regressors.
DROP_PREFIXES = ("backbone.bottom_up.engine.", "feature_loss.")


def student_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The hybrid model's state dict in the plain student model's key layout."""
    return export_student_state_dict(unwrap_model(model).state_dict(), STUDENT_PREFIX,
                                     PLAIN_PREFIX, DROP_PREFIXES)


def export_student_checkpoint(model: nn.Module, path: str | os.PathLike,
                              overwrite: bool = False) -> Path:
    """Writes ``{"model": student state dict}``, the layout DetectionCheckpointer reads."""
    return save_atomically({"model": student_state_dict(model)}, path, overwrite=overwrite)
