"""Wiring any mmseg segmentor's or mmdet detector's ``loss`` to its HybridBackbone's transfer step.

The model's own ``loss`` (mmseg's ``EncoderDecoder``, ``CascadeEncoderDecoder`` for OCRNet and
PointRend, mmdet's detectors, or a subclass of the user's) runs once per path; the backbone
yields that path's features (``core.TransferStep``). Each path's loss dict is reduced by the
model's own ``parse_losses`` (mmengine sums the keys containing "loss"), and the balanced total is returned
under the only key containing "loss", so mmengine optimises exactly it. alpha, L1..L3, the
student path's own head losses (``hkt_L3.decode.ce``...) and accuracies are returned under keys
without "loss": logged, never summed.

Norm layers outside the student backbone (necks, decode, auxiliary and detection heads) keep running
statistics from the student path only: on the hybrid paths they normalise with batch
statistics and update nothing.

Distributed training (DDP, one process per GPU or, with gloo, per CPU core): alpha comes from
the path losses averaged over ranks (core.LossBalancer), so it is bit-identical on every rank;
the logged hkt_L1..hkt_L3, like every loss mmengine logs, are the logging rank's own.
"""
from __future__ import annotations

import types

import torch
from mmengine.logging import MessageHub
from torch import nn

from hybridkt_ext.core import InputConvention
from hybridkt_ext.core.norm_stats import RunningStatsGuard

from .head_fit import check_heads_fit
from .hybrid_backbone import OpenMMLabHybridBackbone

TOTAL_KEY = "loss_hkt"  # the only key with "loss" in it: what the optimiser sees


def _transfer_loss(self: nn.Module, inputs, data_samples) -> dict:
    """The segmentor's own loss over the transfer mode's paths, balanced (bound per model)."""
    own_loss = type(self).loss  # the class's loss: EncoderDecoder's, or the user's subclass's
    result = self.backbone.transfer_step.run(
        lambda: own_loss(self, inputs, data_samples),
        lambda losses: self.parse_losses(losses)[0],
        guard=self._hybridkt_guard, step=MessageHub.get_current_instance().get_info("iter"))
    out = {TOTAL_KEY: result.total, **result.log_values}
    for key, value in result.student_losses.items():
        if "loss" in key:
            # The student path's own head losses, comparable with a baseline run's
            # ``decode.loss_ce``, under a key mmengine logs but does not sum.
            value = sum(v.mean() for v in value) if isinstance(value, list) else value.mean()
            out[student_loss_key(key)] = value.detach()
        else:  # the heads' own metrics (acc_seg...) of the student path
            out[key] = value.detach() if hasattr(value, "detach") else value
    return out


def student_loss_key(key: str) -> str:
    """``decode.loss_ce`` -> ``hkt_L3.decode.ce``: no "loss" in it, so mmengine never sums it."""
    return "hkt_L3." + key.replace("loss_", "").replace("loss", "")


def install_transfer_step(segmentor: nn.Module) -> bool:
    """Makes ``segmentor.loss`` run its HybridBackbone's transfer step (idempotent).

    The wrapper is a method bound to the segmentor, so ``copy.deepcopy`` (EMA hooks, tests)
    gives the copy a wrapper of its own.

    Returns:
        True if the segmentor has a HybridBackbone (now wired), False otherwise.

    Raises:
        StageMismatchError: the neck or heads do not take what the backbone returns.
    """
    backbone = getattr(segmentor, "backbone", None)
    if not isinstance(backbone, OpenMMLabHybridBackbone):
        return False
    check_heads_fit(segmentor, backbone)
    if "loss" not in vars(segmentor):
        segmentor._hybridkt_guard = RunningStatsGuard(segmentor, exclude=backbone.engine)
        segmentor.loss = types.MethodType(_transfer_loss, segmentor)
    convention = _preprocessor_convention(getattr(segmentor, "data_preprocessor", None))
    if convention is not None:
        backbone.adopt_student_input(convention)
    return True


def _preprocessor_convention(preprocessor: nn.Module | None) -> InputConvention | None:
    """What a built data preprocessor feeds the backbone (mmcv loads images BGR).

    mmseg's SegDataPreProcessor names the BGR->RGB switch ``channel_conversion``, mmengine's
    ImgDataPreprocessor (mmdet's DetDataPreprocessor) ``_channel_conversion``.
    """
    mean, std = getattr(preprocessor, "mean", None), getattr(preprocessor, "std", None)
    if not isinstance(mean, torch.Tensor) or not isinstance(std, torch.Tensor) \
            or mean.numel() != 3:
        return None
    converts = getattr(preprocessor, "channel_conversion",
                       getattr(preprocessor, "_channel_conversion", False))
    order = "RGB" if converts else "BGR"
    return InputConvention(tuple(mean.flatten().tolist()), tuple(std.flatten().tolist()), order)
