"""Training a LazyConfig ``.py`` with hybrid forward, by detectron2's LazyConfig conventions.

What detectron2's ``tools/lazyconfig_train_net.py`` does (``model``, ``dataloader.{train,test,
evaluator}``, ``optimizer``, ``lr_multiplier`` and ``train.*`` of the config, ``key=value``
overrides), plus what a hybrid model needs: its training forward wired to the transfer step,
``HybridKTHook`` (frozen-teacher checks, the alpha plot), checkpoints read without running code
from them, and DDP on CPU processes. ``tools/train_net.py`` calls ``main`` for ``.py`` configs.
"""
from __future__ import annotations

import inspect
import logging
import os
from typing import Any, Callable, Mapping

from detectron2.config import LazyConfig, instantiate
from detectron2.engine import (AMPTrainer, SimpleTrainer, default_setup, default_writers,
                               hooks)
from detectron2.engine.defaults import create_ddp_model
from detectron2.evaluation import inference_on_dataset, print_csv_format
from detectron2.utils import comm
from detectron2.utils.registry import locate
from omegaconf import OmegaConf

try:  # detectron2 parses overrides with hydra where it is installed, else by splitting at "="
    from hydra.errors import OverrideParseException
except ImportError:
    OverrideParseException = ()  # nothing to catch

from ..core.closest_names import did_you_mean
from ..plotting import PLOT_NAME
from .config import dotted_keys
from .hooks import HybridKTHook
from .lazy import check_teacher_keys, hybrid_bottom_up, hybrid_bottom_up_keywords
from .safe_checkpointer import SafeDetectionCheckpointer
from .trainer import ddp_device_ids
from .transfer_wiring import install_transfer_step

logger = logging.getLogger("detectron2")


def load_lazy_config(path: str, overrides: list[str]) -> Any:
    """The LazyConfig with ``key=value`` overrides applied, checked for what training needs.

    Raises:
        ValueError: the file is not valid Python; an override names a key the config does not
            have, or a call of the config (``L(f)(...)``) has a keyword ``f`` does not take
            (both before anything is built or written); a part the trainer needs is missing,
            or AMP is on without CUDA.
    """
    import torch

    try:
        loaded = LazyConfig.load(path)
    except SyntaxError as err:
        # detectron2's own message names no line: the parser's error it chains does.
        cause = err.__cause__ if isinstance(err.__cause__, SyntaxError) else err
        raise ValueError(f"{path}: not a valid Python LazyConfig: line {cause.lineno}: "
                         f"{cause.msg}") from None
    check_override_keys(OmegaConf.to_container(loaded, resolve=False), overrides)
    try:
        cfg = LazyConfig.apply_overrides(loaded, overrides)
    except OverrideParseException as err:  # hydra's lines: (the override,) why, a link
        why = "; ".join(line for line in str(err).splitlines() if not line.startswith("See "))
        raise ValueError(f"overrides {overrides}: {why} (key=value, hydra's syntax)") from None
    check_call_keywords(OmegaConf.to_container(cfg, resolve=False))
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


def check_override_keys(tree: Mapping[str, Any], overrides: list[str]) -> None:
    """Refuses a ``key=value`` override whose key the config does not have.

    detectron2 would add it silently (``train.max_itr=4`` trains ``train.max_iter``
    iterations). A new keyword of an ``L(f)(...)`` call is left to ``check_call_keywords``, which
    knows what ``f`` takes; ``+key=value`` (hydra's way of saying "add") adds a key on purpose.

    Args:
        tree: the loaded LazyConfig before the overrides, as plain containers
            (``OmegaConf.to_container(cfg, resolve=False)``).
        overrides: the ``key=value`` strings of the command line.

    Raises:
        ValueError: the first override naming an absent key, with the closest existing key.
    """
    for override in overrides:
        key = override.split("=", 1)[0].strip()
        if key.startswith(("+", "~")) or "[" in key or not key:
            continue
        parts = key.split(".")
        node, depth, in_call = tree, 0, False
        while depth < len(parts) - 1 and isinstance(node, Mapping) and parts[depth] in node:
            in_call = in_call or "_target_" in node
            node = node[parts[depth]]
            depth += 1
        # Present; in a call's arguments (what the callable takes decides: a teacher dict's
        # keys too); or below a plain value (detectron2 refuses that itself).
        if not isinstance(node, Mapping) or in_call or "_target_" in node or (
                depth == len(parts) - 1 and parts[-1] in node):
            continue
        prefix = ".".join(parts[:depth])
        hint = did_you_mean(".".join(parts[depth:]), dotted_keys(node),
                            prefix=f"{prefix}." if prefix else "", n=1)
        raise ValueError(f"override {override!r}: the config has no key {key!r}.{hint} Write "
                         f"+{override} to add it.")


def check_call_keywords(node: Any, where: str = "") -> None:
    """Refuses a keyword that the target of an ``L(f)(...)`` call of a LazyConfig does not take.

    ``instantiate`` would find it only when it builds that part, after the run has written its
    output folder, and as a bare ``TypeError``. Targets taking ``**kwargs`` (or without a
    signature) are left to ``instantiate``. ``hybrid_bottom_up``'s teacher keys are checked too.

    Args:
        node: the config as plain containers (``OmegaConf.to_container(cfg, resolve=False)``).
        where: the dotted place of ``node`` in the config, for messages.

    Raises:
        ValueError: an unknown keyword, naming its place and the closest valid keywords.
    """
    if isinstance(node, Mapping):
        if node.get("_target_") is not None:
            target = _resolved_target(node["_target_"])
            keywords = [k for k in node if k != "_target_"]
            if target is hybrid_bottom_up:  # its **mode_options take the transfer modes' names
                _refuse_keywords(keywords, hybrid_bottom_up_keywords(), "hybrid_bottom_up",
                                 where)
            else:
                _check_call(target, keywords, where)
            if target is hybrid_bottom_up and isinstance(node.get("teacher"), Mapping):
                check_teacher_keys(node["teacher"], f"{where}.teacher" if where else "teacher")
            elif target is hybrid_bottom_up and isinstance(node.get("teacher"), (list, tuple)):
                for i, item in enumerate(node["teacher"]):  # several teachers, each named
                    if isinstance(item, Mapping):
                        check_teacher_keys(item, f"{where}.teacher[{i}]" if where
                                           else f"teacher[{i}]", extra=("name",))
        for key, value in node.items():
            check_call_keywords(value, f"{where}.{key}" if where else str(key))
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            check_call_keywords(value, f"{where}[{i}]")


def _resolved_target(target: Any) -> Any:
    """A LazyCall's ``_target_`` as the callable (a saved config names it by a string)."""
    if isinstance(target, str):
        try:
            return locate(target)
        except Exception:  # noqa: BLE001  instantiate reports a target it cannot find
            return None
    return target


def _check_call(target: Callable | None, keywords: list[str], where: str) -> None:
    if not callable(target):
        return
    try:
        parameters = inspect.signature(target).parameters.values()
    except (TypeError, ValueError):  # a builtin without a signature: instantiate will tell
        return
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return
    valid = [p.name for p in parameters
             if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)]
    _refuse_keywords(keywords, valid, getattr(target, "__qualname__", repr(target)), where)


def _refuse_keywords(keywords: list[str], valid: list[str], name: str, where: str) -> None:
    for key in keywords:
        if key not in valid:
            raise ValueError(f"{where or 'the config'}: {name}() takes no keyword {key!r}."
                             f"{did_you_mean(str(key), valid, n=1)} Its keywords: {valid}.")


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
        HybridKTHook(plot_path=os.path.join(cfg.train.output_dir, PLOT_NAME)),
        hooks.PeriodicWriter(default_writers(cfg.train.output_dir, cfg.train.max_iter),
                             period=cfg.train.log_period) if main_process else None,
    ])
    checkpointer.resume_or_load(cfg.train.init_checkpoint, resume=args.resume)
    start = trainer.iter + 1 if args.resume and checkpointer.has_checkpoint() else 0
    trainer.train(start, cfg.train.max_iter)
    return None
