"""``HybridKTHook``: guards the frozen teacher and records alpha and the path losses."""
from __future__ import annotations

import logging
from pathlib import Path

from detectron2.engine import HookBase
from detectron2.utils import comm
from torch import nn
from torch.nn.parallel import DataParallel, DistributedDataParallel

from ..core import TeacherGuard
from ..plotting import RECORDED_KEYS, plot_alpha_and_path_losses

logger = logging.getLogger(__name__)



def unwrap_model(model: nn.Module) -> nn.Module:
    """The model inside (Distributed)DataParallel, or the model itself."""
    while isinstance(model, (DistributedDataParallel, DataParallel)):
        model = model.module
    return model


def find_teacher(model: nn.Module) -> nn.Module | None:
    """The frozen teacher of a hybrid model (None for a plain model or TRANSFER 'none')."""
    from .transfer_wiring import find_hybrid_bottom_up

    bottom_up = find_hybrid_bottom_up(unwrap_model(model))
    return bottom_up.engine.teacher if bottom_up is not None else None


class HybridKTHook(HookBase):
    """Checks the teacher is frozen before training and unchanged after it; keeps alpha and
    L1..L3 of every step and plots them at the end.

    Works under AMPTrainer and ``launch`` (the model is unwrapped from DDP; only the main
    process writes the plot).

    Args:
        plot_path: PNG to write with ``plot_alpha_and_path_losses`` after training, or None.
    """

    def __init__(self, plot_path: str | Path | None = None) -> None:
        self.plot_path = plot_path
        self.rows: list[dict[str, float]] = []
        self._guard: TeacherGuard | None = None

    def before_train(self) -> None:
        teacher = find_teacher(self.trainer.model)
        if teacher is None:
            return
        # The teacher's weights are the knowledge being transferred: training must not move them.
        self._guard = TeacherGuard(teacher, "HybridKTHook")
        self._guard.before_training()

    def after_step(self) -> None:
        storage = self.trainer.storage
        row = {k: v for k, (v, it) in storage.latest().items()
               if _recorded(k) and it == storage.iter}
        if row:
            self.rows.append({"step": storage.iter, **row})

    def after_train(self) -> None:
        if self._guard is not None:
            self._guard.after_training()
        # Baselines (no teacher, FitNet, AT) log L3 alone: there is no alpha curve to draw.
        has_alpha = any(k.partition("/")[0] == "hkt_alpha" for row in self.rows for k in row)
        if self.plot_path and has_alpha and comm.is_main_process():
            plot_alpha_and_path_losses({"hybridkt": self.rows}, self.plot_path)
            logger.info("alpha and path losses plotted to %s", self.plot_path)


# Several teachers log hkt_alpha/<name>, hkt_L1/<name>, hkt_L2/<name> and, sampling one per
# step, hkt_teacher (core.transfer_step); one teacher logs RECORDED_KEYS.
_PER_TEACHER = ("hkt_alpha/", "hkt_L1/", "hkt_L2/")


def _recorded(key: str) -> bool:
    return key in RECORDED_KEYS or key.startswith(_PER_TEACHER) or key == "hkt_teacher"

