"""A teacher trained with one library, in a hybrid config of another (issue 25, item 1).

Each teacher checkpoint is saved here with random weights in its library's own format: an
mmengine checkpoint carries ``meta['cfg']`` (the training config's text, as the Runner writes
it, ``default_scope`` included); a detectron2 model-zoo ``.pkl`` is a pickled dict whose
``'model'`` holds numpy arrays. The student config then trains 2 iterations through mmengine's
real Runner on the project's generated data.
"""
from __future__ import annotations

import pickle
import warnings
from pathlib import Path

import pytest
import torch

pytest.importorskip("mmseg.models", reason="MMSegmentation (with mmcv ops) is not installed; "
                    "pip install 'hybridkt_ext[mmseg]' to run these tests")

from mmengine.config import Config  # noqa: E402

from hybridkt_ext.core import TeacherCheckpointError  # noqa: E402
from hybridkt_ext.for_openmmlab.teacher_config import (  # noqa: E402
    backbone_from_config, resolve_config_path)
from tests.for_mmseg.conftest import HYBRID_CONFIG, read_scalars, run_config  # noqa: E402

# mmseg's DeepLabV3 (a dilated ResNetV1c-18, D8), as shipped.
MMSEG_TEACHER = "mmseg::deeplabv3/deeplabv3_r18-d8_4xb2-80k_cityscapes-512x1024.py"
_NEEDS_MMDET = "MMDetection (with mmcv ops) is not installed; pip install 'hybridkt_ext[mmdet]'"


def _parse(path) -> Config:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Config.fromfile(str(path))


def _save_mmengine_teacher(config: str, path: Path) -> Path:
    """A random-weight checkpoint of ``config``'s backbone, as mmengine's Runner saves one."""
    import importlib

    backbone, _ = backbone_from_config(config)
    cfg = _parse(resolve_config_path(config))
    models = importlib.import_module(f"{cfg.default_scope}.registry").MODELS
    torch.manual_seed(0)
    weights = models.build(backbone).state_dict()
    torch.save({"meta": {"cfg": cfg.pretty_text},
                "state_dict": {f"backbone.{k}": v for k, v in weights.items()}}, path)
    return path


def _trained_steps(work_dir: Path) -> list[dict]:
    steps = [row for row in read_scalars(work_dir) if "loss" in row]
    assert len(steps) == 2, steps
    assert all(torch.isfinite(torch.tensor(row["loss"])) for row in steps), steps
    return steps


@pytest.fixture(scope="module")
def mmseg_teacher(tmp_path_factory) -> Path:
    return _save_mmengine_teacher(MMSEG_TEACHER,
                                  tmp_path_factory.mktemp("mmseg_teacher") / "deeplabv3.pth")


@pytest.fixture(scope="module")
def citypersons(tmp_path_factory) -> Path:
    pytest.importorskip("mmdet.models", reason=_NEEDS_MMDET)
    from hybridkt_ext.datasets.synthetic_citypersons import ensure_synthetic_citypersons
    from tests.for_mmdet.conftest import SMALL

    root = tmp_path_factory.mktemp("mmdet_data") / "synthetic_citypersons"
    return ensure_synthetic_citypersons(root, statistics="learnable", **SMALL)


def _train_mmdet(cfg: Config) -> None:
    import hybridkt_ext.for_mmdet  # noqa: F401
    from mmengine.runner import Runner

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        Runner.from_cfg(cfg).train()


def test_an_mmseg_deeplabv3_teacher_trains_in_mmdet_faster_rcnn(mmseg_teacher, citypersons,
                                                                  tmp_path):
    from tests.for_mmdet.conftest import converted_config

    teacher = dict(config=MMSEG_TEACHER, checkpoint=str(mmseg_teacher))
    cfg = converted_config("faster_rcnn", teacher, citypersons, tmp_path / "work")
    _train_mmdet(cfg)
    _trained_steps(tmp_path / "work")


def _boxes_as_masks_transform() -> str:
    """A pipeline step giving every box a filled mask (CityPersons has boxes only)."""
    from mmdet.registry import TRANSFORMS
    from mmdet.structures.mask import BitmapMasks

    name = "HKTTestBoxesAsMasks"
    if TRANSFORMS.get(name) is None:
        @TRANSFORMS.register_module(name=name)
        class BoxesAsMasks:
            def __call__(self, results: dict) -> dict:
                height, width = results["img"].shape[:2]
                masks = torch.zeros((len(results["gt_bboxes"]), height, width), dtype=torch.uint8)
                for mask, (x0, y0, x1, y1) in zip(masks, results["gt_bboxes"].tensor.long()):
                    mask[y0:y1 + 1, x0:x1 + 1] = 1
                results["gt_masks"] = BitmapMasks(masks.numpy(), height, width)
                return results
    return name


def test_an_mmseg_deeplabv3_teacher_trains_in_mmdet_mask_rcnn(mmseg_teacher, citypersons,
                                                                tmp_path):
    from tests.for_mmdet import conftest as mmdet_tests

    teacher = dict(config=MMSEG_TEACHER, checkpoint=str(mmseg_teacher))
    shipped = dict(mmdet_tests.SHIPPED, mask_rcnn="mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py")
    with pytest.MonkeyPatch.context() as patch:  # mmdet's Mask R-CNN config, converted alike
        patch.setattr(mmdet_tests, "SHIPPED", shipped)
        cfg = mmdet_tests.converted_config("mask_rcnn", teacher, citypersons, tmp_path / "work")
    cfg.model.roi_head.mask_head.num_classes = 1
    masks = _boxes_as_masks_transform()
    pipeline = cfg.train_dataloader.dataset.pipeline
    after = next(i for i, t in enumerate(pipeline) if t["type"] == "LoadAnnotations") + 1
    pipeline.insert(after, dict(type=masks))  # before Resize/flip, which move the masks too
    _train_mmdet(cfg)
    steps = _trained_steps(tmp_path / "work")
    assert all("hkt_L3.mask" in row for row in steps), steps  # the mask head trained


def test_an_mmdet_detector_teacher_trains_in_an_mmseg_config(tmp_path):
    pytest.importorskip("mmdet.models", reason=_NEEDS_MMDET)
    # mmdet's Faster R-CNN with a ResNet-18 backbone (CI time); a config file by path, so
    # the scope comes from its default_scope.
    detector = tmp_path / "faster-rcnn_r18_fpn.py"
    detector.write_text("_base_ = 'mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py'\n"
                        "model = dict(backbone=dict(depth=18, init_cfg=None),\n"
                        "             neck=dict(in_channels=[64, 128, 256, 512]))\n")
    checkpoint = _save_mmengine_teacher(str(detector), tmp_path / "detector.pth")
    cfg = _parse(HYBRID_CONFIG)
    cfg.model.backbone.teacher = dict(config=str(detector), checkpoint=str(checkpoint))
    runner = run_config(cfg, tmp_path / "work", tmp_path / "data")
    # mmdet's own ResNet (the student is mmseg's ResNetV1c), not mmseg's of the same name.
    from mmdet.models.backbones import ResNet

    assert any(type(m) is ResNet for m in runner.model.backbone.modules())
    _trained_steps(tmp_path / "work")


def test_a_detectron2_pkl_teacher_trains_in_an_mmseg_config(tmp_path):
    pytest.importorskip("detectron2.modeling", reason="detectron2 is not installed")
    from detectron2.config import get_cfg
    from detectron2.layers import ShapeSpec
    from detectron2.modeling.backbone.resnet import build_resnet_backbone

    # A detectron2 ResNet-18 bottom-up (BasicBlocks, FrozenBN), saved as the model zoo does.
    d2 = get_cfg()
    d2.MODEL.RESNETS.DEPTH, d2.MODEL.RESNETS.RES2_OUT_CHANNELS = 18, 64
    d2.MODEL.RESNETS.OUT_FEATURES = ["res2", "res3", "res4", "res5"]  # res5 built too
    torch.manual_seed(0)
    bottom_up = build_resnet_backbone(d2, ShapeSpec(channels=3))
    path = tmp_path / "model_final.pkl"
    with open(path, "wb") as f:
        pickle.dump({"model": {f"backbone.bottom_up.{k}": v.numpy()
                               for k, v in bottom_up.state_dict().items()},
                     "__author__": "Detectron2 Model Zoo"}, f)
    cfg = _parse(HYBRID_CONFIG)
    cfg.model.backbone.teacher = dict(
        type="ResNet", depth=18, out_indices=(0, 1, 2, 3), checkpoint=str(path),
        prefix="backbone.bottom_up.", remap="detectron2_resnet_to_torchvision",
        input=dict(mean=[103.53, 116.28, 123.675], std=[1.0, 1.0, 1.0], channel_order="BGR"))
    run_config(cfg, tmp_path / "work", tmp_path / "data")
    _trained_steps(tmp_path / "work")


def test_an_mmseg_checkpoint_refuses_another_network_in_mmdet(mmseg_teacher):
    pytest.importorskip("mmdet.models", reason=_NEEDS_MMDET)
    from hybridkt_ext.for_mmdet.hybrid_backbone import HybridBackbone
    from hybridkt_ext.for_openmmlab.teacher_builder import build_teacher

    source = HybridBackbone.backbone_source()
    # The scope written by hand is the checkpoint's own: the type matches, the network not
    # (no dilations), and that is what the message names.
    differs = r"dilations: \(1, 1, 1, 1\) vs \(1, 1, 2, 4\).*sets.*dilations=\(1, 1, 2, 4\)"
    with pytest.raises(TeacherCheckpointError, match=differs):
        build_teacher(dict(type="mmseg.ResNetV1c", depth=18, checkpoint=str(mmseg_teacher),
                           prefix="backbone."), source)
    # Another type altogether still differs by type.
    with pytest.raises(TeacherCheckpointError, match=r"type 'ResNet' here vs 'mmseg\.ResNetV1c'"):
        build_teacher(dict(type="ResNet", depth=18, checkpoint=str(mmseg_teacher),
                           prefix="backbone."), source)
    # The unscoped mmseg type in mmdet says which scope has it.
    with pytest.raises(ValueError, match=r"'mmseg\.ResNetV1c'.* is registered"):
        build_teacher(dict(type="ResNetV1c", depth=18, checkpoint=str(mmseg_teacher),
                           prefix="backbone."), source)
