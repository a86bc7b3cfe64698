"""Loading a well-trained teacher's weights from another framework's checkpoint file.

Supported files, read without importing any of those frameworks:

* torchvision style: a plain state dict saved with ``torch.save``;
* mmengine / mmseg: ``{"meta": ..., "state_dict": {...}, "optimizer": ..., ...}``;
* detectron2 ``.pth``: ``{"model": {...}, "optimizer": ..., "iteration": ...}``;
* detectron2 ``.pkl`` (model zoo): a pickled ``{"model": {name: numpy.ndarray}, ...}``;
* ``.safetensors`` (timm and most model hubs): a flat ``{name: tensor}`` file.

Typical use for a detectron2 teacher::

    report = load_teacher_weights(resnet, "model_final.pkl", prefix="backbone.bottom_up.",
                                  remap=DETECTRON2_RESNET_TO_TORCHVISION)

Files are read by ``checkpoint_file.read_checkpoint_file``, which never runs code from a file
unless the caller opts in with ``trust=True`` (``.safetensors`` files are read too).
"""
from __future__ import annotations

import os
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from .checkpoint_file import CheckpointFileError, read_checkpoint_file

__all__ = [
    "CheckpointFileError",
    "DETECTRON2_RESNET_TO_TORCHVISION",
    "LoadReport",
    "TeacherCheckpointError",
    "load_teacher_weights",
    "read_checkpoint",
    "read_weights_and_meta",
    "remap_keys",
    "select_prefix",
]

# Renames a detectron2 ResNet bottom-up (keys after stripping "backbone.bottom_up.") into
# torchvision ResNet names. In detectron2 every conv is a ``Conv2d`` owning its norm as
# ``.norm``, the stem conv is ``stem.conv1``, stages are ``res2``..``res5`` and the projection
# is ``shortcut``; torchvision uses ``conv1``/``bn1``, ``layer1``..``layer4`` and
# ``downsample.0`` (conv) / ``downsample.1`` (BN). Norm rules come before the conv rules so
# that ``conv1.norm.weight`` is not mistaken for the conv weight.
DETECTRON2_RESNET_TO_TORCHVISION: tuple[tuple[str, str], ...] = (
    (r"^stem\.conv1\.norm\.", "bn1."),
    (r"^stem\.conv1\.", "conv1."),
    (r"^res2\.", "layer1."),
    (r"^res3\.", "layer2."),
    (r"^res4\.", "layer3."),
    (r"^res5\.", "layer4."),
    (r"^(layer[1-4]\.\d+)\.shortcut\.norm\.", r"\1.downsample.1."),
    (r"^(layer[1-4]\.\d+)\.shortcut\.", r"\1.downsample.0."),
    (r"^(layer[1-4]\.\d+)\.conv(\d)\.norm\.", r"\1.bn\2."),
)

# BatchNorm's update counter: not a weight, and detectron2's FrozenBatchNorm has none.
_COUNTER_SUFFIX = "num_batches_tracked"
_MAX_LISTED = 10


class TeacherCheckpointError(CheckpointFileError):
    """A teacher checkpoint cannot be read or does not fit the teacher module."""


@dataclass
class LoadReport:
    """What ``load_teacher_weights`` did.

    Attributes:
        loaded: module keys whose values were copied from the checkpoint.
        missing: module keys the checkpoint does not provide (``num_batches_tracked`` excluded).
        unexpected: checkpoint keys the module does not have (``num_batches_tracked`` excluded).
        mismatched: keys present on both sides with different shapes, as
            ``"key: checkpoint (..) vs module (..)"``.
    """

    loaded: list[str]
    missing: list[str]
    unexpected: list[str]
    mismatched: list[str] = field(default_factory=list)


def _format_list(items: Sequence[str]) -> str:
    shown = ", ".join(items[:_MAX_LISTED])
    if len(items) > _MAX_LISTED:
        shown += f", ... and {len(items) - _MAX_LISTED} more"
    return shown


def _as_tensor(value: Any) -> torch.Tensor | None:
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, np.ndarray) and value.dtype.kind in "biufc":
        return torch.from_numpy(value)
    return None


def read_checkpoint(path: str | os.PathLike[str], trust: bool = False,
                    error: type[CheckpointFileError] = CheckpointFileError
                    ) -> dict[str, torch.Tensor]:
    """Reads the weights of a checkpoint file as a flat ``{name: tensor}`` dict on the CPU.

    The state dict is the file's ``"state_dict"`` entry (mmengine/mmseg), else its
    ``"model"`` entry (detectron2), else the file's top-level mapping (torchvision). Entries
    that are not tensors (or numeric numpy arrays, converted with ``torch.from_numpy``) are
    dropped. ``.safetensors`` files are read natively, ``.pkl`` files as detectron2 model-zoo
    pickles, every other file with ``torch.load(weights_only=True)``; classes outside the
    allowlist of ``checkpoint_file`` are refused unless ``trust``.

    Args:
        path: the checkpoint file.
        trust: unpickle any class the file names (only for files you trust).
        error: the class of the errors raised (a reader of teacher files passes
            ``TeacherCheckpointError``).

    Returns:
        The weights, keyed by their names in the checkpoint.

    Raises:
        CheckpointFileError (``error``): the file is missing, empty, corrupt, not a
            checkpoint, or holds no mapping of weights.
        UntrustedCheckpointError: the file names a class outside the allowlist.
    """
    return read_weights_and_meta(path, trust, error)[0]


def read_weights_and_meta(path: str | os.PathLike[str], trust: bool = False,
                          error: type[CheckpointFileError] = CheckpointFileError
                          ) -> tuple[dict[str, torch.Tensor], Mapping | None]:
    """``read_checkpoint``'s weights and the file's ``meta`` mapping (mmengine), if any.

    mmengine's Runner stores the training config's text under ``meta["cfg"]``, which lets a
    teacher builder compare the network it builds with the one the weights were trained in.
    """
    path = os.fspath(path)
    obj = read_checkpoint_file(path, trust=trust, error=error)
    if isinstance(obj, nn.Module):
        raise error(
            f"{path}: holds a whole {type(obj).__name__} module, not a state dict; re-save it "
            "with torch.save(model.state_dict(), path)."
        )
    if not isinstance(obj, Mapping):
        raise error(
            f"{path}: holds a {type(obj).__name__}, not a mapping of weights; pass a state "
            "dict or an mmengine/detectron2 checkpoint."
        )
    meta = obj.get("meta") if isinstance(obj.get("meta"), Mapping) else None
    for key in ("state_dict", "model"):
        if isinstance(obj.get(key), Mapping):
            obj = obj[key]
            break
    state = {}
    for key, value in obj.items():
        tensor = _as_tensor(value)
        if isinstance(key, str) and tensor is not None:
            state[key] = tensor
    if not state:
        top = _format_list([repr(k) for k in obj])
        raise error(
            f"{path}: the checkpoint holds no tensors (keys: {top or 'none'}); pass a state "
            "dict or an mmengine/detectron2 checkpoint with weights."
        )
    return state, meta


def _common_prefixes(keys: Sequence[str]) -> str:
    counts: Counter[str] = Counter()
    for key in keys:
        parts = key.split(".")
        for depth in (1, 2):
            if len(parts) > depth:
                counts[".".join(parts[:depth]) + "."] += 1
    return ", ".join(f"{p!r} ({n} keys)" for p, n in counts.most_common(_MAX_LISTED))


def select_prefix(state: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """Keeps the entries whose key starts with ``prefix`` and strips it from their keys.

    Args:
        state: a flat state dict.
        prefix: e.g. ``"backbone."`` (usually ending with a dot); ``""`` keeps everything.

    Raises:
        TeacherCheckpointError: no key starts with ``prefix``; the message lists the most
            common prefixes present.
    """
    selected = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    if not selected:
        raise TeacherCheckpointError(
            f"no checkpoint key starts with prefix {prefix!r}; most common prefixes present: "
            f"{_common_prefixes(list(state)) or 'none'}. Pass one of them as `prefix`."
        )
    return selected


def remap_keys(
    state: Mapping[str, torch.Tensor], rules: Sequence[tuple[str, str]]
) -> dict[str, torch.Tensor]:
    """Renames keys with regex substitutions (``re.sub(pattern, replacement, key)``) in order.

    Args:
        state: a flat state dict.
        rules: ``(pattern, replacement)`` pairs; each applies to the result of the previous.

    Raises:
        TeacherCheckpointError: a pattern is not a valid regex, or two keys map to one name.
    """
    try:
        compiled = [(re.compile(pattern), repl) for pattern, repl in rules]
    except re.error as err:
        raise TeacherCheckpointError(f"invalid regex in `remap`: {err}") from err
    renamed: dict[str, torch.Tensor] = {}
    origin: dict[str, str] = {}
    for key, value in state.items():
        new_key = key
        for pattern, repl in compiled:
            new_key = pattern.sub(repl, new_key)
        if new_key in renamed:
            raise TeacherCheckpointError(
                f"`remap` maps both {origin[new_key]!r} and {key!r} to {new_key!r}; make the "
                "rules more specific."
            )
        renamed[new_key] = value
        origin[new_key] = key
    return renamed


def _check_values(path: str, state: Mapping[str, torch.Tensor],
                  target: Mapping[str, torch.Tensor]) -> None:
    """Refuses integer data for floating-point weights and non-finite weights, naming the key.

    Copying int8 (quantised) values into a float module would silently load weights such as
    -1, 2, 5, and copying complex ones would drop their imaginary part with only torch's cast
    warning; a NaN weight would surface only as a non-finite loss at the first step.
    """
    for key, value in state.items():
        if not target[key].is_floating_point():
            continue  # integer buffers (counters) are copied as they are
        if not value.is_floating_point():
            raise TeacherCheckpointError(
                f"{path}: {key!r} holds {value.dtype} values where the teacher has "
                f"{target[key].dtype} weights (a quantised or wrongly converted checkpoint?); "
                "pass the floating-point checkpoint the teacher was trained with."
            )
        if not bool(torch.isfinite(value).all()):
            bad = int((~torch.isfinite(value)).sum())
            raise TeacherCheckpointError(
                f"{path}: {key!r} holds {bad} non-finite value(s) (NaN or inf): the checkpoint "
                "is damaged or was saved after training diverged; use an earlier checkpoint."
            )


def load_teacher_weights(
    module: nn.Module,
    path: str | os.PathLike[str],
    prefix: str = "",
    remap: Sequence[tuple[str, str]] = (),
    strict: bool = True,
    trust: bool = False,
    state: Mapping[str, torch.Tensor] | None = None,
) -> LoadReport:
    """Loads a checkpoint's weights into ``module`` in place.

    Reads the file (``read_checkpoint``), keeps the keys under ``prefix``
    (``select_prefix``), renames them (``remap_keys``) and compares the result with
    ``module.state_dict()``. Values are copied into the module's own tensors, so they take the
    module's dtype and device. BatchNorm ``num_batches_tracked`` counters are ignored on both
    sides: they are not weights, and detectron2's FrozenBatchNorm checkpoints have none.

    Args:
        module: the teacher (or any module) to fill.
        path: the checkpoint file.
        prefix: the key prefix of the module's weights in the checkpoint, stripped on load.
        remap: ``(pattern, replacement)`` regex rules applied after stripping the prefix,
            e.g. ``DETECTRON2_RESNET_TO_TORCHVISION``.
        strict: if true, any missing key, unexpected key or shape mismatch is an error and
            nothing is loaded; if false, every key present on both sides with equal shapes is
            loaded and the rest is reported.
        trust: unpickle any class the file names (only for files you trust; see
            ``checkpoint_file``).
        state: the file's weights, if the caller has read them already (``path`` then only
            names the file in messages).

    Returns:
        A ``LoadReport`` listing loaded, missing, unexpected and mismatched keys.

    Raises:
        TeacherCheckpointError: the file cannot be read, the prefix matches nothing, the
            remap collides, a weight is not finite or not floating point where the module's
            is, or (strict only) the keys or shapes do not match.
        UntrustedCheckpointError: the file names a class outside the allowlist.
    """
    path = os.fspath(path)
    if state is None:
        state = read_checkpoint(path, trust=trust, error=TeacherCheckpointError)
    try:
        state = remap_keys(select_prefix(state, prefix), remap)
    except TeacherCheckpointError as err:
        raise TeacherCheckpointError(f"{path}: {err}") from err
    target = module.state_dict()
    loaded, mismatched = [], []
    for key, value in state.items():
        if key in target:
            if value.shape == target[key].shape:
                loaded.append(key)
            else:
                mismatched.append(
                    f"{key}: checkpoint {tuple(value.shape)} vs module {tuple(target[key].shape)}"
                )
    missing = [k for k in target if k not in state and not k.endswith(_COUNTER_SUFFIX)]
    unexpected = [k for k in state if k not in target and not k.endswith(_COUNTER_SUFFIX)]
    report = LoadReport(loaded=loaded, missing=missing, unexpected=unexpected,
                        mismatched=mismatched)
    if strict and (missing or unexpected or mismatched):
        raise TeacherCheckpointError(
            f"{path} does not fit {type(module).__name__} "
            f"(prefix={prefix!r}, {len(remap)} remap rules, {len(loaded)} keys match):\n"
            f"  missing from checkpoint ({len(missing)}): {_format_list(missing) or '-'}\n"
            f"  unexpected in checkpoint ({len(unexpected)}): {_format_list(unexpected) or '-'}\n"
            f"  shape mismatches ({len(mismatched)}): {_format_list(mismatched) or '-'}\n"
            "Check `prefix` and `remap` against the checkpoint's key names (or pass "
            "strict=False to load only the matching keys)."
        )
    _check_values(path, {k: state[k] for k in loaded}, target)
    # load_state_dict copies into the existing tensors (keeping dtype/device) and runs the
    # modules' own load hooks; strict=False because counters may be absent.
    module.load_state_dict({k: state[k] for k in loaded}, strict=False)
    return report
