"""Test (and evaluate) a segmentor checkpoint with mmseg's IoUMetric (mmseg's tools/test.py CLI).

With a hybrid config the student is evaluated alone, through its plain config: neither the
teacher nor its file is needed. The checkpoint may be a hybrid training checkpoint (mapped to
the student's keys) or an exported student (hybridkt-export-seg-student). The tool itself is
hybridkt_ext/for_mmseg/testing_tool.py (shared with hybridkt-test-det); ``--out`` and
``--show-dir`` are never the config, the checkpoint or inside the test data folders.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from mmengine.config import Config

import hybridkt_ext.for_mmseg  # noqa: F401  (registers HybridBackbone & co. in mmseg)
from hybridkt_ext.core.output_guard import refuse_writing_onto_inputs
from hybridkt_ext.for_mmseg import testing_tool
from hybridkt_ext.for_mmseg.training_tool import load_config
from hybridkt_ext.tool_errors import run_tool


def main(argv: list[str] | None = None) -> dict:
    return run_test_tool("test_seg", "Test (and eval) a segmentor", argv)


def run_test_tool(tool: str, description: str, argv: list[str] | None = None,
                  save_predictions: Callable[[Config, str], None] | None = None) -> dict:
    """``testing_tool.main``, first refusing an output on an input (test_seg and test_det).

    Raises:
        SystemExit: the one-line error of a refused output or any other user error.
    """
    args = testing_tool.parse_args(argv, description)

    def body() -> dict:
        # The config names the data folders; it is read, nothing else is, before the check.
        inputs = (args.config, args.checkpoint, *data_folders(load_config(args)))
        refuse_writing_onto_inputs((args.out, args.show_dir), inputs, reader=tool)
        return testing_tool.evaluate(args, save_predictions)

    return run_tool(tool, body, args.debug)


def data_folders(cfg: Config) -> list[Path]:
    """Every ``data_root`` of the test data and evaluator: mmseg's ``--out`` writes label maps
    named after the images, which in an image folder would replace them."""
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


if __name__ == "__main__":
    main()
