"""A task-gap teacher for segmentation: the same scenes, another task (coarse detection).

The paper's Table 2 "CS det" teacher is a Faster R-CNN trained on Cityscapes boxes. The
cheap, framework-free stand-in here: the GTA5 teacher's backbone architecture (an mmseg
ResNetV1c) trained with plain torch on the student's Cityscapes-style *training images* to
predict, per cell of its output grid (stride 8), which object classes (person, car) are
present - a coarse grid detector (objectness per class, like a one-stage detector without box
regression). It never sees the stuff classes' labels (road, sky, building, ...) nor a
per-pixel mask, so it differs from the student in task, not in domain. The saved checkpoint
is mmengine-style (``state_dict`` with ``backbone.`` keys), loaded by the teacher spec
unchanged.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

OBJECT_TRAIN_IDS = (11, 13)  # Cityscapes train ids of person and car (the detected classes)
# The mmseg data preprocessor of every synthetic config (RGB, ImageNet statistics 0-255).
MEAN = torch.tensor([123.675, 116.28, 103.53]).view(1, 3, 1, 1)
STD = torch.tensor([58.395, 57.12, 57.375]).view(1, 3, 1, 1)


@dataclass
class TaskTeacherResult:
    checkpoint: Path
    cell_f1: float      # F1 of the per-cell, per-class presence on the val split (%)
    seconds: float


def _load_split(root: Path, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, 3, H, W) normalised images and (N, H, W) train-id labels of a Cityscapes split."""
    from PIL import Image

    images = sorted((root / "leftImg8bit" / split).rglob("*_leftImg8bit.png"))
    if not images:
        raise FileNotFoundError(f"no *_leftImg8bit.png under {root / 'leftImg8bit' / split}")
    xs, ys = [], []
    for img in images:
        label = Path(str(img).replace("leftImg8bit", "gtFine", 1).replace(
            "_leftImg8bit.png", "_gtFine_labelTrainIds.png"))
        xs.append(np.asarray(Image.open(img).convert("RGB"), dtype=np.float32))
        ys.append(np.asarray(Image.open(label), dtype=np.int64))
    x = torch.from_numpy(np.stack(xs)).permute(0, 3, 1, 2)
    return (x - MEAN) / STD, torch.from_numpy(np.stack(ys))


def _cell_targets(labels: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(N, K, h, w) presence of each object class in each output cell (max-pooled masks)."""
    masks = torch.stack([(labels == k).float() for k in OBJECT_TRAIN_IDS], 1)
    return F.adaptive_max_pool2d(masks, size)


def _f1(logits: torch.Tensor, targets: torch.Tensor) -> float:
    pred = logits > 0
    tp = (pred & (targets > 0.5)).sum().item()
    fp = (pred & (targets < 0.5)).sum().item()
    fn = (~pred & (targets > 0.5)).sum().item()
    return 100.0 * 2 * tp / max(2 * tp + fp + fn, 1)


def train_task_teacher(backbone_cfg: dict, data_root: str | Path, out: str | Path,
                       iters: int = 400, batch_size: int = 4, lr: float = 0.05,
                       seed: int = 0) -> TaskTeacherResult:
    """Trains ``backbone_cfg`` (an mmseg backbone dict) as a coarse grid detector; saves it.

    Args:
        backbone_cfg: e.g. the GTA5 teacher config's ``model.backbone``.
        data_root: a Cityscapes-layout root (``leftImg8bit/``, ``gtFine/``).
        out: checkpoint path; keys ``backbone.*`` under ``state_dict``.
        iters, batch_size, lr: SGD (momentum 0.9, poly decay) like the mmseg configs.
    """
    import hybridkt_ext.for_mmseg  # noqa: F401  (registers mmseg modules)
    from mmseg.registry import MODELS

    start = time.perf_counter()
    torch.manual_seed(seed)
    backbone = MODELS.build(dict(backbone_cfg))
    backbone.init_weights()
    x_train, y_train = _load_split(Path(data_root), "train")
    x_val, y_val = _load_split(Path(data_root), "val")
    with torch.no_grad():
        feat = backbone(x_train[:1])[-1]
    size = tuple(feat.shape[-2:])
    head = nn.Conv2d(feat.shape[1], len(OBJECT_TRAIN_IDS), 1)
    t_train, t_val = _cell_targets(y_train, size), _cell_targets(y_val, size)
    pos = t_train.mean().clamp(1e-3, 0.5)
    params = list(backbone.parameters()) + list(head.parameters())
    opt = torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=1e-4)
    gen = torch.Generator().manual_seed(seed)
    backbone.train()
    for it in range(iters):
        for group in opt.param_groups:
            group["lr"] = lr * (1 - it / iters) ** 0.9
        idx = torch.randint(len(x_train), (batch_size,), generator=gen)
        x, t = x_train[idx], t_train[idx]
        if torch.rand(1, generator=gen).item() < 0.5:  # the configs' RandomFlip
            x, t = x.flip(-1), t.flip(-1)
        loss = F.binary_cross_entropy_with_logits(head(backbone(x)[-1]), t,
                                                  pos_weight=(1 - pos) / pos)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    backbone.eval()
    with torch.no_grad():
        f1 = _f1(head(backbone(x_val)[-1]), t_val)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    state = {f"backbone.{k}": v for k, v in backbone.state_dict().items()}
    state.update({f"det_head.{k}": v for k, v in head.state_dict().items()})
    torch.save({"state_dict": state, "meta": {"task": "coarse grid detection (person, car)",
                                              "val_cell_f1": f1}}, out)
    return TaskTeacherResult(out, f1, time.perf_counter() - start)
