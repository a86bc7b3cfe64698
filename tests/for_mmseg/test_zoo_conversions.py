"""Stock mmseg configs converted with the README's lines train through tools/train_seg.py.

``configs/mmseg/zoo/`` holds the conversions of seven configs mmseg ships (SegFormer MiT-B0,
Swin-T UPerNet, MobileNetV2 DeepLabV3, MobileNetV3 LR-ASPP, SegNeXt MSCAN-T, and the
CascadeEncoderDecoder ones OCRNet and PointRend), each with a teacher named by the config it was
trained with. Here each trains 4 iterations on the
generated Cityscapes-style data: the model part of the config is used as shipped; only what
CI cannot have is replaced (the datasets and the schedule, the students' ImageNet init, which
would download, and the number of classes of the ADE20K ones, 150 -> 19).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

from .conftest import CONFIGS, REPO, SMALL_DATA

from mmengine.config import Config  # noqa: E402  (conftest skipped the module without mmseg)
from mmseg.registry import MODELS  # noqa: E402

from hybridkt_ext.for_openmmlab.teacher_config import backbone_from_config, resolve_config_path  # noqa: E402,E501

ZOO = sorted((CONFIGS / "zoo").glob("*.py"))
SYNTHETIC_BASE = CONFIGS / "_base_" / "synthetic_64x128.py"
# LR-ASPP pools its stride-8 feature with a fixed 49x49 window (mmseg's LRASPPHead): it needs
# images of at least 392 pixels, so its 64x128 images are padded to 400x400.
PAD_TO = {"mobilenet-v3-d8_lraspp": (400, 400)}
_DATA_KEYS = ("train_dataloader", "val_dataloader", "test_dataloader", "val_evaluator",
              "test_evaluator", "val_cfg", "test_cfg")


def _parse(path) -> Config:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Config.fromfile(str(path))


@pytest.fixture(scope="module")
def teacher_files(tmp_path_factory) -> dict[str, Path]:
    """One checkpoint per teacher config, as mmengine's Runner writes it (meta['cfg'] too)."""
    files = {}
    for name in sorted({_parse(p).model.backbone.teacher.config for p in ZOO}):
        backbone, _ = backbone_from_config(name)
        torch.manual_seed(0)
        weights = MODELS.build(backbone).state_dict()
        path = tmp_path_factory.mktemp("teacher") / "teacher.pth"
        torch.save({"meta": {"cfg": _parse(resolve_config_path(name)).pretty_text},
                    "state_dict": {f"backbone.{k}": v for k, v in weights.items()}}, path)
        files[name] = path
    return files


def _ci_config(path: Path, teacher: Path, data_root: Path, work_dir: Path) -> Path:
    cfg = _parse(path)
    synthetic = _parse(SYNTHETIC_BASE)
    for key in _DATA_KEYS:
        cfg[key] = synthetic[key]
    for loader in ("train_dataloader", "val_dataloader", "test_dataloader"):
        cfg[loader].batch_size = 2
        cfg[loader].dataset.data_root = str(data_root)
        cfg[loader].dataset.synthetic.update(SMALL_DATA)
    # Two iterations: every check below needs only a trained step, a checkpoint and an
    # evaluation (CI time).
    cfg.train_cfg = dict(type="IterBasedTrainLoop", max_iters=2, val_interval=2)
    cfg.param_scheduler = [dict(type="PolyLR", eta_min=1e-4, power=0.9, begin=0, end=2,
                                by_epoch=False)]
    cfg.default_hooks.logger = dict(type="LoggerHook", interval=1, log_metric_by_epoch=False)
    cfg.default_hooks.checkpoint = dict(type="CheckpointHook", by_epoch=False, interval=2)
    size = next((size for name, size in PAD_TO.items() if path.name.startswith(name)), None)
    cfg.model.data_preprocessor.size = size or (64, 128)
    if size:
        cfg.model.data_preprocessor.test_cfg = dict(size=size)  # validation too
    cfg.model.pretrained = None
    cfg.model.backbone.student.init_cfg = None  # an ImageNet download in the stock config
    cfg.model.backbone.student.pop("pretrained", None)
    cfg.model.backbone.teacher.checkpoint = str(teacher)
    for head in ("decode_head", "auxiliary_head"):
        heads = cfg.model.get(head)
        for h in heads if isinstance(heads, list) else [heads] if heads else []:
            h.num_classes = 19
    cfg.work_dir = str(work_dir)
    out = work_dir.parent / f"{path.stem}_ci.py"
    cfg.dump(str(out))
    return out


def test_the_zoo_holds_the_conversions():
    pairs = sorted((_parse(p).model.type, _parse(p).model.backbone.student.type) for p in ZOO)
    # The stock segmentors: only the backbone and the hook change.
    assert pairs == [("CascadeEncoderDecoder", "ResNetV1c"),  # OCRNet, PointRend
                     ("CascadeEncoderDecoder", "ResNetV1c"),
                     ("EncoderDecoder", "MSCAN"), ("EncoderDecoder", "MixVisionTransformer"),
                     ("EncoderDecoder", "MobileNetV2"), ("EncoderDecoder", "MobileNetV3"),
                     ("EncoderDecoder", "SwinTransformer")]
    for path in ZOO:
        cfg = _parse(path)
        assert cfg.model.backbone.teacher.config.startswith("mmseg::")
        # The student is the stock config's own backbone, untouched.
        stock = _parse(resolve_config_path(Path(path).read_text().split("_base_ = '")[1]
                                           .split("'")[0]))
        assert cfg.model.backbone.student == stock.model.backbone


@pytest.mark.parametrize("path", ZOO, ids=[p.stem.split("_hybrid")[0] for p in ZOO])
def test_a_converted_stock_config_trains_through_train_seg(path, tmp_path, data_dirs,
                                                           teacher_files):
    teacher = teacher_files[_parse(path).model.backbone.teacher.config]
    work = tmp_path / "work"
    config = _ci_config(path, teacher, data_dirs["cityscapes"], work)
    env = dict(os.environ, PYTHONWARNINGS="ignore", OMP_NUM_THREADS="1")
    done = subprocess.run([sys.executable, str(REPO / "tools" / "train_seg.py"), str(config)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (work / "iter_2.pth").exists()
    rows = [json.loads(r) for r in next(work.glob("*/vis_data/scalars.json")).read_text()
            .splitlines() if r.strip()]
    trained = [r for r in rows if "hkt_alpha" in r]
    assert [r["step"] for r in trained] == [1, 2]
    assert all(r["hkt_alpha"] > 0 and r["hkt_L1"] > 0 and r["hkt_L2"] > 0 for r in trained)
    assert any("mIoU" in r for r in rows)  # the stock head was evaluated after training
