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
import warnings
from typing import Any, Sequence

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
    pairs = tuple(tuple(p) for p in remap)
    if any(len(p) != 2 for p in pairs):
        raise ValueError(f"teacher.remap must hold (pattern, replacement) pairs, got {remap!r}.")
    return pairs  # type: ignore[return-value]


def _build_model(cfg: dict) -> nn.Module:
    kind = cfg.get("type")
    if not isinstance(kind, str):
        raise ValueError("teacher.type must name an mmseg backbone (e.g. 'ResNetV1c') or a "
                         f"torchvision model (e.g. 'torchvision.resnet50'), got {kind!r}.")
    if kind.startswith(TORCHVISION_PREFIX):
        import torchvision

        kwargs = {k: v for k, v in cfg.items() if k != "type"}
        # weights=None: no download; the teacher's weights come from `checkpoint`.
        return torchvision.models.get_model(kind[len(TORCHVISION_PREFIX):], weights=None,
                                            **kwargs)
    cfg = dict(cfg)
    if cfg.get("pretrained") or cfg.get("init_cfg"):
        raise ValueError("teacher: set `checkpoint` (loaded by hybridkt) instead of "
                         "`pretrained`/`init_cfg`, which mmengine would apply at init_weights.")
    cfg.pop("pretrained", None)
    cfg.pop("init_cfg", None)
    return MODELS.build(cfg)


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
        ValueError: the spec is malformed, or no checkpoint is given without
            ``allow_random_init=True``.
        TeacherCheckpointError: the checkpoint is missing or does not fit the teacher.
    """
    if not isinstance(spec, dict):
        raise ValueError(f"teacher must be a dict (backbone config + checkpoint), got {spec!r}.")
    spec = copy.deepcopy(dict(spec))
    load = {k: spec.pop(k) for k in _LOAD_KEYS if k in spec}
    checkpoint = load.get("checkpoint")
    if checkpoint is None and not load.get("allow_random_init", False):
        raise ValueError(
            "teacher.checkpoint is None: a hybrid-forward teacher must be well trained. Pass "
            "its checkpoint path (mmseg, detectron2 or torchvision file); only tests and "
            "smoke runs may set teacher.allow_random_init=True instead.")
    model = _build_model(spec)
    staged = split_backbone(model) if spec["type"].startswith(TORCHVISION_PREFIX) \
        else split_mmseg_backbone(model)
    if checkpoint is None:
        warnings.warn("the teacher keeps its random initialisation (allow_random_init=True): "
                      "fine for tests, meaningless for knowledge transfer.", stacklevel=2)
    else:
        _load(staged, str(checkpoint), str(load.get("prefix", "")),
              _resolve_remap(load.get("remap", ())), bool(load.get("strict", True)))
    convention = load.get("input")
    if convention is not None and not isinstance(convention, InputConvention):
        convention = InputConvention(**dict(convention))
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
