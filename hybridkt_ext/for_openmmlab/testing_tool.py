"""The test tool of the OpenMMLab adapters: mmseg's and mmdet's ``tools/test.py`` CLI.

``cli/test_seg.py`` and ``cli/test_det.py`` (``tools/test_*.py`` in a clone) are this module with
the adapter imported.
With a hybrid config the student is evaluated alone, through its plain config
(``student_export.student_evaluation``): neither the teacher nor its file is needed. The
checkpoint may be a hybrid training checkpoint (mapped to the student's keys) or an exported
student; one that does not cover the model is refused, naming the missing keys.
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any, Callable

from mmengine.config import Config
from mmengine.runner import Runner

from hybridkt_ext.core.output_guard import refuse_writing_onto_inputs
from hybridkt_ext.tool_errors import run_tool

from .checkpoint_coverage import check_checkpoint_covers
from .cpu_distributed import prepare_cpu_distributed
from .student_export import STUDENT_FOR_EVALUATION, student_evaluation
from .training_tool import add_run_options, load_config, parse_run_args


def parse_args(argv: list[str] | None = None, description: str = "Test (and eval) a model"
               ) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("config", help="test config file path")
    parser.add_argument("checkpoint", help="checkpoint file")
    parser.add_argument("--work-dir", help="where the metric results are dumped as json")
    parser.add_argument("--out", help="where to save the predictions (mmseg: a directory of "
                        "label maps; mmdet: a .pkl file of detections)")
    parser.add_argument("--show-dir", help="directory where painted images are saved")
    add_run_options(parser)
    return parse_run_args(parser, argv)


def evaluate(args: argparse.Namespace,
             save_predictions: Callable[[Config, str], None] | None = None) -> dict:
    """Evaluates ``args.checkpoint``; ``save_predictions(cfg, args.out)`` sets up ``--out``.

    Raises:
        OutputIsInputError: ``--out``/``--show-dir`` (or the student file written for a hybrid
            checkpoint) is the config, the checkpoint or inside a test data folder.
    """
    cfg = load_config(args)
    hybrid = (cfg.get("model") or {}).get("backbone", {}).get("type") == "HybridBackbone"
    # Before anything is read or written: mmseg's --out writes label maps named after the
    # images, which in an image folder would replace them.
    student_file = Path(cfg.work_dir) / STUDENT_FOR_EVALUATION if hybrid else None
    refuse_writing_onto_inputs((args.out, args.show_dir, student_file),
                               (args.config, args.checkpoint, *data_folders(cfg)),
                               reader=getattr(args, "tool", "this test"))
    if args.out is not None:  # before anything is read: a bad --out fails at once
        (save_predictions or save_segmentation_predictions)(cfg, args.out)
    checkpoint = args.checkpoint
    if hybrid:
        # Evaluation runs the student alone: its plain config, no teacher file needed.
        os.makedirs(cfg.work_dir, exist_ok=True)
        cfg, checkpoint = student_evaluation(cfg, checkpoint, cfg.work_dir,
                                             trust=args.trust_checkpoint)
    cfg.load_from = str(checkpoint)
    if args.show_dir:
        cfg.default_hooks.visualization.draw = True
        cfg.visualizer.save_dir = args.show_dir
    prepare_cpu_distributed(cfg)
    runner = Runner.from_cfg(cfg)
    check_checkpoint_covers(runner.model, checkpoint, trust=args.trust_checkpoint)
    metrics = runner.test()
    print(metrics)
    return metrics


def data_folders(cfg: Config) -> list[Path]:
    """Every ``data_root`` of the test data and evaluator."""
    found: list[Path] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("data_root"), str) and node["data_root"]:
                found.append(Path(node["data_root"]))
            node = list(node.values())
        if isinstance(node, (list, tuple)):
            for value in node:
                walk(value)

    walk([cfg.get("test_dataloader"), cfg.get("test_evaluator")])
    return found


def save_segmentation_predictions(cfg: Config, out: str) -> None:
    """mmseg's ``--out``: IoUMetric writes the label maps into the directory ``out``."""
    cfg.test_evaluator["output_dir"] = out
    cfg.test_evaluator["keep_results"] = True


def main(tool: str, description: str, argv: list[str] | None = None,
         save_predictions: Callable[[Config, str], None] | None = None) -> dict:
    """The whole tool: ``tool`` names it in its one-line errors."""
    args = parse_args(argv, description)
    args.tool = tool
    return run_tool(tool, lambda: evaluate(args, save_predictions), args.debug)
