"""Student-only export: the state dict a plain framework config loads, no hybridkt inside.

The hybrid model's state dict holds the student under ``<engine>student.model.`` next to the
teacher, the adapters and any baseline regressors. Export renames the student's keys to where
the plain model has them and drops everything else the hybrid model added.
"""
from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any, Mapping, Sequence

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


def save_atomically(obj: Any, path: str | os.PathLike, overwrite: bool = False) -> Path:
    """torch.save to a temporary file in the same folder, then rename it into place.

    A failure or crash mid-write leaves no file (or the previous one, intact) at ``path``,
    and the temporary file is removed; the data is flushed to disk before the rename, so a
    power loss cannot leave a renamed but empty file. The file gets the permissions of a
    normally created one.

    Raises:
        FileExistsError: if ``path`` exists and ``overwrite`` is False (checked before
            anything is written).
        IsADirectoryError: if ``path`` is a folder.
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder; pass the file to write, e.g. "
                                f"{path / 'student.pth'}")
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True (--overwrite) to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    # open(..., "xb") instead of mkstemp: an exclusive create that honours the umask, so the
    # renamed file is readable by whoever could read a plainly saved one.
    tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
    f = open(tmp, "xb")  # before the try: a clash must not delete another writer's file
    try:
        with f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
