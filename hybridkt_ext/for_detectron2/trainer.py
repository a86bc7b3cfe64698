"""``HybridKTTrainer``: detectron2's DefaultTrainer with the evaluator of each dataset's
``evaluator_type`` (MR^-2 for CityPersons) and the hybridkt hook, runnable wherever ``launch``
runs, CPU processes included.

DefaultTrainer wraps the model with ``create_ddp_model(model, broadcast_buffers=False)``, which
sets ``device_ids=[local_rank]``; torch's DistributedDataParallel rejects ``device_ids`` for a CPU
module, so ``launch`` with CPU processes (gloo, what launch picks without a GPU) failed before
the first step. This trainer runs DefaultTrainer's own constructor with that one call made
CPU-aware (``device_ids=None`` for a CPU model), and swaps its checkpointer for the safe one
before the hooks take it. Everything else is DefaultTrainer's, SOLVER.AMP.ENABLED (AMPTrainer)
included. The teacher is frozen (``requires_grad=False``), so DDP leaves it out of its gradient
buckets and needs no ``find_unused_parameters``.
"""
from __future__ import annotations

import contextlib
import logging
import os
import weakref
from typing import Iterator

import torch
from detectron2.config import CfgNode
from detectron2.engine import DefaultTrainer, defaults, hooks
from detectron2.evaluation import DatasetEvaluator
from detectron2.utils import comm
from torch import nn

from ..core import TeacherGuard, TeacherSource
from ..plotting import PLOT_NAME
from .evaluators import build_dataset_evaluator
from .hooks import HybridKTHook, find_teacher
from .safe_checkpointer import SafeDetectionCheckpointer
from .teacher import teacher_entries
from .transfer_wiring import install_transfer_step

logger = logging.getLogger(__name__)


def check_amp_supported(cfg: CfgNode) -> None:
    """Fails at construction, not at the first step, where AMPTrainer cannot run.

    Raises:
        ValueError: SOLVER.AMP.ENABLED without CUDA (detectron2's AMPTrainer runs float16
            ``torch.cuda.amp.autocast`` and asserts ``torch.cuda.is_available()`` every step).
    """
    if not cfg.SOLVER.AMP.ENABLED:
        return
    if not torch.cuda.is_available() or not str(cfg.MODEL.DEVICE).startswith("cuda"):
        raise ValueError(
            f"SOLVER.AMP.ENABLED is True but MODEL.DEVICE is {cfg.MODEL.DEVICE!r} and CUDA is "
            f"{'' if torch.cuda.is_available() else 'not '}available: detectron2's AMPTrainer "
            "runs CUDA float16 autocast only. Set SOLVER.AMP.ENABLED False, or MODEL.DEVICE "
            "'cuda' on a GPU machine"
        )


def ddp_device_ids(model: nn.Module) -> list[int] | None:
    """``device_ids`` for DistributedDataParallel: the local GPU, or None for a CPU model."""
    device = next(model.parameters()).device
    return [comm.get_local_rank()] if device.type == "cuda" else None


@contextlib.contextmanager
def _cpu_aware_ddp() -> Iterator[None]:
    """DefaultTrainer.__init__'s ``create_ddp_model`` (looked up in its module when it runs)
    with ``device_ids`` from ``ddp_device_ids``: the one call of that constructor that cannot
    run on CPU processes. Restored on exit."""
    original = defaults.create_ddp_model

    def create_ddp_model(model: nn.Module, **kwargs):
        kwargs.setdefault("device_ids", ddp_device_ids(model))
        return original(model, **kwargs)

    defaults.create_ddp_model = create_ddp_model
    try:
        yield
    finally:
        defaults.create_ddp_model = original


class HybridKTTrainer(DefaultTrainer):
    """DefaultTrainer + evaluation by dataset type + ``HybridKTHook`` + CPU-process DDP."""

    def __init__(self, cfg: CfgNode) -> None:
        check_amp_supported(cfg)
        with _cpu_aware_ddp():
            super().__init__(cfg)

    def resume_or_load(self, resume: bool = True) -> None:
        """DefaultTrainer's, with the core's policy for a teacher that changed (``TeacherGuard``).

        detectron2 checkpoints hold the whole model, teacher included. The teacher always comes
        from MODEL.HYBRIDKT.TEACHER.WEIGHTS (each of MODEL.HYBRIDKT.TEACHERS from its own): it
        is put back after the load. ``--resume`` with a
        checkpoint whose teacher differs is refused (``TeacherMismatchError``): the run would
        otherwise go on with another teacher than it was trained with. Loading MODEL.WEIGHTS
        without resuming (another run's hybrid checkpoint, evaluation) only warns.
        """
        teacher = find_teacher(self.model)
        resuming = resume and self.checkpointer.has_checkpoint()
        source = self.checkpointer.get_checkpoint_file() if resuming else self.cfg.MODEL.WEIGHTS
        if teacher is None:
            super().resume_or_load(resume=resume)
            return
        guard = TeacherGuard(teacher, "HybridKTTrainer")
        built = guard.fingerprint()
        saved = {k: v.clone() for k, v in teacher.state_dict().items()}
        super().resume_or_load(resume=resume)
        trained_with = guard.fingerprint()  # the checkpoint's teacher, if it held one
        if trained_with == built:
            return
        teacher.load_state_dict(saved)
        # Several teachers are fingerprinted as one set, in order: a changed or reordered list
        # is another set of teachers.
        entries = teacher_entries(self.cfg)
        files = [e.node.WEIGHTS or None for e in entries]
        random_init = any(f is None for f in files)
        if len(entries) == 1:
            key, named = f"{entries[0].where}.WEIGHTS", files[0]
        else:
            key = "MODEL.HYBRIDKT.TEACHERS[*].WEIGHTS (the same files, in the same order)"
            named = None if random_init else ", ".join(files)
        warning = guard.check_loaded(
            trained_with, TeacherSource(
                key, named,
                "start a new run (another OUTPUT_DIR, without --resume) with MODEL.WEIGHTS "
                "set to the checkpoint"),
            resuming, trained_from=source, random_init=random_init)
        logger.warning(warning)

    @classmethod
    def build_model(cls, cfg: CfgNode) -> nn.Module:
        """DefaultTrainer's model, its training forward wired to the hybrid bottom-up's
        transfer step whatever the meta-architecture (RetinaNet, PanopticFPN, ...)."""
        model = super().build_model(cfg)
        install_transfer_step(model)
        return model

    @classmethod
    def build_evaluator(cls, cfg: CfgNode, dataset_name: str,
                        output_folder: str | None = None) -> DatasetEvaluator:
        """The evaluator detectron2's train_net builds for the dataset's ``evaluator_type``
        (COCO, LVIS, Cityscapes, VOC, semantic, panoptic), MR^-2 for "citypersons".

        Raises:
            UnknownEvaluatorTypeError: a type it knows no evaluator for (override this).
        """
        output_folder = output_folder or os.path.join(cfg.OUTPUT_DIR, "inference")
        return build_dataset_evaluator(dataset_name, output_folder)

    def build_hooks(self) -> list[hooks.HookBase]:
        # DefaultTrainer.__init__ calls this right after building its DetectionCheckpointer:
        # the hooks (PeriodicCheckpointer) must hold the safe one.
        plain = self.checkpointer
        self.checkpointer = SafeDetectionCheckpointer(
            plain.model, plain.save_dir, trust=self.cfg.MODEL.HYBRIDKT.TRUST_CHECKPOINTS,
            trainer=weakref.proxy(self))
        ret = super().build_hooks()
        plot = os.path.join(self.cfg.OUTPUT_DIR, PLOT_NAME)
        # Before the writer (main process only), so its last write sees this step's values.
        writers = [i for i, h in enumerate(ret) if isinstance(h, hooks.PeriodicWriter)]
        ret.insert(writers[0] if writers else len(ret), HybridKTHook(plot_path=plot))
        return ret
