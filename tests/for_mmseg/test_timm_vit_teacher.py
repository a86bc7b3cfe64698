"""A timm ViT teacher (issue 25, item 4) for mmseg's ResNet student, through the real Runner.

Random-weight ``vit_tiny_patch16_224`` shrunk to 4 blocks of 48 channels, saved by the test as
its checkpoint; ``dynamic_img_size`` lets it take the generated 64x128 images.
"""
from __future__ import annotations

import torch

from hybridkt_ext.core.zoo_teachers import build_zoo_model

from .conftest import HYBRID_CONFIG, read_scalars, run_config

VIT = dict(type="timm.vit_tiny_patch16_224", img_size=64, dynamic_img_size=True, depth=4,
           embed_dim=48, num_heads=2)


def test_a_timm_vit_teacher_trains_a_resnet_student_two_iterations(tmp_path, data_dirs):
    torch.manual_seed(0)
    network = {k: v for k, v in VIT.items() if k != "type"}
    weights = build_zoo_model(VIT["type"], network).state_dict()
    torch.save(weights, tmp_path / "vit_tiny.pth")
    teacher = dict(VIT, _delete_=True, checkpoint=str(tmp_path / "vit_tiny.pth"))
    runner = run_config(HYBRID_CONFIG, tmp_path / "work", data_dirs["cityscapes"],
                        extra={"model.backbone.teacher": teacher})
    vit = runner.model.backbone.engine.teacher.model
    assert torch.equal(vit.blocks[3].mlp.fc2.weight, weights["blocks.3.mlp.fc2.weight"])
    trained = [r for r in read_scalars(tmp_path / "work") if "hkt_alpha" in r]
    assert [r["step"] for r in trained] == [1, 2]
    assert all(r["hkt_alpha"] > 0 and r["hkt_L1"] > 0 and r["hkt_L2"] > 0 for r in trained)
