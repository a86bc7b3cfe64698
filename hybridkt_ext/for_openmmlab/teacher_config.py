"""A teacher named by the mmseg config it was trained with, and checks against that config.

``teacher=dict(config='mmseg::deeplabv3/deeplabv3_r101-d8_4xb2-80k_cityscapes-512x1024.py',
checkpoint=...)`` builds exactly the backbone that checkpoint was trained with: dilations,
strides, norm and stem come from the config, not from a hand-copied dict (a D8 checkpoint
loads into a non-dilated ResNet without a single shape error, and trains the wrong network).
The teacher's pixel convention comes from the config's data preprocessor. The config may be of
another OpenMMLab library than the student's (an mmseg teacher in an mmdet model): its types
keep the config's scope (``mmseg.ResNetV1c``), as the checkpoint's stored config's do.

mmengine also stores the training config's text in every checkpoint (``meta['cfg']``), so a
hand-written teacher dict can be held against the network its weights were trained in, and fed
the pixels it was trained on. That text is read as literals only (``core.literal_config``): it
comes from someone else's file, and executing it would run their code.
"""
from __future__ import annotations

import importlib
import warnings
from pathlib import Path
from typing import Any, Mapping

from mmengine.config import Config
from torch import nn

from hybridkt_ext.core import InputConvention
from hybridkt_ext.core.literal_config import UnreadableStoredConfigError, read_literal_config

# Constructor arguments that change the network's function (and so must match the training
# config) are all the others: these only change training behaviour or what is returned.
_NOT_STRUCTURAL = frozenset({
    "init_cfg", "pretrained", "frozen_stages", "norm_eval", "with_cp", "out_indices",
    "drop_rate", "drop_path_rate", "attn_drop_rate", "output_cls_token", "final_norm_eval",
    "norm_cfg", "act_cfg", "conv_cfg",  # compared through the modules they build
})
# Module attributes that only matter while training, or are bookkeeping.
_RUNTIME_ONLY = frozenset({"training", "momentum", "p", "drop_prob", "inplace",
                           "track_running_stats", "is_init"})
# Types that compute the same function outside training.
_SAME_FUNCTION = {"SyncBatchNorm": "BatchNorm2d"}


def resolve_config_path(name: str) -> Path:
    """``'mmseg::x/y.py'`` -> the installed package's ``.mim/configs/x/y.py``; else a path.

    Raises:
        FileNotFoundError: no such config (the message says where it looked).
    """
    if "::" in name:
        package, relative = name.split("::", 1)
        try:
            module = importlib.import_module(package)
        except ImportError as err:
            raise FileNotFoundError(f"teacher.config={name!r}: package {package!r} is not "
                                    f"installed ({err}).") from None
        path = Path(module.__file__).parent / ".mim" / "configs" / relative
    else:
        path = Path(name)
    if not path.is_file():
        raise FileNotFoundError(f"teacher.config={name!r}: no config file at {path}.")
    return path


def backbone_of_config(cfg: Mapping) -> dict | None:
    """The backbone dict of a segmentor config (a hybrid one's student), without weights."""
    model = cfg.get("model")
    backbone = model.get("backbone") if isinstance(model, Mapping) else None
    if isinstance(backbone, Mapping) and backbone.get("type") == "HybridBackbone":
        backbone = backbone.get("student")  # a hybrid-trained student as the teacher
    if not isinstance(backbone, Mapping):
        return None
    backbone = dict(backbone)
    for key in ("init_cfg", "pretrained"):  # weights come from the teacher's checkpoint
        backbone.pop(key, None)
    return backbone


def convention_from_preprocessor(preprocessor: Mapping | None) -> InputConvention | None:
    """The pixel convention of an mmseg data preprocessor (images are loaded BGR by mmcv).

    Raises:
        ValueError: ``mean``/``std`` are not three finite numbers each (std positive).
    """
    if not isinstance(preprocessor, Mapping) or "mean" not in preprocessor:
        return None
    mean, std = preprocessor.get("mean"), preprocessor.get("std")
    if not isinstance(mean, (list, tuple)) or not isinstance(std, (list, tuple)):
        raise ValueError(f"data_preprocessor mean={mean!r}, std={std!r}: need three numbers "
                         "each.")
    return InputConvention(tuple(mean), tuple(std),
                           "RGB" if preprocessor.get("bgr_to_rgb", False) else "BGR")


def convention_of_config(cfg: Mapping) -> InputConvention | None:
    """The pixel convention a segmentor config's data preprocessor gives its backbone."""
    model = cfg.get("model") if isinstance(cfg.get("model"), Mapping) else {}
    return convention_from_preprocessor(model.get("data_preprocessor")
                                        or cfg.get("data_preprocessor"))


def config_scope(cfg: Mapping, name: str | None = None) -> str | None:
    """The registry scope a config's types are named in: its ``default_scope``, else the
    package of an ``'mmseg::...'`` name; None when neither says."""
    scope = cfg.get("default_scope")
    if isinstance(scope, str) and scope:
        return scope
    return name.split("::", 1)[0] if name and "::" in name else None


def split_scope(kind: str, scope: str | None) -> tuple[str | None, str]:
    """``'mmseg.ResNetV1c'`` -> ``('mmseg', 'ResNetV1c')``; an unscoped type is in ``scope``."""
    if "." in kind:
        prefix, _, bare = kind.partition(".")
        return prefix, bare
    return scope, kind


def in_scope(backbone: dict, scope: str | None, here: str) -> dict:
    """``backbone`` with its type named so that the registry of ``here`` builds it in ``scope``.

    A config's types are named in its own scope: ``ResNetV1c`` of an mmseg config, read inside
    an mmdet model, is ``mmseg.ResNetV1c`` (mmdet's registry has no ``ResNetV1c`` of its own).
    """
    kind = backbone.get("type")
    if not isinstance(kind, str) or scope in (None, here) or "." in kind:
        return backbone
    return {**backbone, "type": f"{scope}.{kind}"}


def backbone_from_config(name: str, here: str | None = None
                         ) -> tuple[dict, InputConvention | None]:
    """The backbone dict and input convention of the (segmentor, detector, classifier) config
    ``name``; with ``here`` (the framework that builds it), the type keeps the config's scope.

    Raises:
        FileNotFoundError: the config does not exist.
        ValueError: the config has no ``model.backbone``.
    """
    path = resolve_config_path(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cfg = Config.fromfile(str(path)).to_dict()
    backbone = backbone_of_config(cfg)
    if backbone is None:
        raise ValueError(f"teacher.config={name!r} ({path}) has no model.backbone.")
    if here is not None:
        backbone = in_scope(backbone, config_scope(cfg, name), here)
    return backbone, convention_of_config(cfg)


def stored_training_config(meta: Mapping | None, path: str) -> dict | None:
    """The training config an mmengine checkpoint stores in ``meta['cfg']``, read as literals.

    None when there is none, or when it is not plain literals: then a warning says that the
    teacher could not be checked against it (nothing of the text ran).
    """
    text = (meta or {}).get("cfg")
    if not isinstance(text, str):
        return None
    try:
        return read_literal_config(text)
    except UnreadableStoredConfigError as err:
        warnings.warn(f"{path}: cannot read the training config stored in this checkpoint "
                      f"(meta['cfg']: {err}); it was not run, and the teacher is not checked "
                      "against it. Name the teacher by its config, teacher=dict(config=..., "
                      "checkpoint=...), to have it built as trained.", stacklevel=2)
        return None


def _canonical(value: Any) -> Any:
    if isinstance(value, Mapping):
        value = {k: _canonical(v) for k, v in value.items() if k != "requires_grad"}
        if value.get("type") == "SyncBN":  # the same function as BN outside training
            value["type"] = "BN"
        return value
    if isinstance(value, (list, tuple)):
        return tuple(_canonical(v) for v in value)
    return value


def _signature(model: nn.Module) -> dict[str, Any]:
    """Every module's type and plain settings (strides, dilations, flags...), by module name.

    Two networks with equal signatures compute the same function of the same weights; the
    weights' shapes alone do not tell (a D8 ResNet has exactly a plain ResNet's shapes).
    """
    signature: dict[str, Any] = {}
    for name, module in model.named_modules():
        where = name or type(model).__name__
        signature[f"{where}.type"] = _SAME_FUNCTION.get(type(module).__name__,
                                                         type(module).__name__)
        for key, value in vars(module).items():
            if key.startswith("_") or key in _NOT_STRUCTURAL or key in _RUNTIME_ONLY:
                continue
            if isinstance(value, (bool, int, float, str, tuple, list)) or value is None:
                signature[f"{where}.{key}"] = _canonical(value)
    return signature


def structural_differences(built: nn.Module, trained: nn.Module) -> list[str]:
    """``module.setting: here vs in training`` for every setting that differs."""
    here, there = _signature(built), _signature(trained)
    return [f"{k}: {here.get(k)!r} vs {there.get(k)!r}" for k in sorted(set(here) | set(there))
            if here.get(k) != there.get(k)]


def config_hints(trained: Mapping, differences: list[str], root: str) -> list[str]:
    """``key=value`` of the training config for the backbone settings that differ."""
    differing = {d.split(":", 1)[0] for d in differences}
    return [f"{k}={_canonical(trained[k])!r}" for k in sorted(trained)
            if f"{root}.{k}" in differing]
