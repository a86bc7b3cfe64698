"""``SafeDetectionCheckpointer``: detectron2's checkpointer, reading files without running code.

detectron2 reads ``.pkl`` weights (its model zoo, ``MODEL.WEIGHTS``) with a full
``pickle.load``: a pickle that names ``os.system`` runs it. This checkpointer first reads a
``.pkl`` with the project's restricted unpickler, which rebuilds only containers and numpy
arrays and refuses anything else with a message naming the class; only a file that passes is
handed to detectron2's own reader, which then resolves exactly the same harmless globals.
``.pth`` files go through fvcore's ``torch.load`` (weights-only under torch >= 2.6); a refusal
there is reported the same way. ``MODEL.HYBRIDKT.TRUST_CHECKPOINTS True`` skips the checks.
"""
from __future__ import annotations

import pickle
from typing import Any

import torch
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.utils.file_io import PathManager
from torch import nn

from ..core import read_checkpoint_file


class SafeDetectionCheckpointer(DetectionCheckpointer):
    """DetectionCheckpointer whose reads never unpickle a class outside the allowlist.

    Args:
        model, save_dir, checkpointables: as DetectionCheckpointer.
        trust: read every file with a full unpickler (only for files you trust).
    """

    def __init__(self, model: nn.Module, save_dir: str = "", *, trust: bool = False,
                 **checkpointables: Any) -> None:
        super().__init__(model, save_dir, **checkpointables)
        if not isinstance(trust, bool):
            raise ValueError(f"MODEL.HYBRIDKT.TRUST_CHECKPOINTS must be True or False, got "
                             f"{trust!r}")
        self.trust = trust

    def _load_file(self, filename: str) -> dict[str, Any]:
        if filename.endswith(".pkl") and not self.trust:
            read_checkpoint_file(PathManager.get_local_path(filename))  # raises if unsafe
        return super()._load_file(filename)

    def _torch_load(self, f: str) -> Any:
        if self.trust:
            return torch.load(f, map_location=torch.device("cpu"), weights_only=False)
        try:
            return super()._torch_load(f)
        except pickle.UnpicklingError:
            # Re-read with the project's reader for a one-line refusal naming the class.
            return read_checkpoint_file(PathManager.get_local_path(f))
