"""Wiring any detectron2 meta-architecture's training forward to its hybrid bottom-up.

The meta-architecture's own ``forward`` (GeneralizedRCNN for Faster, Mask, Cascade and Keypoint
R-CNN, RetinaNet, FCOS, PanopticFPN, SemanticSegmentor, or a user's) runs once per path of the
transfer mode; its hybrid bottom-up yields that path's features (``core.TransferStep``), so the
FPN and every head train each path with detectron2's own code. A path's loss is the sum of its
loss dict (what SimpleTrainer optimises). The returned dict holds the balanced total alone,
because SimpleTrainer sums every value; alpha, L1..L3 and the student path's individual losses
go to the EventStorage (metrics.json, TensorBoard) as ``hkt_*`` and ``hkt_L3/<loss>``.

Norm layers outside the student bottom-up (FPN, heads; BN and SyncBN included) keep running
statistics from the student path only: on the hybrid paths they normalise with batch
statistics and update nothing.
"""
from __future__ import annotations

import types
from typing import Any

import torch
from detectron2.utils.events import get_event_storage
from torch import nn

from ..core import InputConvention
from ..core.norm_stats import RunningStatsGuard
from .hybrid_backbone import HybridBottomUp

TOTAL_KEY = "loss_hkt"  # the one key SimpleTrainer sums


def find_hybrid_bottom_up(model: nn.Module) -> HybridBottomUp | None:
    """The hybrid bottom-up of a meta-architecture: its backbone, the backbone's bottom-up
    (FPN), or its net (ViTDet's SimpleFeaturePyramid)."""
    backbone = getattr(model, "backbone", None)
    for candidate in (backbone, getattr(backbone, "bottom_up", None),
                      getattr(backbone, "net", None)):
        if isinstance(candidate, HybridBottomUp):
            return candidate
    return None


def _transfer_forward(self: nn.Module, batched_inputs: Any) -> Any:
    """The meta-architecture's own forward over the transfer mode's paths (bound per model)."""
    own_forward = type(self).forward
    if not self.training:
        return own_forward(self, batched_inputs)
    storage = get_event_storage()
    result = find_hybrid_bottom_up(self).transfer_step.run(
        lambda: own_forward(self, batched_inputs), lambda losses: sum(losses.values()),
        guard=self._hybridkt_guard, step=storage.iter)
    # Raw per-step values (no smoothing), so the alpha curve is the paper's Fig. 7/8.
    scalars = {k: float(v) for k, v in result.log_values.items()}
    scalars.update({f"hkt_L3/{k}": float(v.detach()) for k, v in result.student_losses.items()})
    storage.put_scalars(smoothing_hint=False, **scalars)
    return {TOTAL_KEY: result.total}


def _pixel_convention(model: nn.Module) -> InputConvention | None:
    mean, std = getattr(model, "pixel_mean", None), getattr(model, "pixel_std", None)
    order = getattr(model, "input_format", None)
    if not isinstance(mean, torch.Tensor) or not isinstance(std, torch.Tensor) \
            or mean.numel() != 3 or order not in ("RGB", "BGR"):
        return None
    return InputConvention(tuple(mean.flatten().tolist()), tuple(std.flatten().tolist()), order)


def install_transfer_step(model: nn.Module) -> bool:
    """Makes ``model``'s training forward run its hybrid bottom-up's transfer step (idempotent).

    The wrapper is a method bound to the model, so ``copy.deepcopy`` gives a copy its own. The
    model's pixel convention (PIXEL_MEAN/PIXEL_STD/INPUT.FORMAT, or a LazyConfig model's) becomes
    the student's, which the teacher input transform starts from.

    Returns:
        True if the model has a hybrid bottom-up (now wired), False otherwise.
    """
    bottom_up = find_hybrid_bottom_up(model)
    if bottom_up is None:
        return False
    if "forward" not in vars(model):
        model._hybridkt_guard = RunningStatsGuard(model, exclude=bottom_up.engine)
        model.forward = types.MethodType(_transfer_forward, model)
    convention = _pixel_convention(model)
    if convention is not None:
        bottom_up.adopt_student_input(convention)
    return True
