"""mmseg's MobileNetV3-small LR-ASPP config converts as a student (issue 25, item 8a).

The stock config (``mobilenet-v3-d8-scratch-s_lraspp``, ``arch='small'``,
``out_indices=(0, 1, 12)``) feeds LR-ASPP a stride-2 feature, so its teacher needs a stage
ending at stride 2 too: a MobileNet (V2 or V3) has one and the conversion trains; a ResNet's
stem goes straight to stride 4, and the build is refused naming the out index.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import mmseg
import pytest
from mmengine.config import Config
from mmengine.registry import init_default_scope

from hybridkt_ext.core import StageMismatchError
from hybridkt_ext.for_mmseg import HybridBackbone

from .conftest import CONFIGS, read_scalars, run_config

STOCK = (Path(mmseg.__file__).parent / ".mim" / "configs" / "mobilenet_v3" /
         "mobilenet-v3-d8-scratch-s_lraspp_4xb4-320k_cityscapes-512x1024.py")
SYNTHETIC_BASE = CONFIGS / "_base_" / "synthetic_64x128.py"
TEACHER = dict(type="MobileNetV3", arch="small", out_indices=(0, 1, 12), allow_random_init=True)


def _parse(path) -> Config:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Config.fromfile(str(path))


def test_stock_small_lraspp_trains_as_a_student(tmp_path, data_dirs):
    cfg = _parse(STOCK)
    assert cfg.model.backbone.arch == "small" and cfg.model.backbone.out_indices == (0, 1, 12)
    cfg.model.backbone = dict(type="HybridBackbone", student=cfg.model.backbone, teacher=TEACHER)
    synthetic = _parse(SYNTHETIC_BASE)
    for key in ("train_dataloader", "val_dataloader", "test_dataloader", "val_evaluator",
                "test_evaluator", "val_cfg", "test_cfg"):
        cfg[key] = synthetic[key]
    # LR-ASPP pools its stride-8 feature with a fixed 49x49 window: at least 392 pixels.
    cfg.model.data_preprocessor.size = (400, 400)
    cfg.model.data_preprocessor.test_cfg = dict(size=(400, 400))
    cfg.train_cfg = dict(type="IterBasedTrainLoop", max_iters=2, val_interval=2)
    cfg.param_scheduler = []
    cfg.custom_hooks = [dict(type="HybridKTHook")]
    cfg.default_hooks.checkpoint = dict(type="CheckpointHook", by_epoch=False, interval=2)
    cfg.default_hooks.logger = dict(type="LoggerHook", interval=1, log_metric_by_epoch=False)
    run_config(cfg, tmp_path / "work", data_dirs["cityscapes"])
    trained = [r for r in read_scalars(tmp_path / "work") if "hkt_alpha" in r]
    assert [r["step"] for r in trained] == [1, 2]
    assert all(r["hkt_L1"] > 0 and r["hkt_L2"] > 0 for r in trained)


def test_a_teacher_without_a_stride_2_stage_is_refused_naming_the_index():
    init_default_scope("mmseg")
    student = dict(_parse(STOCK).model.backbone, norm_cfg=dict(type="BN", eps=0.001))
    resnet = dict(type="ResNetV1c", depth=18, stem_channels=16, base_channels=16,
                  out_indices=(0, 1, 2, 3), allow_random_init=True)
    with pytest.raises(StageMismatchError, match=r"include \[0\]"):
        HybridBackbone(student=student, teacher=resnet)
