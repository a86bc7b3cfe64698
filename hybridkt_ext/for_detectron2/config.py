"""Config keys of the detectron2 adapter: ``MODEL.HYBRIDKT.*`` (+ ``MODEL.MOBILENET_V1.*``).

Defaults reproduce the paper's pedestrian detection setting (Table 4): a frozen torchvision
ResNet-50 teacher (the PifPaf pose network's trunk) with RGB/ImageNet input, switches at every
stage boundary, dynamic balancing alpha = 2*L3/(L1+L2).
"""
from __future__ import annotations

from detectron2.config import CfgNode as CN

from .mobilenet_v1_backbone import add_mobilenet_v1_config

# Names accepted by MODEL.HYBRIDKT.TEACHER.FRAMEWORK (MODEL.HYBRIDKT.TRANSFER: core's).
TEACHER_FRAMEWORKS = ("torchvision", "timm", "detectron2")
# Balance modes a config may name; "student_only" is implied by TRANSFER "none".
CONFIG_BALANCE_MODES = ("dynamic", "fixed")


def add_hybridkt_config(cfg: CN) -> None:
    """Adds the hybridkt keys to a detectron2 config (in place), with the paper's defaults."""
    _C = cfg
    _C.MODEL.HYBRIDKT = CN()
    # How the teacher is used: "hybrid" (the paper's three paths), "fitnet" / "at" (feature
    # mimicking baselines), "none" (student alone; no teacher is built).
    _C.MODEL.HYBRIDKT.TRANSFER = "hybrid"
    # Registered BACKBONE_REGISTRY builder of the student's bottom-up network (before FPN):
    # "build_resnet_backbone" (detectron2's ResNet, MODEL.RESNETS.*) or
    # "build_mobilenet_v1_backbone" (MODEL.MOBILENET_V1.*, the paper's Table 4 student).
    _C.MODEL.HYBRIDKT.STUDENT_BOTTOM_UP = "build_resnet_backbone"
    # Stage indices k (1..num_stages-1) before which the hybrid paths switch network; empty
    # means every stage boundary (S T S T / T S T S), as in the paper.
    _C.MODEL.HYBRIDKT.SWITCH_POINTS = []
    # "dynamic": alpha = 2*L3/(L1+L2) per step (eq. 1); "fixed": alpha = FIXED_ALPHA (Fig. 9).
    _C.MODEL.HYBRIDKT.BALANCE = "dynamic"
    # alpha in BALANCE "fixed" mode; total = alpha*(L1+L2) + L3.
    _C.MODEL.HYBRIDKT.FIXED_ALPHA = 1.0
    # Weight of the FitNet hint loss (TRANSFER "fitnet"); tune per setting as the paper did.
    _C.MODEL.HYBRIDKT.FITNET_WEIGHT = 1.0
    # Student stage indices of the FitNet hint; empty: the middle stage (num_stages // 2).
    _C.MODEL.HYBRIDKT.FITNET_STAGES = []
    # beta of attention transfer (TRANSFER "at"); 1000 is the AT paper's value.
    _C.MODEL.HYBRIDKT.AT_BETA = 1000.0
    # Student stage indices used by AT; empty: all stages.
    _C.MODEL.HYBRIDKT.AT_STAGES = []
    # Recompute the teacher stages that run with autograd (T2..Tn of the teacher-first path)
    # in backward instead of keeping their activations: less memory, more time (measured in
    # docs/performance.md); losses and gradients are identical either way.
    _C.MODEL.HYBRIDKT.CHECKPOINT_TEACHER = False
    # Unpickle any class in the files this run reads (the teacher file, MODEL.WEIGHTS, resumed
    # checkpoints). False reads tensors, containers and numpy arrays only, so a pickle from
    # someone else cannot run code; set True only for files you trust (--trust-checkpoint).
    _C.MODEL.HYBRIDKT.TRUST_CHECKPOINTS = False

    _C.MODEL.HYBRIDKT.TEACHER = CN()
    # The detectron2 config (YAML or LazyConfig .py; a file or a model-zoo path such as
    # "COCO-Detection/faster_rcnn_R_50_FPN_3x.yaml") the teacher checkpoint was trained with.
    # Set, it replaces FRAMEWORK/ARCH and PIXEL_MEAN/PIXEL_STD/INPUT_FORMAT: the teacher is that
    # config's bottom-up with that config's pixel convention, and WEIGHTS_PREFIX defaults to
    # "backbone.bottom_up." (FPN) or "backbone." (C4).
    _C.MODEL.HYBRIDKT.TEACHER.CONFIG = ""
    # Who builds the teacher: "torchvision" (torchvision.models.get_model(ARCH), e.g. the
    # ResNet-50 trunk of a pose network), "timm" (timm.create_model(ARCH), stages from its
    # FeatureInfo) or "detectron2" (build_resnet_backbone, depth from ARCH). No weights are
    # downloaded: they come from WEIGHTS.
    _C.MODEL.HYBRIDKT.TEACHER.FRAMEWORK = "torchvision"
    # Architecture name: a torchvision or timm model name ("resnet50", "convnext_tiny", ...)
    # or, for detectron2, "resnet<depth>" (18, 34, 50, 101, 152).
    _C.MODEL.HYBRIDKT.TEACHER.ARCH = "resnet50"
    # Checkpoint of the well-trained teacher (.pth/.pkl/.safetensors of torchvision, timm,
    # mmseg or detectron2). Empty is refused unless ALLOW_RANDOM_INIT.
    _C.MODEL.HYBRIDKT.TEACHER.WEIGHTS = ""
    # Accept an empty WEIGHTS: the teacher keeps random weights and transfers nothing (tests
    # and smoke runs only; a warning is logged).
    _C.MODEL.HYBRIDKT.TEACHER.ALLOW_RANDOM_INIT = False
    # Prefix of the teacher's keys in the checkpoint, stripped on load ("backbone.bottom_up."
    # for a detectron2 detector, "backbone." for mmseg, "" for a plain torchvision file).
    _C.MODEL.HYBRIDKT.TEACHER.WEIGHTS_PREFIX = ""
    # Named key-renaming preset applied after the prefix: "" (none) or
    # "detectron2_resnet_to_torchvision" (a detectron2 ResNet checkpoint into a torchvision
    # ResNet teacher).
    _C.MODEL.HYBRIDKT.TEACHER.WEIGHTS_REMAP = ""
    # Refuse checkpoint keys the teacher does not have (a classifier head such as "fc." is
    # always allowed). Weights the teacher's stages use must be in the file either way.
    _C.MODEL.HYBRIDKT.TEACHER.WEIGHTS_STRICT = True
    # The teacher's own input convention: mean/std in its channel order and pixel scale.
    # Default: torchvision's ImageNet normalisation of RGB 0-255 images.
    _C.MODEL.HYBRIDKT.TEACHER.PIXEL_MEAN = [123.675, 116.28, 103.53]
    _C.MODEL.HYBRIDKT.TEACHER.PIXEL_STD = [58.395, 57.12, 57.375]
    # Channel order the teacher was trained with: "RGB" or "BGR" (detectron2 models).
    _C.MODEL.HYBRIDKT.TEACHER.INPUT_FORMAT = "RGB"

    add_mobilenet_v1_config(_C)
