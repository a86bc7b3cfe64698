"""The training tool of the OpenMMLab adapters: mmseg's and mmdet's ``tools/train.py`` CLI.

``cli/train_seg.py`` and ``cli/train_det.py`` (``tools/train_*.py`` in a clone) are this module with
the adapter imported
(which registers HybridBackbone, the hook and the datasets in that framework's registries).
Before anything is built it checks the schedule and claims the work dir (``work_dir_guard``);
``--amp`` without CUDA, a bad config value or checkpoint stop with one line (``tool_errors``).

Resuming restores the model, optimiser, schedule, message hub and data order; the teacher
is rebuilt from its own file and must be the one the checkpoint was trained with (see
``hybrid_kt_hook``). Dropout masks after a resume differ from those of an uninterrupted run
(mmengine re-seeds rather than restores torch's generator).
"""
from __future__ import annotations

import argparse
import logging
import os
import os.path as osp
import sys
from pathlib import Path

from mmengine.config import Config, DictAction
from mmengine.logging import print_log
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from hybridkt_ext.core import HybridKTError
from hybridkt_ext.tool_errors import add_debug_flag, run_tool

from .checkpoint_loading import trust_checkpoints_of_run
from .cpu_distributed import prepare_cpu_distributed
from .hybrid_backbone import check_hybrid_backbone_keys
from .work_dir_guard import checkpoints, claim_work_dir, is_intact


def add_run_options(parser: argparse.ArgumentParser) -> None:
    """The options the train and test tools share, as mmseg's and mmdet's tools spell them."""
    parser.add_argument("--cfg-options", nargs="+", action=DictAction,
                        help="override config settings, xxx=yyy (as the framework's tools)")
    parser.add_argument("--launcher", choices=["none", "pytorch", "slurm", "mpi"],
                        default="none", help="job launcher")
    parser.add_argument("--trust-checkpoint", action="store_true",
                        help="unpickle any class in the checkpoints read (teacher, load_from, "
                             "resume): only for files you trust, a pickle can run code")
    # torch.distributed launchers pass --local-rank (>= 2.0) or --local_rank.
    parser.add_argument("--local_rank", "--local-rank", type=int, default=0)
    add_debug_flag(parser)


def parse_run_args(parser: argparse.ArgumentParser, argv: list[str] | None
                   ) -> argparse.Namespace:
    args = parser.parse_args(argv)
    if "LOCAL_RANK" not in os.environ:
        os.environ["LOCAL_RANK"] = str(args.local_rank)
    return args


def parse_args(argv: list[str] | None = None, description: str = "Train (hybrid forward aware)"
               ) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("config", help="train config file path")
    parser.add_argument("--work-dir", help="the dir to save logs and models")
    parser.add_argument("--resume", action="store_true", default=False,
                        help="resume from the latest intact checkpoint in the work_dir")
    parser.add_argument("--overwrite", action="store_true", default=False,
                        help="start a new run in a work_dir that holds a previous run's "
                             "checkpoints (they are replaced)")
    parser.add_argument("--amp", action="store_true", default=False,
                        help="enable automatic-mixed-precision training")
    add_run_options(parser)
    return parse_run_args(parser, argv)


def load_config(args: argparse.Namespace) -> Config:
    """The config with ``--cfg-options``, the launcher, the work dir (CLI > config > file
    name) and ``--trust-checkpoint`` applied, exactly as the frameworks' tools do.

    Raises:
        ValueError: the file is not a valid config (the message names the line), or is a
            detectron2 config.
    """
    cfg = read_config_file(args.config)
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get("work_dir", None) is None:
        cfg.work_dir = osp.join("./work_dirs", osp.splitext(osp.basename(args.config))[0])
    if args.trust_checkpoint:
        trust_checkpoints_of_run(cfg)
    return cfg


def read_config_file(path: str) -> Config:
    """``Config.fromfile``, with a one-line error for a config that cannot be one.

    mmengine raises SyntaxError with the whole file in it for a Python typo, and a detectron2
    YAML loads as a config without ``model`` that fails much later with ``KeyError: model``.
    """
    try:
        cfg = Config.fromfile(path)
    except SyntaxError as err:
        cause = err.__cause__ or err.__context__ or err
        line = getattr(cause, "lineno", None)
        where = f"{path}, line {line}" if line else path
        reason = getattr(cause, "msg", None) or str(cause).splitlines()[0]
        raise ValueError(f"{where}: the config is not valid Python ({reason}); fix that "
                         "line.") from None
    if "model" not in cfg and ("MODEL" in cfg or "_BASE_" in cfg):
        raise ValueError(f"{path} is a detectron2 config (MODEL/_BASE_ keys, no `model`); "
                         "train it with hybridkt-train-net --config-file "
                         f"{path} (tools/train_net.py in a clone).")
    return cfg


def build_config(args: argparse.Namespace) -> Config:
    """The training config: ``load_config``, then ``--amp``, ``--resume`` and the schedule check."""
    cfg = load_config(args)
    if args.amp:
        import torch

        if not torch.cuda.is_available():  # mmengine would assert it after building the model
            raise ValueError("--amp needs a CUDA GPU (mmengine's AmpOptimWrapper runs CUDA "
                             "autocast only); drop --amp on this machine.")
        if cfg.optim_wrapper.type == "AmpOptimWrapper":
            print_log("AMP training is already enabled in your config.", logger="current",
                      level=logging.WARNING)
        else:
            if cfg.optim_wrapper.type != "OptimWrapper":
                raise ValueError("--amp needs optim_wrapper.type='OptimWrapper', got "
                                 f"{cfg.optim_wrapper.type!r}.")
            cfg.optim_wrapper.type = "AmpOptimWrapper"
            cfg.optim_wrapper.loss_scale = "dynamic"
    cfg.resume = args.resume
    check_schedule(cfg)
    check_hybrid_backbone_keys(cfg.get("model"))
    return cfg


def check_schedule(cfg: Config) -> None:
    """Refuses a schedule or batch size that would train nothing, before anything is built."""
    loop = cfg.get("train_cfg") or {}
    for key in ("max_iters", "max_epochs"):
        if key in loop and not (isinstance(loop[key], int) and loop[key] >= 1):
            raise ValueError(f"train_cfg.{key}={loop[key]!r} trains nothing; give a positive "
                             "integer.")
    batch = (cfg.get("train_dataloader") or {}).get("batch_size")
    if batch is not None and not (isinstance(batch, int) and batch >= 1):
        raise ValueError(f"train_dataloader.batch_size={batch!r}; give a positive integer.")


def train(args: argparse.Namespace, tool: str = "train") -> None:
    cfg = build_config(args)
    main_process = os.environ.get("RANK", "0") == "0"
    with claim_work_dir(cfg.work_dir, args.resume, args.overwrite, main_process) as claim:
        for path in claim.skipped:
            print(f"{tool}: --resume skips {path}: the file is damaged (an interrupted "
                  f"save?); resuming from {claim.resume_from.name}.", file=sys.stderr)
        if claim.resume_from is not None:
            cfg.load_from = str(claim.resume_from)  # mmengine resumes from load_from
        prepare_cpu_distributed(cfg)
        runner = Runner.from_cfg(cfg) if "runner_type" not in cfg else RUNNERS.build(cfg)
        try:
            runner.train()
        except (KeyboardInterrupt, SyntaxError) as err:
            # mmengine formats the config with a bare `except:` while saving a checkpoint, so
            # Ctrl-C there surfaces as a SyntaxError quoting the whole config.
            if isinstance(err, SyntaxError) and not isinstance(err.__context__,
                                                               KeyboardInterrupt):
                raise
            raise TrainingInterrupted(_interrupted_message(cfg.work_dir)) from None
        except ValueError as err:
            if "Expected more than 1 value per channel" not in str(err):
                raise
            raise ValueError(
                f"{err}: a BatchNorm layer after global pooling (DeepLab's ASPP image pool, "
                "PSP's 1x1 bin) saw one sample. Train with train_dataloader.batch_size >= 2 "
                "per process, or SyncBN across several processes.") from err


class TrainingInterrupted(HybridKTError, KeyboardInterrupt):
    """Ctrl-C (SIGINT) stopped training; the message names the checkpoint to resume from."""


def _interrupted_message(work_dir: str) -> str:
    intact = next((p for p in checkpoints(Path(work_dir)) if is_intact(p)), None)
    if intact is None:
        return f"interrupted (Ctrl-C) before any checkpoint was saved in {work_dir}."
    return (f"interrupted (Ctrl-C); the last good checkpoint is {intact}: continue with "
            f"--work-dir {work_dir} --resume.")


def main(tool: str, description: str, argv: list[str] | None = None) -> None:
    """The whole tool: ``tool`` names it in its one-line errors."""
    args = parse_args(argv, description)
    run_tool(tool, lambda: train(args, tool), args.debug)
