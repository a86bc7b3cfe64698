"""A training run's claim on its work dir: no second run in it, nothing of a previous run lost.

``tools/train_seg.py`` calls ``claim_work_dir`` before building anything:

* a work dir in use by a live run (its lock file names the process) is refused;
* a work dir holding a previous run's checkpoints is refused unless the run resumes it
  (``--resume``) or replaces it (``--overwrite``);
* ``--resume`` with nothing to resume stops instead of silently training from iteration 0;
* ``--resume`` whose latest checkpoint is damaged (a truncated file from an interrupted save)
  resumes from the newest intact one and says which it skipped.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from hybridkt_ext.core import HybridKTError

LOCK_NAME = ".hybridkt_run.lock"
_ITER = re.compile(r"^(?:iter|epoch)_(\d+)\.pth$")


class WorkDirError(HybridKTError, RuntimeError):
    """The work dir is in use, holds a run that would be lost, or has nothing to resume."""


@dataclass(frozen=True)
class Claim:
    """What the run may do in its work dir.

    Attributes:
        resume_from: the checkpoint to continue (``--resume``), or None for a new run.
        skipped: damaged checkpoints newer than ``resume_from``, passed over.
    """

    resume_from: Path | None = None
    skipped: list[Path] = field(default_factory=list)


def checkpoints(work_dir: Path) -> list[Path]:
    """The run's ``iter_N.pth`` / ``epoch_N.pth`` files, newest (highest N) first."""
    found = [(int(m.group(1)), p) for p in work_dir.glob("*.pth") if (m := _ITER.match(p.name))]
    return [p for _, p in sorted(found, reverse=True)]


def is_intact(path: Path) -> bool:
    """Whether a torch checkpoint's zip archive reads back completely (CRCs included)."""
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.testzip() is None
    except (zipfile.BadZipFile, OSError, EOFError):
        return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def _check_lock(lock: Path) -> None:
    try:
        held = json.loads(lock.read_text())
    except (OSError, ValueError):
        return  # unreadable: a stale lock of a crashed run
    same_host = held.get("host") == socket.gethostname()
    if held.get("pid") != os.getpid() and (not same_host or _alive(int(held.get("pid", -1)))):
        raise WorkDirError(
            f"{lock.parent} is in use by another run (process {held.get('pid')} on "
            f"{held.get('host')}, started {held.get('started')}); wait for it, or give this "
            f"run another --work-dir. If that process is gone, delete {lock}.")


def resume_from(work_dir: Path) -> tuple[Path, list[Path]]:
    """The checkpoint ``--resume`` should continue, and the damaged ones it skips.

    Raises:
        WorkDirError: no checkpoint to resume, or none intact.
    """
    found = checkpoints(work_dir)
    if not found:
        raise WorkDirError(
            f"--resume: {work_dir} holds no checkpoint to resume (no iter_*.pth); check "
            "--work-dir, or drop --resume to start a new run there.")
    skipped = []
    for path in found:
        if is_intact(path):
            return path, skipped
        skipped.append(path)
    raise WorkDirError(f"--resume: every checkpoint in {work_dir} is damaged "
                       f"({', '.join(p.name for p in skipped)}); nothing to resume from.")


@contextlib.contextmanager
def claim_work_dir(work_dir: str | os.PathLike, resume: bool, overwrite: bool,
                   main_process: bool = True) -> Iterator[Claim]:
    """Claims ``work_dir`` for this run for the duration of the block.

    Only the main process holds the lock (the other ranks of a distributed run share it).

    Raises:
        WorkDirError: see the module docstring.
    """
    work_dir = Path(work_dir)
    if work_dir.exists() and not work_dir.is_dir():
        raise WorkDirError(f"--work-dir {work_dir} is a file, not a folder; choose a folder.")
    lock = work_dir / LOCK_NAME
    if main_process and lock.exists():  # the other ranks share the main process's claim
        _check_lock(lock)
    claim = Claim()
    if resume:
        claim = Claim(*resume_from(work_dir))
    elif checkpoints(work_dir) and not overwrite:
        raise WorkDirError(
            f"{work_dir} holds a previous run ({checkpoints(work_dir)[0].name}); pass --resume "
            "to continue it, --overwrite to replace it, or another --work-dir.")
    if not main_process:
        yield claim
        return
    work_dir.mkdir(parents=True, exist_ok=True)
    if not os.access(work_dir, os.W_OK):
        raise WorkDirError(f"--work-dir {work_dir} is not writable; choose another folder.")
    lock.write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                "started": time.strftime("%Y-%m-%d %H:%M:%S")}))
    try:
        yield claim
    finally:
        lock.unlink(missing_ok=True)
