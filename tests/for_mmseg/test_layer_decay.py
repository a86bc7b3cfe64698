"""The stock layer-decay optimiser constructors see through a HybridBackbone (issue 25, item 3).

mmseg's ConvNeXt and BEiT configs set ``constructor='LearningRateDecayOptimizerConstructor'``
(or BEiT's older ``LayerDecayOptimizerConstructor``), which reads the backbone's class and
parameter names. After the backbone swap, the stock ``optim_wrapper`` must still build, and
give each student parameter the rate it has in the plain model; adapters get the base lr.
The ConvNeXt and BEiT configs train 2 iterations through the real Runner, shrunk to tiny
widths.
"""
from __future__ import annotations

import warnings

import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope

import mmseg
from pathlib import Path
from mmseg.registry import MODELS

from .conftest import CONFIGS, read_scalars, run_config

STOCK = Path(mmseg.__file__).parent / ".mim" / "configs"
CONVNEXT = STOCK / "convnext" / "convnext-tiny_upernet_8xb2-amp-160k_ade20k-512x512.py"
BEIT = STOCK / "beit" / "beit-base_upernet_8xb2-160k_ade20k-640x640.py"
SYNTHETIC_BASE = CONFIGS / "_base_" / "synthetic_64x128.py"
TEACHER = dict(type="ResNetV1c", depth=18, stem_channels=16, base_channels=16,
               out_indices=(0, 1, 2, 3), allow_random_init=True)
WIDTHS = [16, 32, 64, 128]


def _parse(path) -> Config:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Config.fromfile(str(path))


def _hybrid(cfg: Config) -> Config:
    """The stock model with its backbone as the student of a tiny random teacher."""
    cfg.model.backbone = dict(type="HybridBackbone", student=cfg.model.backbone, teacher=TEACHER)
    return cfg


def _tiny_convnext() -> Config:
    cfg = _parse(CONVNEXT)
    cfg.model.pretrained = None
    cfg.model.backbone.update(arch=dict(depths=[1, 1, 3, 1], channels=WIDTHS), init_cfg=None)
    cfg.model.decode_head.update(in_channels=WIDTHS, channels=16, num_classes=19)
    cfg.model.auxiliary_head.update(in_channels=64, channels=16, num_classes=19)
    return cfg


def _tiny_beit() -> Config:
    cfg = _parse(BEIT)
    cfg.model.pretrained = None
    cfg.model.backbone.update(img_size=64, embed_dims=32, num_heads=2, init_cfg=None)
    cfg.model.neck.embed_dim = 32
    cfg.model.decode_head.update(in_channels=[32] * 4, channels=16, num_classes=19)
    cfg.model.auxiliary_head.update(in_channels=32, channels=16, num_classes=19)
    return cfg


def _without_amp(optim_wrapper) -> dict:
    """The config's optim_wrapper as a plain OptimWrapper (AMP needs a GPU); the constructor and
    its paramwise_cfg stay the stock ones."""
    wrapper = dict(optim_wrapper, type="OptimWrapper")
    wrapper.pop("loss_scale", None)
    return wrapper


def _rates(cfg: Config, hybrid: bool) -> dict[str, float]:
    """lr of each trainable parameter, by its name in the plain segmentor, from the config's
    own optim_wrapper."""
    import hybridkt_ext.for_mmseg  # noqa: F401
    init_default_scope("mmseg")
    torch.manual_seed(0)
    model = MODELS.build((_hybrid(cfg) if hybrid else cfg).model)
    wrapper = build_optim_wrapper(model, _without_amp(cfg.optim_wrapper))
    names = {id(p): n.replace("backbone.engine.student.model.", "backbone.")
             for n, p in model.named_parameters()}
    return {names[id(p)]: group["lr"] for group in wrapper.optimizer.param_groups
            for p in group["params"]}


def _check_same_rates_as_plain(cfg: Config) -> None:
    plain, hybrid = _rates(cfg.copy(), False), _rates(cfg.copy(), True)
    base_lr = cfg.optim_wrapper.optimizer.lr
    adapters = {n: lr for n, lr in hybrid.items() if n.startswith("backbone.engine.")}
    assert adapters and set(adapters.values()) == {base_lr}
    assert {n: lr for n, lr in hybrid.items() if n not in adapters} == plain
    assert len(set(plain.values())) > 2  # the decay is really layer-wise


def test_stock_convnext_layer_decay_gives_the_plain_rates():
    _check_same_rates_as_plain(_tiny_convnext())


def test_stock_beit_layer_decay_gives_the_plain_rates():
    _check_same_rates_as_plain(_tiny_beit())


def _short_run(cfg: Config, size: tuple[int, int]) -> Config:
    """The hybrid model and the stock optimiser on the generated data, 2 iterations."""
    cfg = _hybrid(cfg)
    synthetic = _parse(SYNTHETIC_BASE)
    for key in ("train_dataloader", "val_dataloader", "test_dataloader", "val_evaluator",
                "test_evaluator", "val_cfg", "test_cfg"):
        cfg[key] = synthetic[key]
    cfg.model.data_preprocessor.size = size
    cfg.optim_wrapper = _without_amp(cfg.optim_wrapper)
    cfg.train_cfg = dict(type="IterBasedTrainLoop", max_iters=2, val_interval=2)
    cfg.param_scheduler = []
    cfg.custom_hooks = [dict(type="HybridKTHook")]
    cfg.default_hooks.checkpoint = dict(type="CheckpointHook", by_epoch=False, interval=2)
    cfg.default_hooks.logger = dict(type="LoggerHook", interval=1, log_metric_by_epoch=False)
    return cfg


def _check_trains_with_layer_decay(cfg: Config, work, data_root) -> None:
    runner = run_config(cfg, work, data_root)
    scales = {g.get("lr_scale") for g in runner.optim_wrapper.optimizer.param_groups}
    assert len(scales) > 2
    trained = [r for r in read_scalars(work) if "hkt_alpha" in r]
    assert [r["step"] for r in trained] == [1, 2]


def test_stock_convnext_config_trains_with_its_stock_optimiser(tmp_path, data_dirs):
    cfg = _short_run(_tiny_convnext(), (64, 128))
    _check_trains_with_layer_decay(cfg, tmp_path / "work", data_dirs["cityscapes"])


def test_stock_beit_config_trains_with_its_stock_optimiser(tmp_path, data_dirs):
    # BEiT's position tables fix its input at img_size: 64x64 crops, as the stock config crops
    # to 640, and sliding-window inference at that size, as the stock test_cfg does.
    cfg = _short_run(_tiny_beit(), (64, 64))
    cfg.train_dataloader.dataset.pipeline.insert(
        -1, dict(type="RandomCrop", crop_size=(64, 64)))
    cfg.model.test_cfg = dict(mode="slide", crop_size=(64, 64), stride=(64, 64))
    _check_trains_with_layer_decay(cfg, tmp_path / "work", data_dirs["cityscapes"])
