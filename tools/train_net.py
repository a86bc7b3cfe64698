#!/usr/bin/env python
"""Train / evaluate a hybridkt detectron2 config (detectron2's project train_net conventions).

    python tools/train_net.py --config-file configs/detectron2/<leaf>.yaml [KEY VALUE ...]
    python tools/train_net.py --config-file <cfg> --eval-only MODEL.WEIGHTS <model.pth>
    python tools/train_net.py --config-file <cfg> --export-student <out.pth> \
        MODEL.WEIGHTS <model.pth>
"""
import os

from detectron2.checkpoint import DetectionCheckpointer
from detectron2.config import get_cfg
from detectron2.engine import DefaultTrainer, default_argument_parser, default_setup, launch

from hybridkt_ext.for_detectron2 import (
    CityPersonsEvaluator,
    HybridKTHook,
    add_hybridkt_config,
    export_student_checkpoint,
)


class Trainer(DefaultTrainer):
    """DefaultTrainer + the CityPersons evaluator + the hybridkt hook."""

    @classmethod
    def build_evaluator(cls, cfg, dataset_name, output_folder=None):
        output_folder = output_folder or os.path.join(cfg.OUTPUT_DIR, "inference")
        return CityPersonsEvaluator(dataset_name, output_dir=output_folder)

    def build_hooks(self):
        hooks = super().build_hooks()
        # Before the writers (last), so their final write already sees this step's values.
        plot = os.path.join(self.cfg.OUTPUT_DIR, "hkt_alpha_losses.png")
        hooks.insert(len(hooks) - 1, HybridKTHook(plot_path=plot))
        return hooks


def setup(args):
    cfg = get_cfg()
    add_hybridkt_config(cfg)
    cfg.merge_from_file(args.config_file)
    cfg.merge_from_list(args.opts)
    cfg.freeze()
    default_setup(cfg, args)
    return cfg


def main(args):
    cfg = setup(args)
    if args.eval_only or args.export_student:
        model = Trainer.build_model(cfg)
        DetectionCheckpointer(model, save_dir=cfg.OUTPUT_DIR).resume_or_load(
            cfg.MODEL.WEIGHTS, resume=args.resume)
        if args.export_student:
            return export_student_checkpoint(model, args.export_student)
        return Trainer.test(cfg, model)
    trainer = Trainer(cfg)
    trainer.resume_or_load(resume=args.resume)
    return trainer.train()


if __name__ == "__main__":
    parser = default_argument_parser()
    parser.add_argument("--export-student", default="", metavar="FILE",
                        help="write the student-only checkpoint for the plain config and exit")
    args = parser.parse_args()
    launch(main, args.num_gpus, num_machines=args.num_machines, machine_rank=args.machine_rank,
           dist_url=args.dist_url, args=(args,))
