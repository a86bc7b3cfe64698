"""A timm ViT teacher (issue 25, item 4) for mmdet's shipped RetinaNet, through the real Runner.

Random-weight ``vit_tiny_patch16_224`` shrunk to 4 blocks of 48 channels, saved by the test as
its checkpoint; ``dynamic_img_size`` lets it take the padded, non-square detection batches.
"""
from __future__ import annotations

import warnings

import torch

from hybridkt_ext.core.zoo_teachers import build_zoo_model

from .conftest import converted_config, read_scalars

VIT = dict(img_size=64, dynamic_img_size=True, depth=4, embed_dim=48, num_heads=2)


def test_a_timm_vit_teacher_trains_retinanet_two_iterations(tmp_path, citypersons_root):
    import hybridkt_ext.for_mmdet  # noqa: F401
    from mmengine.runner import Runner

    torch.manual_seed(0)
    weights = build_zoo_model("timm.vit_tiny_patch16_224", VIT).state_dict()
    torch.save(weights, tmp_path / "vit_tiny.pth")
    teacher = dict(VIT, type="timm.vit_tiny_patch16_224",
                   checkpoint=str(tmp_path / "vit_tiny.pth"))
    cfg = converted_config("retinanet", teacher, citypersons_root, tmp_path / "work")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        runner = Runner.from_cfg(cfg)
    runner.train()
    vit = runner.model.backbone.teacher.model
    assert torch.equal(vit.blocks[3].mlp.fc2.weight, weights["blocks.3.mlp.fc2.weight"])
    rows = [r for r in read_scalars(tmp_path / "work") if "hkt_alpha" in r]
    assert len(rows) == 2
    assert all(r["hkt_alpha"] > 0 and r["hkt_L1"] > 0 and r["hkt_L2"] > 0 for r in rows)
