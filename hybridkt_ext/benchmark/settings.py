"""The benchmark's settings: model pairs, tasks, input sizes, and how each is built.

Needs only torch + torchvision: torchvision's DeepLabV3 head stands in for mmseg's decode
head, and torchvision's Faster R-CNN FPN, RPN and ROI heads for detectron2's.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from hybridkt_ext.core import HybridForward, align_stages, split_backbone
from hybridkt_ext.core.zoo_teachers import build_zoo_model, is_zoo_name, split_zoo_model
from hybridkt_ext.for_classification.models import build_classifier, classifier_head


@dataclass
class Setting:
    """One model pair, task and input size (``small_*`` for --small)."""

    name: str
    teacher: str
    student: str
    task: str          # "cls", "seg" or "det"
    batch: int
    size: tuple[int, int]
    small_batch: int
    small_size: tuple[int, int]


SETTINGS = {
    "cls_r50_mbv1": Setting("cls_r50_mbv1", "resnet50", "mobilenet_v1", "cls", 32, (224, 224),
                            4, (64, 64)),
    "cls_r50_r50": Setting("cls_r50_r50", "resnet50", "resnet50", "cls", 32, (224, 224),
                           4, (64, 64)),
    # Batch 2 at least: the ASPP pooling branch's BatchNorm sees one value per image.
    "seg_r101_r18": Setting("seg_r101_r18", "resnet101", "resnet18", "seg", 2, (512, 1024),
                            2, (64, 128)),
    # CityPersons scale; a pedestrian detector's usual batch of 2 images per GPU.
    "det_r50_mbv1": Setting("det_r50_mbv1", "resnet50", "mobilenet_v1", "det", 2, (1024, 2048),
                            1, (128, 256)),
    # A transformer student: SegFormer's MiT-B0 (mmseg's own module) under the DeepLab teacher.
    "seg_r101_mitb0": Setting("seg_r101_mitb0", "resnet101", "mmseg.mit_b0", "seg", 2,
                              (512, 1024), 2, (64, 128)),
    # detectron2's default detector backbone: FrozenBN everywhere, so the student keeps no
    # batch statistics and its paired stages fuse (the FPN takes every stage, as in R-CNN).
    "det_r101_r50-frozenbn": Setting("det_r101_r50-frozenbn", "resnet101-frozenbn",
                                     "resnet50-frozenbn", "det", 2, (1024, 2048), 1, (128, 256)),
    # A teacher from timm's zoo, split from its own FeatureInfo.
    "cls_timm-convnext-t_mbv1": Setting("cls_timm-convnext-t_mbv1", "timm.convnext_tiny",
                                        "mobilenet_v1", "cls", 32, (224, 224), 4, (64, 64)),
}
# Settings whose student or teacher needs a package the benchmark does not otherwise need.
NEEDS = {"seg_r101_mitb0": "mmseg", "cls_timm-convnext-t_mbv1": "timm"}


class DetectionHeads(nn.Module):
    """FPN neck, RPN and ROI heads of torchvision's Faster R-CNN on the student's features.

    The neck belongs to the student and runs on every path, as in the detectron2 adapter.
    ``small`` samples fewer proposals and ROIs so that a CPU step stays short; the layers
    (and so the FLOPs per ROI) are torchvision's defaults either way.
    """

    def __init__(self, in_channels: list[int], small: bool) -> None:
        super().__init__()
        from torchvision.models.detection import FasterRCNN
        from torchvision.ops import FeaturePyramidNetwork
        from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

        neck = FeaturePyramidNetwork(in_channels, 256, extra_blocks=LastLevelMaxPool())
        neck.out_channels = 256  # what FasterRCNN reads from its "backbone"
        sampling = dict(rpn_post_nms_top_n_train=300, box_batch_size_per_image=64) if small \
            else {}
        detector = FasterRCNN(neck, num_classes=2, **sampling)  # background, person
        self.neck, self.rpn, self.roi_heads = detector.backbone, detector.rpn, detector.roi_heads

    def forward(self, feats: list[torch.Tensor], images: torch.Tensor,
                targets: list[dict[str, torch.Tensor]]) -> torch.Tensor:
        """Sum of the RPN and ROI-head losses for stage features (N, C_i, H/4..H/32)."""
        from torchvision.models.detection.image_list import ImageList

        pyramid = self.neck(OrderedDict((str(i), f) for i, f in enumerate(feats)))
        image_list = ImageList(images, [tuple(images.shape[-2:])] * images.shape[0])
        proposals, rpn_losses = self.rpn(image_list, pyramid, targets)
        _, roi_losses = self.roi_heads(pyramid, proposals, image_list.image_sizes, targets)
        return sum(rpn_losses.values()) + sum(roi_losses.values())


def pedestrian_targets(batch: int, size: tuple[int, int], device: torch.device,
                       per_image: int = 4) -> list[dict[str, torch.Tensor]]:
    """Random upright boxes with CityPersons' aspect ratio (width = 0.41 height)."""
    h, w = size
    targets = []
    for _ in range(batch):
        heights = torch.empty(per_image).uniform_(0.1 * h, 0.5 * h)
        widths = 0.41 * heights
        x0 = torch.rand(per_image) * (w - widths)
        y0 = torch.rand(per_image) * (h - heights)
        boxes = torch.stack([x0, y0, x0 + widths, y0 + heights], dim=1)
        targets.append({"boxes": boxes.to(device),
                        "labels": torch.ones(per_image, dtype=torch.int64, device=device)})
    return targets


def zoo_teacher(name: str):
    """A timm (or torchvision) teacher by name, split into stages by the core."""
    return split_zoo_model(name, build_zoo_model(name))


def frozen_bn_resnet(name: str) -> nn.Module:
    """torchvision's ``name`` with every BatchNorm turned into FrozenBatchNorm2d, as a
    detectron2 ImageNet backbone is.

    The frozen statistics are calibrated on two random batches first: with the initial ones
    (mean 0, variance 1, no normalisation at all) the random-weight activations grow block by
    block and a training step of R-50/R-101 ends in NaN, which a pretrained network's measured
    statistics never do.
    """
    import torchvision
    from torchvision.ops.misc import FrozenBatchNorm2d

    model = getattr(torchvision.models, name)(weights=None)
    model.train()
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None  # a cumulative average over the calibration batches
    with torch.no_grad():
        for _ in range(2):
            model(torch.randn(4, 3, 64, 64))

    def freeze(module: nn.Module) -> None:
        for child_name, child in module.named_children():
            if isinstance(child, nn.BatchNorm2d):
                frozen = FrozenBatchNorm2d(child.num_features, eps=child.eps)
                for key in ("weight", "bias", "running_mean", "running_var"):
                    getattr(frozen, key).copy_(getattr(child, key).detach())
                setattr(module, child_name, frozen)
            else:
                freeze(child)

    freeze(model)
    return model


def mit_b0():
    """mmseg's MixVisionTransformer at SegFormer-B0 size, split by the mmseg adapter."""
    import hybridkt_ext.for_mmseg  # noqa: F401  (registers, and needs mmseg)
    from mmseg.registry import MODELS

    from hybridkt_ext.for_mmseg import split_mmseg_backbone

    return split_mmseg_backbone(MODELS.build(dict(
        type="MixVisionTransformer", embed_dims=32, num_stages=4, num_layers=[2, 2, 2, 2],
        num_heads=[1, 2, 5, 8], patch_sizes=[7, 3, 3, 3], sr_ratios=[8, 4, 2, 1])))


def build_task(s: Setting, small: bool) -> tuple[HybridForward, nn.Module | None, Callable]:
    """The engine, the head modules outside it, and ``loss(features, images, targets)``.

    ``features`` is one path's list at the engine's ``out_indices``.
    """
    import torchvision

    if s.task == "cls":
        student_model = build_classifier(s.student, 1000)
        head = classifier_head(student_model)  # uses the student model's own layers
        teacher = zoo_teacher(s.teacher) if is_zoo_name(s.teacher) \
            else split_backbone(build_classifier(s.teacher, 1000))
        student = split_backbone(student_model)
        extra, out = None, "last"
    else:
        def resnet(name):
            if name.endswith("-frozenbn"):
                return frozen_bn_resnet(name.removesuffix("-frozenbn"))
            # Output stride 8 like DeepLab's R-D8 backbones for segmentation; torchvision's
            # BasicBlock ResNets (18/34) cannot dilate, so they stay at stride 32 and the
            # adapters interpolate.
            dilate = s.task == "seg" and name not in ("resnet18", "resnet34")
            return getattr(torchvision.models, name)(
                weights=None, replace_stride_with_dilation=[False, True, True] if dilate
                else None)

        if s.student == "mmseg.mit_b0":
            student = mit_b0()
        else:
            student = split_backbone(build_classifier(s.student, 1000) if s.student ==
                                     "mobilenet_v1" else resnet(s.student))
        teacher = split_backbone(resnet(s.teacher))
        if s.task == "seg":
            from torchvision.models.segmentation.deeplabv3 import DeepLabHead

            extra, out = DeepLabHead(student.stage_specs[-1].channels, 19), "last"
        else:
            extra, out = None, "all"
    student, teacher = align_stages(student, teacher)
    if s.task == "det":  # the FPN takes every aligned stage (strides 4..32)
        extra = DetectionHeads([spec.channels for spec in student.stage_specs], small)
    n = student.num_stages
    engine = HybridForward(student, teacher,
                           out_indices=tuple(range(n)) if out == "all" else (n - 1,))
    if s.task == "cls":
        return engine, extra, lambda feats, x, y: F.cross_entropy(head(feats[-1]), y)
    if s.task == "seg":
        def seg_loss(feats, x, y):
            logits = F.interpolate(extra(feats[-1]), size=y.shape[-2:], mode="bilinear",
                                   align_corners=False)
            return F.cross_entropy(logits, y)
        return engine, extra, seg_loss
    return engine, extra, lambda feats, x, y: extra(feats, x, y)
