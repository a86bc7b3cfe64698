"""A detectron2 teacher named by the config it was trained with: a YAML or a LazyConfig.

``MODEL.HYBRIDKT.TEACHER.CONFIG`` names the config of the detector whose checkpoint is
``TEACHER.WEIGHTS``: a file, or a path inside detectron2's model zoo
(``"COCO-Detection/faster_rcnn_R_50_FPN_3x.yaml"``, ``"new_baselines/...py"``). The teacher is
that config's bottom-up network (depth, dilation, norm and stem as trained), its pixel
convention is that config's (``MODEL.PIXEL_MEAN``/``PIXEL_STD``/``INPUT.FORMAT``, or a
LazyConfig's ``model.pixel_mean``/``pixel_std``/``input_format``), and its weights sit under
``backbone.bottom_up.`` (FPN) or ``backbone.`` (C4) of the checkpoint.
"""
from __future__ import annotations

import os
from pathlib import Path

from detectron2.config import CfgNode, LazyConfig, get_cfg, instantiate
from detectron2.modeling import build_backbone

from ..core import InputConvention, StagedBackbone
from .config import merge_config_file
from .stage_split import split_bottom_up


def resolve_teacher_config(name: str) -> Path:
    """A config file, or one of detectron2's model-zoo configs by its relative path.

    Raises:
        FileNotFoundError: neither exists (the message says where it looked).
    """
    if os.path.isfile(name):
        return Path(name)
    from detectron2 import model_zoo

    try:
        return Path(model_zoo.get_config_file(name))
    except RuntimeError as err:  # model_zoo's "not available in Model Zoo"
        raise FileNotFoundError(f"MODEL.HYBRIDKT.TEACHER.CONFIG {name!r}: no such file, and "
                                f"not a model-zoo config ({err}).") from None


def _load(path: Path):
    if path.suffix == ".py":
        return LazyConfig.load(str(path))
    cfg: CfgNode = get_cfg()
    cfg.set_new_allowed(True)  # a hybrid config's MODEL.HYBRIDKT.* keys, say
    merge_config_file(cfg, str(path))  # safe YAML only (no !!python tags), one-line errors
    cfg.MODEL.DEVICE = "cpu"
    return cfg


def _convention(cfg) -> InputConvention:
    if isinstance(cfg, CfgNode):
        return InputConvention(tuple(cfg.MODEL.PIXEL_MEAN), tuple(cfg.MODEL.PIXEL_STD),
                               cfg.INPUT.FORMAT)
    model = cfg.model
    return InputConvention(tuple(model.pixel_mean), tuple(model.pixel_std),
                           model.get("input_format", "BGR"))


def config_convention(name: str) -> InputConvention:
    """The pixel convention of the detector config ``name`` (nothing is built)."""
    return _convention(_load(resolve_teacher_config(name)))


def teacher_from_config(name: str) -> tuple[StagedBackbone, InputConvention, str]:
    """The teacher network of config ``name``, split into stages; its convention and prefix.

    Raises:
        FileNotFoundError: the config does not exist.
        TypeError: its bottom-up is of a type that cannot be split (the message names them).
    """
    cfg = _load(resolve_teacher_config(name))
    if isinstance(cfg, CfgNode):
        backbone = build_backbone(cfg)
    else:  # a LazyConfig: build the bottom-up only when there is one (no FPN weights)
        node = cfg.model.backbone
        backbone = instantiate(node.bottom_up if "bottom_up" in node else node)
        if "bottom_up" in node:
            return split_bottom_up(backbone), _convention(cfg), "backbone.bottom_up."
    bottom_up = getattr(backbone, "bottom_up", None)
    if bottom_up is not None:
        return split_bottom_up(bottom_up), _convention(cfg), "backbone.bottom_up."
    return split_bottom_up(backbone), _convention(cfg), "backbone."
