"""Train / evaluate a hybridkt detectron2 config (detectron2's project train_net conventions).

    hybridkt-train-net --config-file configs/detectron2/<leaf>.yaml [KEY VALUE ...]
    hybridkt-train-net --config-file <cfg> --num-gpus 2 ...     # 2 processes (GPU or CPU)
    hybridkt-train-net --config-file <cfg> --eval-only MODEL.WEIGHTS <model.pth>
    hybridkt-train-net --config-file <cfg> --export-student <out.pth> \
        MODEL.WEIGHTS <model.pth>       # also writes <out>.yaml, the plain student config
    hybridkt-train-net --config-file <lazy>.py train.max_iter=4   # a LazyConfig

SOLVER.AMP.ENABLED True trains with detectron2's AMPTrainer (CUDA float16). Checkpoints are
read without running code from them; --trust-checkpoint lifts that for files you trust.

A missing or unreadable config, a key the config does not have (the closest keys are named) and
a missing detectron2 are one line on stderr and exit status 1, before any process starts or
anything is written; --debug shows the traceback instead.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from hybridkt_ext.core.output_guard import refuse_writing_onto_inputs
from hybridkt_ext.tool_errors import add_debug_flag, one_line, run_tool

try:  # hybridkt_ext.for_detectron2 first: its ImportError says how to install detectron2
    from hybridkt_ext.for_detectron2 import (
        HybridKTTrainer as Trainer,
        SafeDetectionCheckpointer,
        lazy_training,
        save_student_checkpoint,
    )
    from hybridkt_ext.for_detectron2.config import load_hybridkt_config

    from detectron2.engine import default_argument_parser, default_setup, launch
except ImportError as _err:
    # Kept for main(), which reports it in one line: importing this module never fails.
    _IMPORT_ERROR: ImportError | None = _err
else:
    _IMPORT_ERROR = None

TOOL = "train_net"


def load_config(args) -> Any:
    """The run's config (a frozen CfgNode, or a LazyConfig for a ``.py``), checked.

    Raises:
        ValueError: no ``--config-file``, or a mistake in the file or the KEY VALUE pairs.
        FileNotFoundError: the config file does not exist.
        KeyError: a key the config does not have (the closest keys are named).
    """
    if not args.config_file:
        raise ValueError("no --config-file given: name a detectron2 YAML config or a "
                         "LazyConfig .py, e.g. --config-file "
                         "configs/detectron2/hybridkt-mobilenetv1-fpn-synthetic.yaml (--help "
                         "lists the options)")
    if not os.path.isfile(args.config_file):
        raise FileNotFoundError(f"--config-file {args.config_file}: no such file")
    lazy = args.config_file.endswith(".py")
    # detectron2's parser reads everything after the first KEY as KEY VALUE pairs: an option
    # there (`... OUTPUT_DIR out --debug`) would be taken for a key and give yacs' odd message.
    misplaced = [o for i, o in enumerate(args.opts) if o.startswith("--") and (lazy or i % 2 == 0)]
    if misplaced:
        raise ValueError(f"{misplaced[0]} comes after the config's overrides, where it is read as "
                         "one: put the options before them")
    if lazy:  # a LazyConfig: detectron2's LazyConfig conventions
        return lazy_training.load_lazy_config(args.config_file, args.opts)
    cfg = load_hybridkt_config(args.config_file, args.opts)
    if args.trust_checkpoint:
        cfg.MODEL.HYBRIDKT.TRUST_CHECKPOINTS = True
    cfg.freeze()
    return cfg


def train_or_evaluate(args):
    """What each launched process runs (detectron2's ``launch`` pickles it by name)."""
    if args.config_file.endswith(".py"):  # a LazyConfig: detectron2's LazyConfig conventions
        return lazy_training.main(args)
    cfg = load_config(args)
    # Before detectron2's setup writes its output folder and logs: the student and its YAML.
    if args.export_student:
        out = Path(args.export_student)
        refuse_writing_onto_inputs((out, out.with_suffix(".yaml")),
                                   (args.config_file, cfg.MODEL.WEIGHTS or None),
                                   reader="this export")
    default_setup(cfg, args)
    if args.eval_only or args.export_student:
        model = Trainer.build_model(cfg)
        SafeDetectionCheckpointer(model, save_dir=cfg.OUTPUT_DIR,
                                  trust=cfg.MODEL.HYBRIDKT.TRUST_CHECKPOINTS).resume_or_load(
            cfg.MODEL.WEIGHTS, resume=args.resume)
        if args.export_student:
            return save_student_checkpoint(model, args.export_student, cfg=cfg)
        return Trainer.test(cfg, model)
    trainer = Trainer(cfg)
    trainer.resume_or_load(resume=args.resume)
    return trainer.train()


def _check_then_launch(args):
    # The config is read here first, in this process: a mistake in it is then one line before
    # `launch` starts worker processes (whose errors would be tracebacks) or writes anything.
    load_config(args)
    return launch(train_or_evaluate, args.num_gpus, num_machines=args.num_machines,
                  machine_rank=args.machine_rank, dist_url=args.dist_url, args=(args,))


def main(argv: list[str] | None = None):
    if _IMPORT_ERROR is not None:
        if "--debug" in (sys.argv[1:] if argv is None else argv):
            raise _IMPORT_ERROR
        sys.exit(one_line(TOOL, _IMPORT_ERROR))
    parser = default_argument_parser()
    parser.add_argument("--export-student", default="", metavar="FILE",
                        help="write the student-only checkpoint (and its plain config) and exit")
    parser.add_argument("--trust-checkpoint", action="store_true",
                        help="unpickle any class in the checkpoints read (teacher, MODEL.WEIGHTS, "
                             "resume): only for files you trust, a pickle can run code")
    add_debug_flag(parser)
    args = parser.parse_args(argv)
    return run_tool(TOOL, lambda: _check_then_launch(args), args.debug)


if __name__ == "__main__":
    main()
