"""Student-only export: a checkpoint and the plain detectron2 config that loads it, no hybridkt.

The plain config is the hybrid one with ``MODEL.META_ARCHITECTURE: GeneralizedRCNN``, the FPN
builder of the student's bottom-up as ``MODEL.BACKBONE.NAME`` and no ``MODEL.HYBRIDKT``. A
ResNet student then needs detectron2 alone. detectron2 has no MobileNetV1: that config keeps
``MODEL.MOBILENET_V1`` and names ``build_mobilenet_v1_fpn_backbone``, both provided by
``hybridkt_ext.for_detectron2.mobilenet_v1_backbone`` (see ``MOBILENET_V1_LOADING``, which the
written YAML repeats at its top).
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
from detectron2.config import CfgNode
from torch import nn

from ..core import export_student_state_dict, save_atomically
from .hooks import unwrap_model

# Where the hybrid model keeps the student bottom-up, and where the plain model has it.
STUDENT_PREFIX = "backbone.bottom_up.engine.student.model."
PLAIN_PREFIX = "backbone.bottom_up."
# Hybrid-only parts: teacher and adapters (inside the engine), FitNet regressors.
DROP_PREFIXES = ("backbone.bottom_up.engine.", "feature_loss.")
# MODEL.HYBRIDKT.STUDENT_BOTTOM_UP -> the FPN builder a plain GeneralizedRCNN config names.
PLAIN_FPN_BUILDERS = {
    "build_resnet_backbone": "build_resnet_fpn_backbone",  # detectron2's own
    "build_mobilenet_v1_backbone": "build_mobilenet_v1_fpn_backbone",  # hybridkt_ext's
}
# What a user runs to load a MobileNetV1 student's plain config (the written YAML's header).
MOBILENET_V1_LOADING = """\
MobileNetV1 is not part of detectron2. Before merging this file, add its config keys and
register its backbone builder (one import, no hybrid training code runs):
    from detectron2.config import get_cfg
    from hybridkt_ext.for_detectron2.mobilenet_v1_backbone import add_mobilenet_v1_config
    cfg = get_cfg(); add_mobilenet_v1_config(cfg); cfg.merge_from_file("{config}")
Without it detectron2 stops with "KeyError: Non-existent config key: MODEL.MOBILENET_V1..."."""


def student_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The hybrid model's state dict in the plain student model's key layout."""
    return export_student_state_dict(unwrap_model(model).state_dict(), STUDENT_PREFIX,
                                     PLAIN_PREFIX, DROP_PREFIXES)


def plain_student_config(cfg: CfgNode, weights: str | os.PathLike = "") -> CfgNode:
    """The plain detectron2 config of the student of hybrid config ``cfg``.

    Args:
        cfg: the config the hybrid model was built from.
        weights: MODEL.WEIGHTS of the result (the exported checkpoint).

    Raises:
        ValueError: MODEL.HYBRIDKT.STUDENT_BOTTOM_UP has no known plain FPN builder.
    """
    student = cfg.MODEL.HYBRIDKT.STUDENT_BOTTOM_UP
    if student not in PLAIN_FPN_BUILDERS:
        raise ValueError(
            f"MODEL.HYBRIDKT.STUDENT_BOTTOM_UP {student!r} has no plain FPN builder to export "
            f"to; known: {sorted(PLAIN_FPN_BUILDERS)}. Export the checkpoint alone "
            "(export_student_checkpoint without cfg) and write the plain config by hand"
        )
    plain = cfg.clone()
    plain.defrost()
    plain.MODEL.META_ARCHITECTURE = "GeneralizedRCNN"
    plain.MODEL.BACKBONE.NAME = PLAIN_FPN_BUILDERS[student]
    plain.MODEL.WEIGHTS = str(weights)
    plain.MODEL.pop("HYBRIDKT")
    if student != "build_mobilenet_v1_backbone":
        plain.MODEL.pop("MOBILENET_V1", None)  # keys plain detectron2 does not know
    return plain


def export_student_checkpoint(model: nn.Module, path: str | os.PathLike,
                              overwrite: bool = False, cfg: CfgNode | None = None) -> Path:
    """Writes ``{"model": student state dict}``, the layout DetectionCheckpointer reads.

    With ``cfg`` (the hybrid config) it also writes the plain config next to it, ``path`` with
    the suffix ``.yaml``, whose MODEL.WEIGHTS is ``path``. Returns ``path``.
    """
    path = Path(path)
    config_path = path.with_suffix(".yaml")
    if cfg is not None:  # fail before writing anything
        plain = plain_student_config(cfg, weights=path.resolve())
        if config_path.exists() and not overwrite:
            raise FileExistsError(f"{config_path} exists; pass overwrite=True to replace it")
    save_atomically({"model": student_state_dict(model)}, path, overwrite=overwrite)
    if cfg is not None:
        header = f"Plain detectron2 config of the student exported to {path.name} by hybridkt_ext."
        if plain.MODEL.BACKBONE.NAME == PLAIN_FPN_BUILDERS["build_mobilenet_v1_backbone"]:
            header += "\n" + MOBILENET_V1_LOADING.format(config=config_path.name)
        comment = "".join(f"# {line}".rstrip() + "\n" for line in header.splitlines())
        config_path.write_text(comment + plain.dump())
    return path
