"""mmengine's loader for local checkpoint files, through the project's safe reader.

mmengine reads every local checkpoint (``load_from``, ``--resume``, testing) with a bare
``torch.load``. Under torch >= 2.6 that is ``weights_only=True``, which refuses mmengine's own
files (their message hub holds ``HistoryBuffer`` objects) with a long pickle traceback. The
loader registered here reads them with ``read_checkpoint_file``: mmengine's classes are
allowlisted, a file naming any other class is refused in one line that names the class and
the opt-in, and a truncated or empty file is named as such. ``trust_local_checkpoints(True)``
(the tools' ``--trust-checkpoint``) lifts the allowlist for a run whose files the user trusts.
"""
from __future__ import annotations

import os.path as osp
from typing import Any

from mmengine.runner.checkpoint import CheckpointLoader

from hybridkt_ext.core import allow_framework_checkpoints, read_checkpoint_file

_TRUST = [False]  # set by the tools from --trust-checkpoint, read at every load


def trust_local_checkpoints(trust: bool) -> None:
    """Whether mmengine's local loads may unpickle any class (only for files you trust)."""
    if not isinstance(trust, bool):
        raise ValueError(f"trust must be True or False, got {trust!r}.")
    _TRUST[0] = trust


def trust_checkpoints_of_run(cfg: Any) -> None:
    """``--trust-checkpoint``: every file of this run may unpickle any class.

    Covers mmengine's own loads (``load_from``, ``--resume``) and the teacher file of a
    ``HybridBackbone`` config (``teacher.trust_checkpoint=True``).
    """
    trust_local_checkpoints(True)
    backbone = (cfg.get("model") or {}).get("backbone") or {}
    if backbone.get("type") == "HybridBackbone" and isinstance(backbone.get("teacher"), dict):
        backbone["teacher"]["trust_checkpoint"] = True


@CheckpointLoader.register_scheme(prefixes="", force=True)
def load_local_checkpoint(filename: str, map_location: Any = None) -> Any:
    """mmengine's ``load_from_local``, read without running code from the file."""
    return read_checkpoint_file(osp.expanduser(filename), trust=_TRUST[0],
                                map_location=map_location)


# mmengine code that calls torch.load itself still reads its own checkpoints.
allow_framework_checkpoints()
