"""mmengine's local file writes made atomic: a full disk or a kill leaves the previous file.

mmengine writes checkpoints and ``last_checkpoint`` through its file backend, straight into
the final path: a disk that fills up mid-save leaves a truncated ``iter_N.pth`` that
``--resume`` then picks and fails on. ``AtomicLocalBackend`` writes through
``core.replace_atomically``, so a failed write raises and leaves the previous checkpoint and
``last_checkpoint`` as they were. Importing ``hybridkt_ext.for_openmmlab`` registers it for local
paths.
"""
from __future__ import annotations

from pathlib import Path

from mmengine.fileio.backends import LocalBackend, register_backend

from hybridkt_ext.core import replace_atomically


class AtomicLocalBackend(LocalBackend):
    """mmengine's LocalBackend whose ``put`` and ``put_text`` never leave a partial file."""

    def put(self, obj: bytes, filepath: str | Path) -> None:
        replace_atomically(filepath, lambda f: f.write(obj), overwrite=True)

    def put_text(self, obj: str, filepath: str | Path, encoding: str = "utf-8") -> None:
        replace_atomically(filepath, lambda f: f.write(obj.encode(encoding)), overwrite=True)


register_backend("local", AtomicLocalBackend, force=True, prefixes="")
