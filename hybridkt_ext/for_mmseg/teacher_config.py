"""A teacher named by the mmseg config it was trained with, and checks against that config.

``teacher=dict(config='mmseg::deeplabv3/deeplabv3_r101-d8_4xb2-80k_cityscapes-512x1024.py',
checkpoint=...)`` builds exactly the backbone that checkpoint was trained with: dilations,
strides, norm and stem come from the config, not from a hand-copied dict (a D8 checkpoint
loads into a non-dilated ResNet without a single shape error, and trains the wrong network).
The teacher's pixel convention comes from the config's data preprocessor.

mmengine also stores the training config's text in every checkpoint (``meta['cfg']``), so a
hand-written teacher dict can be held against the network its weights were trained in.
"""
from __future__ import annotations

import importlib
import warnings
from pathlib import Path
from typing import Any, Mapping

from mmengine.config import Config
from torch import nn

from hybridkt_ext.core import InputConvention

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


def _model_backbone(cfg: Mapping) -> dict | None:
    backbone = (cfg.get("model") or {}).get("backbone")
    if not isinstance(backbone, Mapping):
        return None
    backbone = dict(backbone)
    if backbone.get("type") == "HybridBackbone":  # a hybrid-trained student as the teacher
        backbone = dict(backbone["student"])
    for key in ("init_cfg", "pretrained"):  # weights come from the teacher's checkpoint
        backbone.pop(key, None)
    return backbone


def convention_from_preprocessor(preprocessor: Mapping | None) -> InputConvention | None:
    """The pixel convention of an mmseg data preprocessor (images are loaded BGR by mmcv)."""
    if not preprocessor or "mean" not in preprocessor:
        return None
    return InputConvention(tuple(preprocessor["mean"]), tuple(preprocessor["std"]),
                           "RGB" if preprocessor.get("bgr_to_rgb", False) else "BGR")


def backbone_from_config(name: str) -> tuple[dict, InputConvention | None]:
    """The backbone dict and input convention of the segmentor config ``name``.

    Raises:
        FileNotFoundError: the config does not exist.
        ValueError: the config has no ``model.backbone``.
    """
    path = resolve_config_path(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cfg = Config.fromfile(str(path)).to_dict()
    backbone = _model_backbone(cfg)
    if backbone is None:
        raise ValueError(f"teacher.config={name!r} ({path}) has no model.backbone.")
    preprocessor = (cfg.get("model") or {}).get("data_preprocessor") \
        or cfg.get("data_preprocessor")
    return backbone, convention_from_preprocessor(preprocessor)


def backbone_of_checkpoint(meta: Mapping | None) -> dict | None:
    """The backbone dict of the training config stored in an mmengine checkpoint's meta."""
    text = (meta or {}).get("cfg")
    if not isinstance(text, str):
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return _model_backbone(Config.fromstring(text, ".py").to_dict())
    except Exception:  # custom imports of another project, an unparsable dump: no check
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
