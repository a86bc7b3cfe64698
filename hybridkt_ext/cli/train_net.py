"""Train / evaluate a hybridkt detectron2 config (detectron2's project train_net conventions).

    hybridkt-train-net --config-file configs/detectron2/<leaf>.yaml [KEY VALUE ...]
    hybridkt-train-net --config-file <cfg> --num-gpus 2 ...     # 2 processes (GPU or CPU)
    hybridkt-train-net --config-file <cfg> --eval-only MODEL.WEIGHTS <model.pth>
    hybridkt-train-net --config-file <cfg> --export-student <out.pth> \
        MODEL.WEIGHTS <model.pth>       # also writes <out>.yaml, the plain student config
    hybridkt-train-net --config-file <lazy>.py train.max_iter=4   # a LazyConfig

SOLVER.AMP.ENABLED True trains with detectron2's AMPTrainer (CUDA float16). Checkpoints are
read without running code from them; --trust-checkpoint lifts that for files you trust.
"""
from detectron2.config import get_cfg
from detectron2.engine import default_argument_parser, default_setup, launch

from hybridkt_ext.for_detectron2 import lazy_training
from hybridkt_ext.tool_errors import add_debug_flag, run_tool
from hybridkt_ext.for_detectron2 import (
    HybridKTTrainer as Trainer,
    SafeDetectionCheckpointer,
    add_hybridkt_config,
    save_student_checkpoint,
)


def setup(args):
    cfg = get_cfg()
    add_hybridkt_config(cfg)
    cfg.merge_from_file(args.config_file)
    cfg.merge_from_list(args.opts)
    if args.trust_checkpoint:
        cfg.MODEL.HYBRIDKT.TRUST_CHECKPOINTS = True
    cfg.freeze()
    default_setup(cfg, args)
    return cfg


def train_or_evaluate(args):
    """What each launched process runs (detectron2's ``launch`` pickles it by name)."""
    if args.config_file.endswith(".py"):  # a LazyConfig: detectron2's LazyConfig conventions
        return lazy_training.main(args)
    cfg = setup(args)
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


def main(argv: list[str] | None = None):
    parser = default_argument_parser()
    parser.add_argument("--export-student", default="", metavar="FILE",
                        help="write the student-only checkpoint (and its plain config) and exit")
    parser.add_argument("--trust-checkpoint", action="store_true",
                        help="unpickle any class in the checkpoints read (teacher, MODEL.WEIGHTS, "
                             "resume): only for files you trust, a pickle can run code")
    add_debug_flag(parser)
    args = parser.parse_args(argv)
    return run_tool("train_net", lambda: launch(
        train_or_evaluate, args.num_gpus, num_machines=args.num_machines,
        machine_rank=args.machine_rank, dist_url=args.dist_url, args=(args,)), args.debug)


if __name__ == "__main__":
    main()
