"""``HybridKTHook``: pre-training checks and teacher integrity for hybrid-forward runs.

alpha, L1, L2 and L3 reach the MessageHub through the loss dict (mmengine's RuntimeInfoHook
stores every ``log_vars`` entry as ``train/<key>``), so LoggerHook, ``vis_data/scalars.json``
and TensorBoard show them at every logging interval with no extra code. This hook does what
the loss dict cannot: fail before the first step if the teacher is not frozen, and verify
after training that the teacher's weights and running statistics are unchanged.
"""
from __future__ import annotations

import torch
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmseg.registry import HOOKS

from hybridkt_ext.core import TeacherNotFrozenError, assert_teacher_frozen

from .hybrid_backbone import HybridBackbone


def _fingerprint(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().double().sum().cpu() for k, v in module.state_dict().items()}


@HOOKS.register_module()
class HybridKTHook(Hook):
    """Checks the frozen teacher before training and its integrity after.

    Args:
        require_hybrid: fail if the model has no HybridBackbone (catches a config whose
            backbone override did not apply).
        verify_teacher_unchanged: compare per-tensor sums of the teacher's state dict after
            training with those before it.
    """

    priority = "VERY_HIGH"

    def __init__(self, require_hybrid: bool = True, verify_teacher_unchanged: bool = True) -> None:
        if not isinstance(require_hybrid, bool) or not isinstance(verify_teacher_unchanged, bool):
            raise ValueError("HybridKTHook: require_hybrid and verify_teacher_unchanged must be "
                             "True or False.")
        self.require_hybrid = require_hybrid
        self.verify_teacher_unchanged = verify_teacher_unchanged
        self._before: dict[str, torch.Tensor] = {}

    @staticmethod
    def find_backbone(model: torch.nn.Module) -> HybridBackbone | None:
        """The HybridBackbone of ``model`` (DDP and other mmengine wrappers unwrapped)."""
        if is_model_wrapper(model):
            model = model.module
        return next((m for m in model.modules() if isinstance(m, HybridBackbone)), None)

    def before_train(self, runner) -> None:
        backbone = self.find_backbone(runner.model)
        if backbone is None:
            if self.require_hybrid:
                raise RuntimeError("HybridKTHook: the model has no HybridBackbone; set "
                                   "model.backbone=dict(type='HybridBackbone', student=..., "
                                   "teacher=...) or remove the hook.")
            return
        if backbone.teacher is None:
            return
        try:
            assert_teacher_frozen(backbone.teacher)
        except TeacherNotFrozenError as err:
            raise TeacherNotFrozenError(f"HybridKTHook, before training: {err}") from err
        if self.verify_teacher_unchanged:
            self._before = _fingerprint(backbone.teacher)
        runner.logger.info(
            f"HybridKTHook: transfer={backbone.transfer}, teacher "
            f"{type(backbone.teacher.model).__name__} frozen, stages "
            + ", ".join(f"{s.name}(C={s.channels},/{s.reduction})"
                        for s in backbone.teacher.stage_specs))

    def after_train(self, runner) -> None:
        backbone = self.find_backbone(runner.model)
        if backbone is None or backbone.teacher is None or not self._before:
            return
        after = _fingerprint(backbone.teacher)
        changed = [k for k, v in after.items() if not torch.equal(v, self._before.get(k, v))]
        if changed:
            raise RuntimeError(f"HybridKTHook: the teacher changed during training: {changed[:5]}"
                               f"{' ...' if len(changed) > 5 else ''}. Something trained or "
                               "re-initialised it; its weights are the transferred knowledge.")
