"""Student-only export: the state dict a plain framework config loads, no hybridkt inside.

The hybrid model's state dict holds the student under ``<engine>student.model.`` next to the
teacher, the adapters and any baseline regressors. Export renames the student's keys to where
the plain model has them and drops everything else the hybrid model added.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import torch


def export_student_state_dict(state_dict: Mapping[str, torch.Tensor], student_prefix: str,
                              plain_prefix: str = "",
                              drop_prefixes: Sequence[str] = ()) -> dict[str, torch.Tensor]:
    """Maps a hybrid model's state dict onto the plain student model's layout.

    Args:
        state_dict: the hybrid model's state dict.
        student_prefix: where the plain student's keys start in it, e.g.
            ``"backbone.student.model."``.
        plain_prefix: where they go in the plain model, e.g. ``"backbone."``.
        drop_prefixes: prefixes of hybrid-only parts (teacher, adapters, regressors). Keys
            under ``student_prefix`` are never dropped; keys outside every prefix (heads,
            necks) are kept unchanged.

    Raises:
        KeyError: if no key starts with ``student_prefix`` (a wrong prefix would otherwise
            export a model without its backbone).
    """
    out: dict[str, torch.Tensor] = {}
    renamed = 0
    for key, value in state_dict.items():
        if key.startswith(student_prefix):
            new_key = plain_prefix + key[len(student_prefix):]
            if new_key in out:
                raise KeyError(f"{key!r} and a kept key both map to {new_key!r}")
            out[new_key] = value.detach().clone()
            renamed += 1
        elif not any(key.startswith(p) for p in drop_prefixes):
            if key in out:
                raise KeyError(f"{key!r} collides with a renamed student key")
            out[key] = value.detach().clone()
    if renamed == 0:
        raise KeyError(
            f"no key starts with student_prefix {student_prefix!r}; the model's keys start "
            f"with {sorted({k.split('.')[0] + '.' for k in state_dict})}"
        )
    return out
