"""The detection experiment on MMDetection: ``hybridkt-train-det`` runs of the shipped
``configs/mmdet/*synthetic-citypersons.py`` files (``detection`` is the experiment itself).

The synthetic mmdet configs are the detectron2 ones' twins (same student, widths, anchors,
proposal counts, schedule), so the two backends measure the same experiment; they are not
bit-identical (each framework has its own samplers, initialisation and data order).
"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import torch

from hybridkt_ext.run_logs import read_mmengine_scalars
from hybridkt_ext.shipped_configs import config_dir

STEM = "faster-rcnn_mobilenetv1_fpn_{}_synthetic-citypersons.py"
CONFIGS = {"none": STEM.format("no-teacher"), "fitnet": STEM.format("fitnet-r18"),
           "at": STEM.format("at-r18"), "hybrid": STEM.format("hybrid-r18"),
           "fixed": STEM.format("fixed-alpha-r18")}
# Modes trained by the hybrid config with only ``model.backbone.transfer`` changed.
HYBRID_CONFIG_MODES = ("hybrid_alternate", "cwd")
NAME = "mmdet"


def missing() -> str | None:
    """A sentence saying why this backend cannot run, or None when mmdet is importable."""
    if importlib.util.find_spec("mmdet") is None:
        return "mmdet is not installed (the README's set-up installs it: the mmdet extra)"
    return None


def config(mode: str) -> Path:
    return config_dir("mmdet") / CONFIGS["hybrid" if mode in HYBRID_CONFIG_MODES else mode]


def write_teacher(digits_classifier: dict, out: Path) -> Path:
    """The digits ResNet-18 as an mmdet detector checkpoint holds a backbone: the configs'
    teacher is mmdet's ResNet-18, whose parameter names are torchvision's, under
    ``backbone.`` (the configs' ``teacher.prefix``); the classifier's ``fc`` is dropped."""
    weights = {f"backbone.{k}": v for k, v in digits_classifier.items() if not k.startswith("fc.")}
    torch.save({"state_dict": weights, "meta": {}}, out)
    return out


def schedule(iters: int | None) -> tuple[list[str], str]:
    """``--cfg-options`` for ``iters`` iterations (None: the configs' own schedule) keeping the
    schedule's shape (LR step at the same fraction, warm-up clipped), and a sentence
    describing the schedule for the tables' notes."""
    from mmengine.config import Config

    cfg = Config.fromfile(str(config("hybrid")))
    total = cfg.train_cfg.max_iters
    warmup, steps = cfg.param_scheduler  # LinearLR warm-up, then MultiStepLR
    opts: list[str] = []
    if iters is not None and iters != total:
        milestones = [max(1, round(m * iters / total)) for m in steps.milestones]
        end = max(1, min(warmup.end, iters // 10))  # mmengine refuses an empty warm-up
        # A short run still logs alpha and L1..L3 about ten times (Fig. 8's curves).
        log_every = max(1, min(cfg.default_hooks.logger.interval, iters // 10))
        opts = [f"train_cfg.max_iters={iters}", f"train_cfg.val_interval={iters}",
                f"default_hooks.checkpoint.interval={iters}",
                f"default_hooks.logger.interval={log_every}",
                f"param_scheduler.0.end={end}", f"param_scheduler.1.end={iters}",
                f"param_scheduler.1.milestones={milestones}"]
        total, warmup.end, steps.milestones = iters, end, milestones
    optimizer = cfg.optim_wrapper.optimizer
    described = (f"{total} iterations, batch {cfg.train_dataloader.batch_size}, lr "
                 f"{optimizer.lr:g} (x{steps.gamma:g} at {list(steps.milestones)}, "
                 f"{warmup.end} warm-up)")
    return opts, described


def command(mode: str, seed: int, output_dir: Path, teacher: Path, alpha: float | None,
            schedule_opts: list[str]) -> list[str]:
    """The training command of one run (the caller empties ``output_dir`` first)."""
    options = [*schedule_opts, f"randomness.seed={seed}"]
    if mode != "none":
        options += [f"model.backbone.teacher.checkpoint={teacher}",
                    "model.backbone.teacher.allow_random_init=False"]
    if mode in HYBRID_CONFIG_MODES:
        options.append(f"model.backbone.transfer={mode}")
    if alpha is not None:
        options.append(f"model.backbone.balance.fixed_alpha={alpha}")
    return [sys.executable, "-m", "hybridkt_ext.cli.train_det", str(config(mode)),
            "--work-dir", str(output_dir), "--cfg-options", *options]


def final_metrics(output_dir: Path) -> dict[str, float]:
    """The last MR^-2 values of the run's scalars log, without the metric's prefix
    (``citypersons/MR2_Reasonable`` -> ``MR2_Reasonable``)."""
    found: dict[str, float] = {}
    for row in read_mmengine_scalars(output_dir):
        found.update({k.split("/")[-1]: v for k, v in row.items() if "MR2" in k})
    return found


def alpha_rows(output_dir: Path) -> list[dict[str, float]]:
    """alpha and L1..L3 as the scalars log holds them (every 20 iterations)."""
    return [{"step": r["step"], **{k: r[k] for k in ("hkt_alpha", "hkt_L1", "hkt_L2", "hkt_L3")
                                   if k in r}}
            for r in read_mmengine_scalars(output_dir) if "hkt_alpha" in r]
