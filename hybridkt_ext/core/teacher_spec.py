"""``TeacherSpec``: where a frozen teacher's weights are and how they map onto it.

Every adapter (mmseg config dict, detectron2 ``MODEL.HYBRIDKT.TEACHER.*``, the classification
CLI) turns its own way of naming a teacher into this one spec, and ``load_teacher`` applies
one policy to all of them. The network itself is built by the adapter (from its registry, its
config, torchvision or timm); the spec only says how to fill it.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Mapping

from .teacher_weights import DETECTRON2_RESNET_TO_TORCHVISION
from .input_transform import InputConvention

# Named key renamings, one name each (``remap='<name>'`` in every adapter).
REMAP_PRESETS: dict[str, tuple[tuple[str, str], ...]] = {
    "detectron2_resnet_to_torchvision": DETECTRON2_RESNET_TO_TORCHVISION,
}
SPEC_KEYS = ("checkpoint", "prefix", "remap", "strict", "input", "allow_random_init",
             "trust_checkpoint")


@dataclass(frozen=True)
class TeacherSpec:
    """How to load a teacher. Field comments say what each is for.

    Attributes:
        checkpoint: the teacher's file (``.pth``/``.pkl``/``.safetensors`` of torchvision,
            timm, mmengine or detectron2). None only with ``allow_random_init`` (tests).
        prefix: key prefix of the teacher's weights in the file, stripped on load
            (``"backbone."`` for an mmseg segmentor, ``"backbone.bottom_up."`` for detectron2).
        remap: regex ``(pattern, replacement)`` renames applied after the prefix.
        strict: refuse checkpoint keys the teacher does not have (a classifier head that no
            stage runs, e.g. ``fc.*``, is always allowed). Weights a stage uses must always
            be in the file, strict or not.
        input: the teacher's own pixel convention; None: the student's.
        allow_random_init: accept ``checkpoint=None`` (a random teacher transfers nothing:
            tests and smoke runs only).
        trust_checkpoint: unpickle any class the file names (only for files you trust).
    """

    checkpoint: str | None = None
    prefix: str = ""
    remap: tuple[tuple[str, str], ...] = field(default_factory=tuple)
    strict: bool = True
    input: InputConvention | None = None
    allow_random_init: bool = False
    trust_checkpoint: bool = False

    def __post_init__(self) -> None:
        if self.checkpoint is None and not self.allow_random_init:
            raise ValueError(_no_checkpoint("teacher.checkpoint", "teacher.allow_random_init"))

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], where: str = "teacher",
                     names: Mapping[str, str] | None = None) -> "TeacherSpec":
        """Validates a config's loading keys (``SPEC_KEYS``); messages name ``where.<key>``.

        ``names`` gives a framework's own full key names instead (detectron2:
        ``{"checkpoint": "MODEL.HYBRIDKT.TEACHER.WEIGHTS", ...}``).

        Raises:
            ValueError: a key of the wrong type, a bad remap or input convention, or no
                checkpoint without ``allow_random_init``.
        """
        unknown = sorted(set(values) - set(SPEC_KEYS))
        if unknown:
            raise ValueError(f"{where}: unknown loading keys {unknown}; allowed: {SPEC_KEYS}.")
        name = {k: (names or {}).get(k, f"{where}.{k}") for k in SPEC_KEYS}
        checkpoint = values.get("checkpoint")
        if checkpoint is not None and not isinstance(checkpoint, (str, os.PathLike)) \
                or checkpoint == "":
            raise ValueError(f"{name['checkpoint']} must be a file path, got {checkpoint!r}.")
        random_init = _flag(values, "allow_random_init", False, name["allow_random_init"])
        if checkpoint is None and not random_init:
            raise ValueError(_no_checkpoint(name["checkpoint"], name["allow_random_init"]))
        prefix = values.get("prefix", "")
        if not isinstance(prefix, str):
            raise ValueError(f"{name['prefix']} must be a string such as 'backbone.', got "
                             f"{prefix!r}.")
        return cls(
            checkpoint=None if checkpoint is None else os.fspath(checkpoint),
            prefix=prefix,
            remap=resolve_remap(values.get("remap", ()), name["remap"]),
            strict=_flag(values, "strict", True, name["strict"]),
            input=input_convention(values.get("input"), name["input"]),
            allow_random_init=random_init,
            trust_checkpoint=_flag(values, "trust_checkpoint", False, name["trust_checkpoint"]),
        )


def _no_checkpoint(checkpoint: str, allow: str) -> str:
    return (f"{checkpoint} is not set: a hybrid-forward teacher must be well trained. Give "
            "its checkpoint file (mmseg, detectron2, torchvision, timm or .safetensors); only "
            f"tests and smoke runs may allow a random teacher ({allow}=True).")


def _flag(values: Mapping[str, Any], key: str, default: bool, name: str) -> bool:
    # bool("False") is True: a quoted flag would silently, e.g., keep a random teacher.
    value = values.get(key, default)
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False, got {value!r}.")
    return value


def resolve_remap(remap: Any, name: str = "teacher.remap") -> tuple[tuple[str, str], ...]:
    """A preset name or ``(pattern, replacement)`` string pairs, as a tuple of pairs."""
    if isinstance(remap, str):
        if remap not in REMAP_PRESETS:
            raise ValueError(f"{name}={remap!r} is not a preset; use one of "
                             f"{sorted(REMAP_PRESETS)} or a list of (pattern, replacement).")
        return REMAP_PRESETS[remap]
    try:
        pairs = tuple(tuple(p) for p in remap)
    except TypeError:
        pairs = ((),)
    if any(len(p) != 2 or not all(isinstance(x, str) for x in p) for p in pairs):
        raise ValueError(f"{name} must hold (pattern, replacement) string pairs or name a "
                         f"preset {sorted(REMAP_PRESETS)}, got {remap!r}.")
    return pairs  # type: ignore[return-value]


def input_convention(value: Any, name: str = "teacher.input") -> InputConvention | None:
    """``dict(mean=..., std=..., channel_order=...)`` (or an InputConvention, or None)."""
    if value is None or isinstance(value, InputConvention):
        return value
    try:
        return InputConvention(**dict(value))
    except TypeError as err:  # unknown or missing keys, or not a mapping
        raise ValueError(f"{name} must be dict(mean=(..3 values), std=(..3 values), "
                         f"channel_order='RGB'|'BGR'), got {value!r} ({err}).") from err
    except ValueError as err:
        raise ValueError(f"{name}: {err}") from err
