"""Building the frozen teacher from its config: any splittable mmseg backbone or torchvision model.

The teacher spec is the backbone dict plus loading keys::

    teacher=dict(
        type='ResNetV1c', depth=101, ...,          # an mmseg backbone, or
        # type='torchvision.resnet50',             # a torchvision model (weights=None)
        checkpoint='checkpoints/teacher.pth',      # mmseg, detectron2 or torchvision file
        prefix='backbone.',                        # key prefix of the backbone in the file
        remap=(),                                  # regex pairs, or 'detectron2_resnet'
        strict=True,                               # unexpected keys are errors
        input=dict(mean=..., std=..., channel_order='RGB'),  # the teacher's own convention
        allow_random_init=False)                   # tests/smoke runs only, see below
"""
from __future__ import annotations

import copy
import difflib
import os
import re
import warnings
from typing import Any, Iterable, Sequence

from mmseg.registry import MODELS
from torch import nn

from hybridkt_ext.core import InputConvention, StagedBackbone, TeacherCheckpointError
from hybridkt_ext.core import load_teacher_weights, split_backbone
from hybridkt_ext.core.checkpoint import DETECTRON2_RESNET_TO_TORCHVISION

from .mmseg_splitter import split_mmseg_backbone

REMAP_PRESETS: dict[str, tuple[tuple[str, str], ...]] = {
    "detectron2_resnet": DETECTRON2_RESNET_TO_TORCHVISION,
}
_LOAD_KEYS = ("checkpoint", "prefix", "remap", "strict", "input", "allow_random_init")
TORCHVISION_PREFIX = "torchvision."


def _resolve_remap(remap: Any) -> tuple[tuple[str, str], ...]:
    if isinstance(remap, str):
        if remap not in REMAP_PRESETS:
            raise ValueError(f"teacher.remap={remap!r} is not a preset; use one of "
                             f"{sorted(REMAP_PRESETS)} or a list of (pattern, replacement).")
        return REMAP_PRESETS[remap]
    try:
        pairs = tuple(tuple(p) for p in remap)
    except TypeError:
        pairs = ((),)
    if any(len(p) != 2 or not all(isinstance(x, str) for x in p) for p in pairs):
        raise ValueError(f"teacher.remap must hold (pattern, replacement) string pairs or "
                         f"name a preset {sorted(REMAP_PRESETS)}, got {remap!r}.")
    return pairs  # type: ignore[return-value]


def _did_you_mean(name: str, choices: Iterable[str], prefix: str = "") -> str:
    close = difflib.get_close_matches(name, list(choices), n=3, cutoff=0.6)
    return f" Did you mean {', '.join(repr(prefix + c) for c in close)}?" if close else ""


def _torchvision_model(cfg: dict) -> nn.Module:
    import torchvision

    name = cfg["type"][len(TORCHVISION_PREFIX):]
    known = torchvision.models.list_models(module=torchvision.models)
    if name not in known:
        raise ValueError(
            f"teacher.type={cfg['type']!r}: torchvision has no classification model "
            f"{name!r}.{_did_you_mean(name, known, TORCHVISION_PREFIX)} See "
            "torchvision.models.list_models() for the names.")
    kwargs = {k: v for k, v in cfg.items() if k != "type"}
    try:
        # weights=None: no download; the teacher's weights come from `checkpoint`.
        return torchvision.models.get_model(name, weights=None, **kwargs)
    except TypeError as err:
        raise ValueError(_constructor_error(cfg["type"], err)) from err


def _constructor_error(kind: str, err: Exception) -> str:
    # Python names the offending keyword; a near-miss of a loading key is the likely cause.
    found = re.search(r"unexpected keyword argument '(\w+)'", str(err))
    close = difflib.get_close_matches(found.group(1), _LOAD_KEYS, n=1) if found else []
    hint = f" Did you mean teacher.{close[0]}?" if close else ""
    return (f"teacher: building {kind} failed: {err}.{hint} Every teacher key except "
            f"{list(_LOAD_KEYS)} is passed to the {kind} constructor.")


def _build_model(cfg: dict) -> nn.Module:
    kind = cfg.get("type")
    if not isinstance(kind, str):
        raise ValueError("teacher.type must name an mmseg backbone (e.g. 'ResNetV1c') or a "
                         f"torchvision model (e.g. 'torchvision.resnet50'), got {kind!r}.")
    if kind.startswith(TORCHVISION_PREFIX):
        return _torchvision_model(cfg)
    if MODELS.get(kind) is None:
        raise ValueError(
            f"teacher.type={kind!r} is neither a registered mmseg backbone nor "
            f"'torchvision.<name>'.{_did_you_mean(kind, MODELS.module_dict)} Custom "
            "backbones must be imported first (custom_imports).")
    cfg = dict(cfg)
    if cfg.get("pretrained") or cfg.get("init_cfg"):
        raise ValueError("teacher: set `checkpoint` (loaded by hybridkt) instead of "
                         "`pretrained`/`init_cfg`, which mmengine would apply at init_weights.")
    cfg.pop("pretrained", None)
    cfg.pop("init_cfg", None)
    try:
        return MODELS.build(cfg)
    except TypeError as err:
        raise ValueError(_constructor_error(kind, err)) from err


def _flag(load: dict, key: str, default: bool) -> bool:
    # bool("False") is True: a quoted flag would silently, e.g., keep a random teacher.
    value = load.get(key, default)
    if not isinstance(value, bool):
        raise ValueError(f"teacher.{key} must be True or False, got {value!r}.")
    return value


def _input_convention(value: Any) -> InputConvention | None:
    if value is None or isinstance(value, InputConvention):
        return value
    try:
        return InputConvention(**dict(value))
    except TypeError as err:  # unknown or missing keys, or not a mapping
        raise ValueError(f"teacher.input must be dict(mean=(..3 values), std=(..3 values), "
                         f"channel_order='RGB'|'BGR'), got {value!r} ({err}).") from err
    except ValueError as err:
        raise ValueError(f"teacher.input: {err}") from err


def _stage_keys(staged: StagedBackbone) -> set[str]:
    """State-dict keys (of ``staged.model``) of the tensors the stages use."""
    used: set[int] = set()
    for spec in staged.stage_specs:
        probe = spec.module
        owner = getattr(probe, "_owner", None)
        modules = [getattr(owner[0], n) for n in probe.names] if owner else [probe]
        for m in modules:
            used.update(id(t) for t in m.parameters())
            used.update(id(t) for t in m.buffers())
    named = dict(staged.model.named_parameters())
    named.update(dict(staged.model.named_buffers()))
    return {k for k, t in named.items() if id(t) in used and not k.endswith("num_batches_tracked")}


def build_teacher(spec: dict) -> tuple[StagedBackbone, InputConvention | None]:
    """Builds, splits and loads the teacher; returns it and its input convention.

    The teacher is not yet frozen here; HybridForward freezes it.

    Raises:
        ValueError: the spec is malformed (unknown type with close names suggested, a
            non-boolean flag, a bad ``input`` or ``remap``), or no checkpoint is given
            without ``allow_random_init=True``.
        TeacherCheckpointError: the checkpoint is missing, empty, corrupt, not a
            checkpoint, or does not fit the teacher (wrong prefix, missing stage weights).
    """
    if not isinstance(spec, dict):
        raise ValueError(f"teacher must be a dict (backbone config + checkpoint), got {spec!r}.")
    spec = copy.deepcopy(dict(spec))
    load = {k: spec.pop(k) for k in _LOAD_KEYS if k in spec}
    checkpoint = load.get("checkpoint")
    allow_random_init = _flag(load, "allow_random_init", False)
    strict = _flag(load, "strict", True)
    prefix = load.get("prefix", "")
    if not isinstance(prefix, str):
        raise ValueError(f"teacher.prefix must be a string such as 'backbone.', got {prefix!r}.")
    if checkpoint is not None and not isinstance(checkpoint, (str, os.PathLike)):
        raise ValueError(f"teacher.checkpoint must be a file path, got {checkpoint!r}.")
    if checkpoint is None and not allow_random_init:
        raise ValueError(
            "teacher.checkpoint is None: a hybrid-forward teacher must be well trained. Pass "
            "its checkpoint path (mmseg, detectron2 or torchvision file); only tests and "
            "smoke runs may set teacher.allow_random_init=True instead.")
    # Everything that needs no model is checked first, so a typo fails in milliseconds.
    remap = _resolve_remap(load.get("remap", ()))
    convention = _input_convention(load.get("input"))
    model = _build_model(spec)
    staged = split_backbone(model) if spec["type"].startswith(TORCHVISION_PREFIX) \
        else split_mmseg_backbone(model)
    if checkpoint is None:
        warnings.warn("the teacher keeps its random initialisation (allow_random_init=True): "
                      "fine for tests, meaningless for knowledge transfer.", stacklevel=2)
    else:
        _load(staged, os.fspath(checkpoint), prefix, remap, strict)
    return staged, convention


def _load(staged: StagedBackbone, path: str, prefix: str, remap: Sequence[tuple[str, str]],
          strict: bool) -> None:
    # Load non-strictly, then judge only the tensors the stages use: a detectron2 or
    # torchvision file legitimately lacks (or has) a classifier that no stage runs.
    report = load_teacher_weights(staged.model, path, prefix=prefix, remap=remap, strict=False)
    needed = _stage_keys(staged)
    missing = sorted(k for k in report.missing if k in needed)
    unexpected = report.unexpected if strict else []
    if missing or report.mismatched or unexpected:
        raise TeacherCheckpointError(
            f"{path} does not fit the teacher {type(staged.model).__name__} "
            f"(prefix={prefix!r}, {len(report.loaded)} keys match): "
            f"missing stage weights {missing[:8]}{' ...' if len(missing) > 8 else ''}; "
            f"shape mismatches {report.mismatched[:8]}; unexpected {unexpected[:8]}. Check the "
            "teacher's type/depth against the checkpoint, `prefix` and `remap` (unexpected "
            "keys alone are allowed with strict=False).")
