"""``HybridEncoderDecoder``: mmseg's EncoderDecoder whose training loss runs the three paths.

Each path's features go through the segmentor's own neck, decode head and auxiliary heads;
each path's loss is the sum of those heads' losses (L1: student-first, L2: teacher-first, L3:
student). The core's LossBalancer combines them. Only the balanced total carries "loss" in its
key (mmengine's ``parse_losses`` sums exactly those keys); alpha, L1-L3 and the student path's
accuracies are returned under keys without it, so they are logged but never summed.
Prediction, validation and ``_forward`` are EncoderDecoder's, on the student path alone.

Distributed training (DDP, one process per GPU or, with gloo, per CPU core): alpha comes from
the path losses averaged over ranks (core.LossBalancer), so it is bit-identical on every rank
and the same as one process with the whole batch; the logged hkt_L1..hkt_L3, like every loss
mmengine logs, are the logging rank's own (rank 0), so in a multi-process log alpha is not
exactly 2*L3/(L1+L2) of the row. The frozen teacher has no trainable parameters and every
adapter is on some path, so DDP needs no find_unused_parameters.
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses
from typing import Sequence

import torch
from mmengine.logging import MessageHub
from mmseg.models.segmentors import EncoderDecoder
from mmseg.registry import MODELS
from mmseg.utils import ConfigType, OptConfigType, OptMultiConfig, SampleList

from hybridkt_ext.core import LossBalancer
from hybridkt_ext.core.norm_stats import RunningStatsGuard

from .hybrid_backbone import HybridBackbone
from .teacher_config import convention_from_preprocessor

TOTAL_KEY = "loss_hkt"  # the only key with "loss" in it: what the optimiser sees


def _student_input_from(data_preprocessor: OptConfigType) -> dict | None:
    convention = convention_from_preprocessor(data_preprocessor)
    return None if convention is None else dataclasses.asdict(convention)


@MODELS.register_module()
class HybridEncoderDecoder(EncoderDecoder):
    """EncoderDecoder with hybrid-forward training (backbone must be ``HybridBackbone``).

    Args:
        balance: ``dict(mode='dynamic'|'fixed', fixed_alpha=1.0, sync_across_ranks=True)``,
            core.LossBalancer's arguments; used with transfer='hybrid' (other transfers train
            the student path alone).
        Others: as mmseg's EncoderDecoder.
    """

    def __init__(self, backbone: ConfigType, decode_head: ConfigType,
                 neck: OptConfigType = None, auxiliary_head: OptConfigType = None,
                 train_cfg: OptConfigType = None, test_cfg: OptConfigType = None,
                 data_preprocessor: OptConfigType = None, pretrained: str | None = None,
                 init_cfg: OptMultiConfig = None, balance: dict | None = None) -> None:
        if backbone.get("type") not in ("HybridBackbone", HybridBackbone):
            raise ValueError("HybridEncoderDecoder needs backbone=dict(type='HybridBackbone', "
                             f"student=..., teacher=...), got type={backbone.get('type')!r}.")
        backbone = copy.deepcopy(backbone)
        if pretrained is not None:
            # EncoderDecoder would set it on the wrapper; it belongs to the student.
            backbone["student"]["pretrained"] = pretrained
            pretrained = None
        if backbone.get("student_input") is None:
            backbone["student_input"] = _student_input_from(data_preprocessor)
        super().__init__(backbone=backbone, decode_head=decode_head, neck=neck,
                         auxiliary_head=auxiliary_head, train_cfg=train_cfg, test_cfg=test_cfg,
                         data_preprocessor=data_preprocessor, pretrained=None,
                         init_cfg=init_cfg)
        balance = dict(balance or {})
        mode = balance.pop("mode", "dynamic")
        if mode not in ("dynamic", "fixed"):
            raise ValueError(f"HybridEncoderDecoder: balance.mode={mode!r} must be 'dynamic' or "
                             "'fixed'; for student-only training set backbone.transfer='none'.")
        unknown = set(balance) - {"fixed_alpha", "sync_across_ranks"}
        if unknown:
            raise ValueError(f"HybridEncoderDecoder: model.balance has unknown keys "
                             f"{sorted(unknown)}; allowed: mode, fixed_alpha, sync_across_ranks "
                             "(e.g. balance=dict(mode='fixed', fixed_alpha=0.5)).")
        uses_paths = self.backbone.transfer == "hybrid"
        self.balancer = LossBalancer(mode if uses_paths else "student_only", **balance)
        heads = [m for m in (getattr(self, "neck", None), self.decode_head,
                             getattr(self, "auxiliary_head", None)) if m is not None]
        # Hybrid-path features must not move the heads' BN running statistics either.
        self._head_guards = [RunningStatsGuard(m) for m in heads]

    def _path_losses(self, feats: Sequence[torch.Tensor],
                     data_samples: SampleList) -> tuple[torch.Tensor, dict]:
        """Runs the neck and every head on one path; returns (summed loss, non-loss values)."""
        feats = list(feats)
        if self.with_neck:
            feats = self.neck(feats)
        losses = self._decode_head_forward_train(feats, data_samples)
        if self.with_auxiliary_head:
            losses.update(self._auxiliary_head_forward_train(feats, data_samples))
        total = None
        others = {}
        for key, value in losses.items():
            if "loss" not in key:
                others[key] = value
                continue
            value = sum(v.mean() for v in value) if isinstance(value, list) else value.mean()
            total = value if total is None else total + value
        if total is None:
            raise ValueError("the heads returned no key containing 'loss'; check loss_decode.")
        return total, others

    def _hybrid_path_losses(self, feats: Sequence[torch.Tensor],
                            data_samples: SampleList) -> torch.Tensor:
        with contextlib.ExitStack() as stack:
            for guard in self._head_guards:
                stack.enter_context(guard.frozen())
            return self._path_losses(feats, data_samples)[0]

    def loss(self, inputs: torch.Tensor, data_samples: SampleList) -> dict:
        """Three-path (or baseline) losses for one batch.

        Args:
            inputs: (N, 3, H, W) images, normalised by the data preprocessor.
            data_samples: SegDataSamples with ``gt_sem_seg``.

        Returns:
            ``{"loss_hkt": total, "hkt_alpha", "hkt_L1", "hkt_L2", "hkt_L3", <head>.acc_seg,
            ["hkt_transfer"]}``.
        """
        transfer = self.backbone.transfer
        extra: dict[str, torch.Tensor] = {}
        l1 = l2 = None
        if transfer == "hybrid":
            paths = self.backbone.forward_hybrid(inputs)
            l3, accuracies = self._path_losses(paths.student, data_samples)
            l1 = self._hybrid_path_losses(paths.student_first, data_samples)
            l2 = self._hybrid_path_losses(paths.teacher_first, data_samples)
        elif transfer in ("fitnet", "at"):
            feats, transfer_loss = self.backbone.forward_with_teacher(inputs)
            l3, accuracies = self._path_losses(feats, data_samples)
            extra["hkt_transfer"] = transfer_loss.detach()
            l3 = l3 + transfer_loss  # the baselines add their mimic loss to the task loss
        else:
            l3, accuracies = self._path_losses(self.backbone(inputs), data_samples)
        # The iteration names the step if a path loss is non-finite (LossBalancer raises).
        step = MessageHub.get_current_instance().get_info("iter")
        balanced = self.balancer(l1, l2, l3, step=step)
        out = {TOTAL_KEY: balanced.total}
        out.update(balanced.log_values())
        out.update({k: v.detach() if isinstance(v, torch.Tensor) else v
                    for k, v in accuracies.items()})
        out.update(extra)
        return out
