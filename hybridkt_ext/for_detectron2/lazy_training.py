"""Training a LazyConfig ``.py`` with hybrid forward, by detectron2's LazyConfig conventions.

What detectron2's ``tools/lazyconfig_train_net.py`` does (``model``, ``dataloader.{train,test,
evaluator}``, ``optimizer``, ``lr_multiplier`` and ``train.*`` of the config, ``key=value``
overrides), plus what a hybrid model needs: its training forward wired to the transfer step,
``HybridKTHook`` (frozen-teacher checks, the alpha plot), checkpoints read without running code
from them, and DDP on CPU processes. ``tools/train_net.py`` calls ``main`` for ``.py`` configs.
"""
from __future__ import annotations

import logging
import os
from typing import Any

from detectron2.config import LazyConfig, instantiate
from detectron2.engine import (AMPTrainer, SimpleTrainer, default_setup, default_writers,
                               hooks)
from detectron2.engine.defaults import create_ddp_model
from detectron2.evaluation import inference_on_dataset, print_csv_format
from detectron2.utils import comm

from .hooks import HybridKTHook
from .safe_checkpointer import SafeDetectionCheckpointer
from .trainer import ddp_device_ids
from .transfer_wiring import install_transfer_step

logger = logging.getLogger("detectron2")


def load_lazy_config(path: str, overrides: list[str]) -> Any:
    """The LazyConfig with ``key=value`` overrides applied, checked for what training needs.

    Raises:
        ValueError: a part the trainer needs is missing, or AMP is on without CUDA.
    """
    import torch

    cfg = LazyConfig.apply_overrides(LazyConfig.load(path), overrides)
    missing = [k for k in ("model", "dataloader", "optimizer", "lr_multiplier", "train")
               if k not in cfg]
    if missing:
        raise ValueError(f"{path}: a LazyConfig for training needs {missing} (see detectron2's "
                         "configs/common/train.py and the new_baselines configs).")
    if cfg.train.amp.enabled and not torch.cuda.is_available():
        raise ValueError(f"{path}: train.amp.enabled is True but CUDA is not available: "
                         "detectron2's AMPTrainer runs CUDA float16 only. Pass "
                         "train.amp.enabled=False (and train.device=cpu) on this machine.")
    return cfg


def _test(cfg: Any, model) -> dict | None:
    if "evaluator" not in cfg.dataloader:
        return None
    results = inference_on_dataset(model, instantiate(cfg.dataloader.test),
                                   instantiate(cfg.dataloader.evaluator))
    print_csv_format(results)
    return results


def main(args) -> dict | None:
    """Trains (or with ``--eval-only`` evaluates) the LazyConfig ``args.config_file``."""
    return run(load_lazy_config(args.config_file, args.opts), args)


def run(cfg: Any, args) -> dict | None:
    """Trains (or evaluates) a loaded LazyConfig; ``args`` as detectron2's argument parser's."""
    default_setup(cfg, args)
    trust = bool(getattr(args, "trust_checkpoint", False))
    model = instantiate(cfg.model)
    model.to(cfg.train.device)
    install_transfer_step(model)
    if args.eval_only:
        SafeDetectionCheckpointer(model, trust=trust).load(cfg.train.init_checkpoint)
        return _test(cfg, model)
    cfg.optimizer.params.model = model
    optimizer = instantiate(cfg.optimizer)
    loader = instantiate(cfg.dataloader.train)
    ddp = dict(cfg.train.ddp)
    ddp.setdefault("device_ids", ddp_device_ids(model))  # None for CPU processes (gloo)
    model = create_ddp_model(model, **ddp)
    trainer = (AMPTrainer if cfg.train.amp.enabled else SimpleTrainer)(model, loader, optimizer)
    checkpointer = SafeDetectionCheckpointer(model, cfg.train.output_dir, trust=trust,
                                             trainer=trainer)
    main_process = comm.is_main_process()
    trainer.register_hooks([
        hooks.IterationTimer(),
        hooks.LRScheduler(scheduler=instantiate(cfg.lr_multiplier)),
        hooks.PeriodicCheckpointer(checkpointer, **cfg.train.checkpointer)
        if main_process else None,
        hooks.EvalHook(cfg.train.eval_period, lambda: _test(cfg, model)),
        HybridKTHook(plot_path=os.path.join(cfg.train.output_dir, "hkt_alpha_losses.png")),
        hooks.PeriodicWriter(default_writers(cfg.train.output_dir, cfg.train.max_iter),
                             period=cfg.train.log_period) if main_process else None,
    ])
    checkpointer.resume_or_load(cfg.train.init_checkpoint, resume=args.resume)
    start = trainer.iter + 1 if args.resume and checkpointer.has_checkpoint() else 0
    trainer.train(start, cfg.train.max_iter)
    return None
