"""Training FLOPs of an mmseg or mmdet config: a short real run of the mmengine Runner under
torch's FLOP counter.

The count is that of ``torch.utils.flop_counter`` (matmuls and convolutions, forward and
backward, the optimiser's element-wise updates not included), over the whole train step the
Runner takes: data preprocessing, every path of the transfer mode, the heads and their losses.
mmcv's compiled ops (RoIAlign, NMS) are not counted: the same for every mode of a config.
"""
from __future__ import annotations

import copy
from pathlib import Path

from .segmentation_demo import run_quietly


def training_flops_per_iter(cfg, work_dir: str | Path, iters: int = 2) -> float:
    """Mean FLOPs of one training iteration of ``cfg`` (an mmengine Config, options applied).

    Runs ``iters`` iterations (two by default: ``hybrid_alternate`` alternates its hybrid path
    by iteration, so the mean covers both) with validation and checkpoints off, logs in
    ``work_dir``; ``cfg`` itself is not changed.
    """
    from torch.utils.flop_counter import FlopCounterMode

    cfg = copy.deepcopy(cfg)
    cfg.work_dir = str(work_dir)
    cfg.train_cfg.max_iters = iters
    cfg.train_cfg.val_interval = iters
    # mmengine validates at the last iteration whatever the interval: no val loop at all.
    cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
    cfg.default_hooks.checkpoint = None  # a count writes no checkpoint
    cfg.visualizer.name = f"visualizer:{Path(work_dir).resolve()}"  # a singleton per name
    with FlopCounterMode(display=False) as counter:
        run_quietly(cfg, None, "train")
    return counter.get_total_flops() / iters
