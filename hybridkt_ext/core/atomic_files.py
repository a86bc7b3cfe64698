"""Files written whole or not at all: a full disk, a kill or a crash leaves the previous file.

Every file a tool of this project writes (checkpoints, exports, configs, CSVs, tables) goes
through ``replace_atomically``: the content is written to a temporary file in the same folder,
flushed to disk, and renamed over the target, which on POSIX replaces it in one step.
"""
from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import IO, Any, Callable

import torch


def replace_atomically(path: str | os.PathLike, write: Callable[[IO[bytes]], None],
                       overwrite: bool = False) -> Path:
    """Calls ``write`` on a temporary file next to ``path``, then renames it into place.

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
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def save_atomically(obj: Any, path: str | os.PathLike, overwrite: bool = False) -> Path:
    """``torch.save(obj)`` through ``replace_atomically``."""
    return replace_atomically(path, lambda f: torch.save(obj, f), overwrite)


def write_text_atomically(path: str | os.PathLike, text: str, overwrite: bool = False) -> Path:
    """A text file (UTF-8) through ``replace_atomically``."""
    return replace_atomically(path, lambda f: f.write(text.encode("utf-8")), overwrite)
