"""No tool writes onto one of its own inputs, ``--overwrite`` or not.

``--overwrite`` means "replace my earlier output"; it never means "replace what you are about to
read" (a plot written over the run's only metrics log, an export over its checkpoint). Every
tool that writes files calls ``refuse_writing_onto_inputs`` before it reads or writes anything,
so a refused command leaves every file as it was.

Two paths are the same file when they resolve to the same path (symbolic links followed) or,
for files that exist, when they are the same inode (hard links, bind mounts, another spelling
on a case-insensitive disk). An input that is a folder stands for every file under it: an
output inside it is refused too.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

from .errors import HybridKTError

PathLike = str | os.PathLike


class OutputIsInputError(HybridKTError, ValueError):
    """An output path is one of the tool's inputs (or the tool's other output)."""


def refuse_writing_onto_inputs(outputs: Iterable[PathLike | None],
                               inputs: Iterable[PathLike | None],
                               reader: str = "this tool") -> None:
    """Refuses an output that is an input, lies in an input folder, or is another output.

    Args:
        outputs: the files (or folders) the tool will write; ``None`` entries (an option not
            given) are skipped.
        inputs: the files the tool reads, or folders it reads files from; ``None`` skipped.
        reader: how the message names the tool, e.g. ``"plot_alpha"`` or ``"this export"``.

    Raises:
        OutputIsInputError: one line naming the output, the input it is, and the fix.
    """
    wanted = [Path(p) for p in outputs if p is not None]
    read = [Path(p) for p in inputs if p is not None]
    for i, out in enumerate(wanted):
        # The later outputs too: of two outputs on one file, the second write replaces the first.
        for other in (*read, *wanted[i + 1:]):
            how = _same_file(out, other)
            if how is not None:
                raise OutputIsInputError(
                    f"{out} is {other}{how}, which {reader} reads or writes; write each output "
                    "to a path of its own (it would be lost, --overwrite or not).")
        for folder in read:
            if _inside_folder(out, folder):
                raise OutputIsInputError(
                    f"{out} is inside {folder}, a folder {reader} reads files from; write the "
                    "output outside it (it could replace or be read as one of them).")


def _resolved(path: Path) -> Path:
    try:
        return path.resolve()
    except (OSError, RuntimeError):  # a symlink loop: compare the absolute spelling instead
        return path.absolute()


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    return st.st_dev, st.st_ino


def _same_file(a: Path, b: Path) -> str | None:
    """None if ``a`` and ``b`` are different files, else a note on how they are one file."""
    if _resolved(a) == _resolved(b):
        same_spelling = os.path.normpath(a.absolute()) == os.path.normpath(b.absolute())
        return "" if same_spelling else " (the same file through a symbolic link)"
    ida = _identity(a)
    if ida is not None and ida == _identity(b):
        return " (the same file under another name: a hard link)"
    return None


def _inside_folder(path: Path, folder: Path) -> bool:
    # Only for a folder that exists: a missing input is a file the tool will fail to read. A
    # hard link inside the folder is not searched for: that would read the whole tree, and the
    # tools write by renaming a new file into place, which leaves a hard-linked input intact.
    if not folder.is_dir():
        return False
    return _resolved(folder) in _resolved(path).parents
