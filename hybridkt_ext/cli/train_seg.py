"""Train an mmseg segmentor, hybrid-forward configs included (mmseg's tools/train.py CLI).

Examples:
  hybridkt-train-seg \
      configs/mmseg/deeplabv3_r18w8-d8_hybrid-r18w16-d8_1xb4-400_synthetic-cityscapes-64x128.py \
      --cfg-options train_cfg.max_iters=4
  torchrun --nproc_per_node=4 -m hybridkt_ext.cli.train_seg CONFIG --launcher pytorch
  (without CUDA: one process per core with gloo, env_cfg.dist_cfg.backend='gloo')
  hybridkt-train-seg CONFIG --work-dir DIR --resume   # continue DIR's latest checkpoint

The tool itself is hybridkt_ext/for_openmmlab/training_tool.py (shared with hybridkt-train-det).
"""
import hybridkt_ext.for_mmseg  # noqa: F401  (registers HybridBackbone & co. in mmseg)
from hybridkt_ext.for_openmmlab import training_tool


def main(argv: list[str] | None = None) -> None:
    training_tool.main("train_seg", "Train a segmentor (hybrid forward aware)", argv)


if __name__ == "__main__":
    main()
