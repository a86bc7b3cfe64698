"""``SafeDetectionCheckpointer``: detectron2's checkpointer, reading files without running code.

detectron2 reads ``.pkl`` weights (its model zoo, ``MODEL.WEIGHTS``) with a full
``pickle.load``: a pickle that names ``os.system`` runs it. This checkpointer first reads a
``.pkl`` with the project's restricted unpickler, which rebuilds only containers and numpy
arrays and refuses anything else with a message naming the class; only a file that passes is
handed to detectron2's own reader, which then resolves exactly the same harmless globals.
``.pth`` files go through fvcore's ``torch.load`` (weights-only under torch >= 2.6); a refusal
there is reported the same way. ``MODEL.HYBRIDKT.TRUST_CHECKPOINTS True`` skips the checks.

Writes are atomic on local disks: a checkpoint and ``last_checkpoint`` go through a synced
temporary file renamed into place, so a full disk or a kill mid-save leaves the previous
checkpoint, and ``--resume`` never meets a truncated file.
"""
from __future__ import annotations

import os
import pickle
from typing import Any

import torch
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.utils.file_io import PathManager
from torch import nn

from ..core import read_checkpoint_file, save_atomically, write_text_atomically


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

    def _local(self) -> bool:
        return "://" not in self.save_dir

    def save(self, name: str, **kwargs: Any) -> None:
        """fvcore's ``Checkpointer.save``, written atomically where ``save_dir`` is local."""
        if not self.save_dir or not self.save_to_disk or not self._local():
            return super().save(name, **kwargs)
        data = {"model": self.model.state_dict(),
                **{key: obj.state_dict() for key, obj in self.checkpointables.items()},
                **kwargs}
        basename = f"{name}.pth"
        save_file = os.path.join(self.save_dir, basename)
        self.logger.info(f"Saving checkpoint to {save_file}")
        save_atomically(data, save_file, overwrite=True)
        self.tag_last_checkpoint(basename)

    def tag_last_checkpoint(self, last_filename_basename: str) -> None:
        if not self._local():
            return super().tag_last_checkpoint(last_filename_basename)
        write_text_atomically(os.path.join(self.save_dir, "last_checkpoint"),
                              last_filename_basename, overwrite=True)
