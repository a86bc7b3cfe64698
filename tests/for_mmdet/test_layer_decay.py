"""mmdet's stock layer-decay constructor (ConvNeXt) sees through a HybridBackbone (issue 25, 3).

The stock Mask R-CNN ConvNeXt-T config's ``optim_wrapper`` builds unchanged after the backbone
swap; each student parameter gets its plain-model rate and the adapters the base lr
(``hybridkt_ext.for_openmmlab.layer_decay``). Tiny widths, no training (a build is the check).
"""
from __future__ import annotations

import warnings
from pathlib import Path

import mmdet
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope
from mmdet.registry import MODELS

import hybridkt_ext.for_mmdet  # noqa: F401

STOCK = (Path(mmdet.__file__).parent / ".mim" / "configs" / "convnext" /
         "mask-rcnn_convnext-t-p4-w7_fpn_amp-ms-crop-3x_coco.py")
WIDTHS = [16, 32, 64, 128]


def _rates(cfg: Config, model_cfg: dict) -> dict[str, float]:
    """lr of each trainable parameter, by its name in the plain detector (AMP needs a GPU, so a
    plain OptimWrapper; the constructor and paramwise_cfg are the stock ones)."""
    torch.manual_seed(0)
    model = MODELS.build(model_cfg)
    wrapper = dict(cfg.optim_wrapper, type="OptimWrapper")
    wrapper.pop("loss_scale", None)
    groups = build_optim_wrapper(model, wrapper).optimizer.param_groups
    names = {id(p): n.replace("backbone.engine.student.model.", "backbone.")
             for n, p in model.named_parameters()}
    return {names[id(p)]: group["lr"] for group in groups for p in group["params"]}


def test_stock_convnext_layer_decay_gives_the_plain_rates():
    init_default_scope("mmdet")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cfg = Config.fromfile(str(STOCK))
    cfg.model.backbone.update(arch=dict(depths=[1, 1, 3, 1], channels=WIDTHS), init_cfg=None)
    cfg.model.neck.in_channels = WIDTHS
    plain = _rates(cfg, cfg.model)
    hybrid = _rates(cfg, dict(cfg.model, backbone=dict(
        type="HybridBackbone", student=cfg.model.backbone,
        teacher=dict(type="ResNet", depth=18, out_indices=(0, 1, 2, 3), allow_random_init=True))))
    adapters = {n: lr for n, lr in hybrid.items() if n.startswith("backbone.engine.")}
    assert adapters and set(adapters.values()) == {cfg.optim_wrapper.optimizer.lr}
    assert {n: lr for n, lr in hybrid.items() if n not in adapters} == plain
    assert len(set(plain.values())) > 2  # the decay is really stage-wise
