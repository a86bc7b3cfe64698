"""mmdet's EMA recipes (RTMDet-tiny, YOLOX-tiny, as shipped) converted with their own custom
hooks kept, trained through a checkpoint, resumed, and exported: the EMA model holds no teacher,
the checkpoint's state_dict is the EMA weights and the student export writes them."""
from __future__ import annotations

import copy
import warnings
from pathlib import Path

import pytest
import torch

from tests.for_mmdet.conftest import DATA_CONFIG

RECIPES = {"rtmdet_tiny": "rtmdet/rtmdet_tiny_8xb32-300e_coco.py",
           "yolox_tiny": "yolox/yolox_tiny_8xb8-300e_coco.py"}
TEACHER_PREFIX = "backbone.engine.teacher."
PIPELINE = [dict(type="LoadImageFromFile"), dict(type="LoadAnnotations", with_bbox=True),
            dict(type="Resize", scale=(128, 64), keep_ratio=True),
            dict(type="Pad", size=(128, 64)), dict(type="PackDetInputs")]


def _recipe(name: str, data_root: Path, work_dir: Path, teacher: Path, iters: int):
    """The shipped config with the README's conversion (backbone swap, custom_hooks kept plus
    HybridKTHook); data: synthetic CityPersons at 128x64 with a plain pipeline (Mosaic/MixUp
    need more images than a test has); schedule by iteration."""
    import mmdet
    from mmengine.config import Config

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cfg = Config.fromfile(str(Path(mmdet.__file__).parent / ".mim" / "configs" / RECIPES[name]))
        data = Config.fromfile(str(DATA_CONFIG))
    cfg_wraps_mix_dataset = cfg.train_dataloader.dataset.type == "MultiImageMixDataset"
    for key in ("custom_imports", "val_evaluator", "test_evaluator"):
        cfg[key] = data[key]
    for loader in ("train_dataloader", "val_dataloader", "test_dataloader"):
        cfg[loader] = copy.deepcopy(data[loader])
        cfg[loader].update(batch_size=2, num_workers=0, persistent_workers=False)
        cfg[loader].dataset.update(data_root=str(data_root), pipeline=PIPELINE,
                                   synthetic=dict(cfg[loader].dataset.synthetic,
                                                  num_train=8, num_val=4))
    if cfg_wraps_mix_dataset:  # YOLOX's mode switch hook needs the MultiImageMixDataset
        train = cfg.train_dataloader.dataset
        cfg.train_dataloader.dataset = dict(type="MultiImageMixDataset", pipeline=PIPELINE[2:],
                                            dataset=dict(train, pipeline=PIPELINE[:2]))
    cfg.val_evaluator.data_root = str(data_root)
    cfg.model.data_preprocessor.pop("batch_augments", None)  # YOLOX's 480-800 px resizing
    cfg.model.bbox_head.num_classes = 1
    cfg.model.backbone = dict(type="HybridBackbone", student=dict(cfg.model.backbone, init_cfg=None),
                              teacher=dict(cfg.model.backbone, init_cfg=None,
                                           checkpoint=str(teacher), prefix="backbone."))
    cfg.custom_hooks = [*cfg.custom_hooks, dict(type="HybridKTHook")]  # the recipe's hooks kept
    cfg.train_cfg = dict(type="IterBasedTrainLoop", max_iters=iters)
    # No validation: an untrained YOLOX predicts infinite boxes the CityPersons metric refuses.
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    cfg.param_scheduler = []
    cfg.default_hooks.checkpoint = dict(type="CheckpointHook", interval=2, by_epoch=False)
    cfg.default_hooks.logger.interval = 1
    cfg.log_processor = dict(by_epoch=False)
    cfg.visualizer.name = f"vis_{name}_{id(work_dir)}"
    cfg.work_dir = str(work_dir)
    return cfg


def _teacher_file(name: str, tmp_path: Path) -> Path:
    """A seeded (untrained) copy of the recipe's own backbone, saved as a detector checkpoint."""
    import mmdet
    import hybridkt_ext.for_mmdet  # noqa: F401
    from mmdet.registry import MODELS
    from mmengine.config import Config

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cfg = Config.fromfile(str(Path(mmdet.__file__).parent / ".mim" / "configs" / RECIPES[name]))
    torch.manual_seed(0)
    backbone = MODELS.build(dict(cfg.model.backbone, init_cfg=None))
    path = tmp_path / f"{name}_teacher.pth"
    torch.save({"state_dict": {f"backbone.{k}": v for k, v in backbone.state_dict().items()},
                "meta": {}}, path)
    return path


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_ema_recipe_trains_saves_resumes_and_exports_the_ema_student(name, tmp_path,
                                                                       citypersons_root):
    from mmengine.hooks import EMAHook
    from mmengine.runner import Runner

    from hybridkt_ext.for_openmmlab.student_export import student_checkpoint

    teacher = _teacher_file(name, tmp_path)
    work = tmp_path / "work"
    runner = Runner.from_cfg(_recipe(name, citypersons_root, work, teacher, iters=2))
    runner.train()
    kept = {type(h).__name__ for h in runner.hooks}
    assert "EMAHook" in kept and "HybridKTHook" in kept
    assert ("PipelineSwitchHook" if name == "rtmdet_tiny" else "YOLOXModeSwitchHook") in kept
    ema = next(h for h in runner.hooks if isinstance(h, EMAHook)).ema_model
    model_teacher = runner.model.backbone.teacher
    assert ema.module.backbone.teacher is model_teacher  # one teacher in memory
    assert not any(k.startswith(TEACHER_PREFIX) for k in ema.avg_parameters)

    saved = torch.load(work / "iter_2.pth", map_location="cpu", weights_only=False)
    assert not [k for k in saved["state_dict"] if k.startswith(TEACHER_PREFIX)]
    assert not [k for k in saved["ema_state_dict"] if k.startswith("module." + TEACHER_PREFIX)]
    # The state_dict is the EMA weights (EMAHook's swap); ema_state_dict the raw ones.
    ema_weights = {k[len("module."):]: v for k, v in ema.state_dict().items()
                   if k.startswith("module.")}
    student_key = next(k for k in saved["state_dict"]
                       if k.startswith("backbone.engine.student.") and k.endswith("conv.weight"))
    assert torch.equal(saved["state_dict"][student_key], ema_weights[student_key])
    assert not torch.equal(saved["ema_state_dict"]["module." + student_key],
                           saved["state_dict"][student_key])  # 2 steps moved the raw weights
    exported = student_checkpoint(work / "iter_2.pth", trust=True)["state_dict"]
    plain_key = "backbone." + student_key[len("backbone.engine.student.model."):]
    assert torch.equal(exported[plain_key], ema_weights[student_key])

    resumed_cfg = _recipe(name, citypersons_root, work, teacher, iters=4)
    resumed_cfg.resume = True
    resumed = Runner.from_cfg(resumed_cfg)
    resumed.train()
    assert resumed.iter == 4 and (work / "iter_4.pth").is_file()
    resumed_ema = next(h for h in resumed.hooks if isinstance(h, EMAHook)).ema_model
    assert int(resumed_ema.steps) == 4  # the EMA state came back with the checkpoint


@pytest.mark.parametrize("hooks, lost", [
    ("[dict(type='HybridKTHook')]", ["EMAHook", "PipelineSwitchHook"]),
    ("[*_base_.get('custom_hooks', []), dict(type='HybridKTHook')]", [])])  # the docs' form
def test_a_conversion_that_drops_the_base_hooks_is_named(hooks, lost, tmp_path):
    from mmengine.config import Config

    from hybridkt_ext.for_openmmlab.lost_base_hooks import hooks_lost_from_base

    config = tmp_path / "rtmdet_tiny_hybrid.py"
    config.write_text(f"_base_ = 'mmdet::{RECIPES['rtmdet_tiny']}'\ncustom_hooks = {hooks}\n")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert hooks_lost_from_base(Config.fromfile(str(config))) == lost
