#!/usr/bin/env python
"""Test (and evaluate) a segmentor checkpoint with mmseg's IoUMetric (mmseg's tools/test.py CLI).

With a hybrid config the student is evaluated alone, through its plain config: neither the
teacher nor its file is needed. The checkpoint may be a hybrid training checkpoint (mapped to
the student's keys) or an exported student (tools/export_seg_student.py).
"""
from __future__ import annotations

import argparse
import os
import os.path as osp
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a plain checkout

from hybridkt_ext.for_mmseg import trust_checkpoints_of_run  # noqa: E402  (registers all)
from hybridkt_ext.for_mmseg.checkpoint_coverage import check_checkpoint_covers  # noqa: E402
from hybridkt_ext.for_mmseg.student_export import student_evaluation  # noqa: E402
from hybridkt_ext.for_mmseg.cpu_distributed import prepare_cpu_distributed  # noqa: E402
from hybridkt_ext.tool_errors import add_debug_flag, run_tool  # noqa: E402
from mmengine.config import Config, DictAction  # noqa: E402
from mmengine.runner import Runner  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Test (and eval) a segmentor")
    parser.add_argument("config", help="test config file path")
    parser.add_argument("checkpoint", help="checkpoint file")
    parser.add_argument("--work-dir", help="where the metric results are dumped as json")
    parser.add_argument("--out", help="directory to save output predictions")
    parser.add_argument("--show-dir", help="directory where painted images are saved")
    parser.add_argument("--cfg-options", nargs="+", action=DictAction,
                        help="override config settings, xxx=yyy")
    parser.add_argument("--launcher", choices=["none", "pytorch", "slurm", "mpi"],
                        default="none", help="job launcher")
    parser.add_argument("--trust-checkpoint", action="store_true",
                        help="unpickle any class in the checkpoints read: only for files you "
                             "trust, a pickle can run code")
    parser.add_argument("--local_rank", "--local-rank", type=int, default=0)
    add_debug_flag(parser)
    args = parser.parse_args(argv)
    if "LOCAL_RANK" not in os.environ:
        os.environ["LOCAL_RANK"] = str(args.local_rank)
    return args


def evaluate(args: argparse.Namespace) -> dict:
    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get("work_dir", None) is None:
        cfg.work_dir = osp.join("./work_dirs", osp.splitext(osp.basename(args.config))[0])
    if args.trust_checkpoint:
        trust_checkpoints_of_run(cfg)
    checkpoint = args.checkpoint
    if (cfg.get("model") or {}).get("backbone", {}).get("type") == "HybridBackbone":
        # Evaluation runs the student alone: its plain config, no teacher file needed.
        os.makedirs(cfg.work_dir, exist_ok=True)
        cfg, checkpoint = student_evaluation(cfg, checkpoint, cfg.work_dir,
                                             trust=args.trust_checkpoint)
    cfg.load_from = str(checkpoint)
    if args.show_dir:
        cfg.default_hooks.visualization.draw = True
        cfg.visualizer.save_dir = args.show_dir
    if args.out is not None:
        cfg.test_evaluator["output_dir"] = args.out
        cfg.test_evaluator["keep_results"] = True
    prepare_cpu_distributed(cfg)
    runner = Runner.from_cfg(cfg)
    check_checkpoint_covers(runner.model, checkpoint, trust=args.trust_checkpoint)
    metrics = runner.test()
    print(metrics)
    return metrics


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    return run_tool("test_seg", lambda: evaluate(args), args.debug)


if __name__ == "__main__":
    main()
