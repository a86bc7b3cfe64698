"""Shared fixtures: mmdet's shipped detector configs converted as a user would, on synthetic
CityPersons, trained for a few iterations through mmengine's real Runner."""
from __future__ import annotations

import copy
import json
import warnings
from pathlib import Path

import pytest

pytest.importorskip("mmdet.models", reason="MMDetection (with mmcv ops) is not installed; "
                    "pip install 'hybridkt_ext[mmdet]' to run tests/for_mmdet")

from tests.conftest import REPO  # noqa: E402
DATA_CONFIG = REPO / "configs" / "mmdet" / "_base_" / "datasets" / \
    "synthetic-citypersons_detection.py"
# mmdet's own configs, as users have them (inside the installed package).
SHIPPED = {
    "faster_rcnn": "faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py",
    "cascade_rcnn": "cascade_rcnn/cascade-rcnn_r50_fpn_1x_coco.py",
    "retinanet": "retinanet/retinanet_r50_fpn_1x_coco.py",
    "fcos": "fcos/fcos_r50-caffe_fpn_gn-head_1x_coco.py",
}
SMALL = dict(num_train=8, num_val=4)
R18_CHANNELS = [64, 128, 256, 512]


def shipped_config(name: str) -> Path:
    import mmdet

    return Path(mmdet.__file__).parent / ".mim" / "configs" / SHIPPED[name]


def converted_config(name: str, teacher: dict, data_root: Path, work_dir: Path,
                     iters: int = 2):
    """mmdet's shipped ``name`` config with the conversion lines of the README applied.

    The conversion: the backbone swap (the original backbone becomes ``student``), the hook,
    the custom import (in the data config). The student is made ResNet-18 without pretrained
    weights (CPU test time; no download), the data is the synthetic CityPersons at 1/8 scale.
    """
    from mmengine.config import Config

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cfg = Config.fromfile(str(shipped_config(name)))
        data = Config.fromfile(str(DATA_CONFIG))
    # The dataset base in place of mmdet's COCO one, and a schedule by iteration.
    for key in ("custom_imports", "val_evaluator", "test_evaluator"):
        cfg[key] = data[key]
    for loader in ("train_dataloader", "val_dataloader", "test_dataloader"):
        cfg[loader].dataset = data[loader].dataset
    cfg.train_cfg = dict(type="IterBasedTrainLoop", max_iters=iters, val_interval=iters)
    cfg.param_scheduler = []
    cfg.default_hooks.checkpoint.by_epoch = False
    cfg.log_processor = dict(by_epoch=False, window_size=1)  # each row one iteration's values
    cfg.model.backbone = dict(type="HybridBackbone", teacher=teacher,
                              student=dict(cfg.model.backbone, depth=18, init_cfg=None))
    cfg.custom_hooks = [dict(type="HybridKTHook")]
    cfg.model.neck.in_channels = R18_CHANNELS
    heads = cfg.model.roi_head.bbox_head if "roi_head" in cfg.model else cfg.model.bbox_head
    for head in heads if isinstance(heads, list) else [heads]:
        head.num_classes = 1
    options = {"default_hooks.logger.interval": 1, "default_hooks.checkpoint.interval": iters,
               "val_evaluator.data_root": str(data_root),
               "visualizer.name": f"vis_{work_dir.name}_{id(work_dir)}"}
    for loader in ("train_dataloader", "val_dataloader", "test_dataloader"):
        options[f"{loader}.dataset.data_root"] = str(data_root)
        options[f"{loader}.dataset.synthetic.num_train"] = SMALL["num_train"]
        options[f"{loader}.dataset.synthetic.num_val"] = SMALL["num_val"]
        options[f"{loader}.batch_size"] = 2
        # 1/8 of Cityscapes' side: seconds per iteration on two CPU cores.
        pipeline = copy.deepcopy(cfg[loader].dataset.pipeline)
        for transform in pipeline:
            if transform["type"] == "Resize":
                transform["scale"] = (256, 128)
        options[f"{loader}.dataset.pipeline"] = pipeline
    cfg.merge_from_dict(options)
    cfg.work_dir = str(work_dir)
    return cfg


def read_scalars(work_dir: Path) -> list[dict]:
    files = sorted(work_dir.glob("*/vis_data/scalars.json"))
    assert files, f"no vis_data/scalars.json under {work_dir}"
    return [json.loads(line) for line in files[-1].read_text().splitlines() if line.strip()]


@pytest.fixture(scope="session")
def citypersons_root(tmp_path_factory) -> Path:
    from hybridkt_ext.datasets.synthetic_citypersons import ensure_synthetic_citypersons

    root = tmp_path_factory.mktemp("mmdet_data") / "synthetic_citypersons"
    return ensure_synthetic_citypersons(root, statistics="learnable", **SMALL)


@pytest.fixture(scope="session")
def teacher_checkpoint(tmp_path_factory) -> Path:
    """A 'detector' checkpoint whose backbone is an mmdet ResNet-18 (seeded, not trained)."""
    import torch
    import hybridkt_ext.for_mmdet  # noqa: F401
    from mmdet.registry import MODELS

    torch.manual_seed(0)
    backbone = MODELS.build(dict(type="ResNet", depth=18, out_indices=(0, 1, 2, 3)))
    path = tmp_path_factory.mktemp("teacher") / "r18_detector.pth"
    torch.save({"state_dict": {f"backbone.{k}": v for k, v in backbone.state_dict().items()},
                "meta": {}}, path)
    return path


def teacher_spec(checkpoint: Path) -> dict:
    return dict(type="ResNet", depth=18, checkpoint=str(checkpoint), prefix="backbone.")
