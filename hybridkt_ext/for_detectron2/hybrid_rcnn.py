"""``HybridRCNN``: GeneralizedRCNN whose training step runs every forward path through its heads.

Training (TRANSFER "hybrid"): each path's FPN features go through the proposal generator and the
ROI heads with the ground truth; a path's loss is the sum of its RPN and ROI losses (L1
student-first, L2 teacher-first, L3 student); the core balancer combines them. detectron2's
SimpleTrainer sums *every* value of the returned dict, so the dict holds the balanced total
alone; alpha and the path losses go to the EventStorage (metrics.json, TensorBoard).

Inference is GeneralizedRCNN's own on the student path: zero overhead, plain outputs.
"""
from __future__ import annotations

from typing import Any

import torch
from detectron2.config import CfgNode, configurable
from detectron2.modeling import META_ARCH_REGISTRY, GeneralizedRCNN
from detectron2.structures import ImageList, Instances
from detectron2.utils.events import get_event_storage
from torch import nn

from ..core import AttentionTransferLoss, FitNetLoss, LossBalancer
from .config import CONFIG_BALANCE_MODES, TRANSFER_MODES
from .hybrid_backbone import HybridFPN

# The one key SimpleTrainer sums in hybrid mode.
BALANCED_LOSS_KEY = "loss_hybrid_balanced"


def _feature_loss(cfg: CfgNode, backbone: HybridFPN) -> nn.Module | None:
    hk = cfg.MODEL.HYBRIDKT
    if hk.TRANSFER == "fitnet":
        engine = backbone.engine
        return FitNetLoss([s.channels for s in engine.student.stage_specs],
                          [s.channels for s in engine.teacher.stage_specs],
                          stages=list(hk.FITNET_STAGES) or None, weight=hk.FITNET_WEIGHT)
    if hk.TRANSFER == "at":
        return AttentionTransferLoss(stages=list(hk.AT_STAGES) or None, beta=hk.AT_BETA)
    return None


def _reject_shared_running_stats(model: nn.Module) -> None:
    """The FPN and the heads run on all three paths; BatchNorm there would take its running
    statistics from the hybrid paths' features too, which evaluation (student path) never sees.
    The student bottom-up is exempt: the engine updates its statistics on the student path only.
    """
    shared = [name for name, m in model.named_modules()
              if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats
              and not name.startswith("backbone.bottom_up.")]
    if shared:
        raise ValueError(
            f"MODEL.HYBRIDKT.TRANSFER 'hybrid' runs the FPN and the heads on every path, so their "
            f"BatchNorm layers ({', '.join(shared[:3])}{', ...' if len(shared) > 3 else ''}) "
            "would keep running statistics of the hybrid paths; set MODEL.FPN.NORM and "
            "MODEL.ROI_BOX_HEAD.NORM to 'GN', 'FrozenBN' or ''"
        )


@META_ARCH_REGISTRY.register()
class HybridRCNN(GeneralizedRCNN):
    """GeneralizedRCNN trained with hybrid forward (or a FitNet / AT / no-teacher baseline).

    Args:
        transfer: one of ``TRANSFER_MODES``.
        balancer: combines L1, L2, L3 (mode "student_only" for every non-hybrid transfer).
        feature_loss: FitNetLoss / AttentionTransferLoss for those baselines, else None.
        **kwargs: GeneralizedRCNN's arguments.
    """

    @configurable
    def __init__(self, *, transfer: str, balancer: LossBalancer,
                 feature_loss: nn.Module | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if transfer not in TRANSFER_MODES:
            raise ValueError(
                f"MODEL.HYBRIDKT.TRANSFER is {transfer!r}; use one of {TRANSFER_MODES}"
            )
        if transfer != "none" and not isinstance(self.backbone, HybridFPN):
            raise ValueError(
                f"MODEL.HYBRIDKT.TRANSFER {transfer!r} needs MODEL.BACKBONE.NAME "
                f"'build_hybridkt_fpn_backbone', got a {type(self.backbone).__name__}"
            )
        if transfer == "hybrid":
            _reject_shared_running_stats(self)
        self.transfer = transfer
        self.balancer = balancer
        self.feature_loss = feature_loss

    @classmethod
    def from_config(cls, cfg: CfgNode) -> dict[str, Any]:
        ret = super().from_config(cfg)
        hk = cfg.MODEL.HYBRIDKT
        if hk.BALANCE not in CONFIG_BALANCE_MODES:
            raise ValueError(
                f"MODEL.HYBRIDKT.BALANCE is {hk.BALANCE!r}; use one of {CONFIG_BALANCE_MODES} "
                "(train without a teacher with MODEL.HYBRIDKT.TRANSFER 'none')"
            )
        mode = hk.BALANCE if hk.TRANSFER == "hybrid" else "student_only"
        ret.update(transfer=hk.TRANSFER, balancer=LossBalancer(mode, hk.FIXED_ALPHA),
                   feature_loss=_feature_loss(cfg, ret["backbone"]))
        return ret

    def forward(self, batched_inputs: list[dict[str, Any]]) -> Any:
        """Training: a loss dict SimpleTrainer may sum. Inference: GeneralizedRCNN's outputs."""
        if not self.training:
            return self.inference(batched_inputs)
        images = self.preprocess_image(batched_inputs)
        if "instances" not in batched_inputs[0]:
            raise ValueError("HybridRCNN training needs ground-truth 'instances' in every input")
        gt_instances = [x["instances"].to(self.device) for x in batched_inputs]
        storage = get_event_storage()

        if self.transfer == "hybrid":
            paths = self.backbone.forward_hybrid(images.tensor)
            l1 = self._path_loss(images, paths.student_first, gt_instances)
            l2 = self._path_loss(images, paths.teacher_first, gt_instances)
            # The student path runs last so the heads' own storage scalars describe it.
            student_losses = self._task_losses(images, paths.student, gt_instances, batched_inputs)
            balanced = self.balancer(l1, l2, sum(student_losses.values()))
            self._log(storage, balanced.log_values(), student_losses)
            return {BALANCED_LOSS_KEY: balanced.total}

        if self.transfer == "none":
            features = self.backbone(images.tensor)
            losses = self._task_losses(images, features, gt_instances, batched_inputs)
        else:  # FitNet / AT: the teacher is a feature target only
            features, s_stages, t_stages = self.backbone.forward_with_teacher(images.tensor)
            losses = self._task_losses(images, features, gt_instances, batched_inputs)
            losses[f"loss_{self.transfer}"] = self.feature_loss(s_stages, t_stages)
        l3 = sum(v for k, v in losses.items() if not k.startswith(f"loss_{self.transfer}"))
        balanced = self.balancer(None, None, l3)  # raises on a non-finite student loss
        self._log(storage, {"hkt_L3": balanced.l3}, {})
        return losses

    def _task_losses(self, images: ImageList, features: dict[str, torch.Tensor],
                     gt_instances: list[Instances],
                     batched_inputs: list[dict[str, Any]] | None = None) -> dict[str, torch.Tensor]:
        """The RPN and ROI-head losses of one path, detectron2's own."""
        proposals, proposal_losses = self.proposal_generator(images, features, gt_instances)
        _, detector_losses = self.roi_heads(images, features, proposals, gt_instances)
        if batched_inputs is not None and self.vis_period > 0:
            if get_event_storage().iter % self.vis_period == 0:
                self.visualize_training(batched_inputs, proposals)
        return {**detector_losses, **proposal_losses}

    def _path_loss(self, images: ImageList, features: dict[str, torch.Tensor],
                   gt_instances: list[Instances]) -> torch.Tensor:
        return sum(self._task_losses(images, features, gt_instances).values())

    @staticmethod
    def _log(storage: Any, values: dict[str, torch.Tensor],
             student_losses: dict[str, torch.Tensor]) -> None:
        # Raw per-step values (no smoothing) so the alpha curve is the paper's Fig. 7/8.
        scalars = {k: float(v) for k, v in values.items()}
        scalars.update({f"hkt_L3/{k}": float(v.detach()) for k, v in student_losses.items()})
        storage.put_scalars(smoothing_hint=False, **scalars)
