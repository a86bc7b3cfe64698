"""Student-only export: a checkpoint and the plain detectron2 config that loads it, no hybridkt.

The plain config is the hybrid one with the plain builder of the student's backbone as
``MODEL.BACKBONE.NAME`` and no ``MODEL.HYBRIDKT``. A ResNet student then needs detectron2 alone.
detectron2 has no MobileNetV1: that config keeps ``MODEL.MOBILENET_V1`` and names
``build_mobilenet_v1_fpn_backbone``, both provided by
``hybridkt_ext.for_detectron2.mobilenet_v1_backbone`` (see ``MOBILENET_V1_LOADING``, which the
written YAML repeats at its top).
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
from detectron2.config import CfgNode
from torch import nn

from ..core import export_student_state_dict, save_atomically, write_text_atomically
from .hooks import unwrap_model
from .transfer_wiring import find_hybrid_bottom_up

# (MODEL.BACKBONE.NAME, MODEL.HYBRIDKT.STUDENT_BOTTOM_UP) -> the builder the plain config names.
PLAIN_BACKBONES = {
    ("build_hybridkt_fpn_backbone", "build_resnet_backbone"): "build_resnet_fpn_backbone",
    ("build_hybridkt_fpn_backbone", "build_mobilenet_v1_backbone"):
        "build_mobilenet_v1_fpn_backbone",  # hybridkt_ext's
    ("build_hybridkt_retinanet_fpn_backbone", "build_resnet_backbone"):
        "build_retinanet_resnet_fpn_backbone",
    ("build_hybridkt_backbone", "build_resnet_backbone"): "build_resnet_backbone",  # C4
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
    """The hybrid model's state dict in the plain student model's key layout.

    The hybrid bottom-up's student (``<where>.engine.student.model.*``) becomes the plain
    bottom-up (``<where>.*``); its teacher, adapters and FitNet regressors are dropped.
    """
    model = unwrap_model(model)
    bottom_up = find_hybrid_bottom_up(model)
    if bottom_up is None:
        raise ValueError(f"{type(model).__name__} has no hybrid bottom-up to export a student of")
    where = next(name for name, m in model.named_modules() if m is bottom_up)
    return export_student_state_dict(model.state_dict(), f"{where}.engine.student.model.",
                                     f"{where}.", (f"{where}.engine.", f"{where}.transfer_loss."))


def plain_student_config(cfg: CfgNode, weights: str | os.PathLike = "") -> CfgNode:
    """The plain detectron2 config of the student of hybrid config ``cfg``.

    Args:
        cfg: the config the hybrid model was built from.
        weights: MODEL.WEIGHTS of the result (the exported checkpoint).

    Raises:
        ValueError: the hybrid backbone and student builder have no known plain builder.
    """
    student = cfg.MODEL.HYBRIDKT.STUDENT_BOTTOM_UP
    key = (cfg.MODEL.BACKBONE.NAME, student)
    if key not in PLAIN_BACKBONES:
        raise ValueError(
            f"MODEL.BACKBONE.NAME {key[0]!r} with MODEL.HYBRIDKT.STUDENT_BOTTOM_UP {student!r} "
            f"has no plain builder to export to; known: {sorted(PLAIN_BACKBONES)}. Export the "
            "checkpoint alone (save_student_checkpoint without cfg) and write the plain "
            "config by hand"
        )
    plain = cfg.clone()
    plain.defrost()
    plain.MODEL.BACKBONE.NAME = PLAIN_BACKBONES[key]
    plain.MODEL.WEIGHTS = str(weights)
    plain.MODEL.pop("HYBRIDKT")
    if student != "build_mobilenet_v1_backbone":
        plain.MODEL.pop("MOBILENET_V1", None)  # keys plain detectron2 does not know
    return plain


def save_student_checkpoint(model: nn.Module, path: str | os.PathLike,
                            overwrite: bool = False, cfg: CfgNode | None = None) -> Path:
    """Writes a live hybrid model's student as ``{"model": student state dict}``, the layout
    DetectionCheckpointer reads. (detectron2 checkpoints hold the whole model, so its tool
    loads one and saves the student; the OpenMMLab adapters export from the file itself:
    ``for_openmmlab.export_student_checkpoint``.)

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
        if plain.MODEL.BACKBONE.NAME == "build_mobilenet_v1_fpn_backbone":
            header += "\n" + MOBILENET_V1_LOADING.format(config=config_path.name)
        comment = "".join(f"# {line}".rstrip() + "\n" for line in header.splitlines())
        write_text_atomically(config_path, comment + plain.dump(), overwrite=True)
    return path
