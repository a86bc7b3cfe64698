"""Plain ViT teachers from timm and torchvision: block-group stages, prefix tokens carried.

Random weights, tiny widths and 32-64 px images; every split is checked against the model's own
``forward_features`` (or torchvision's encoder), so a skipped position embedding, token or norm
fails.
"""
from __future__ import annotations

import pytest
import torch
from torchvision import models

from hybridkt_ext.core.hybrid_forward import HybridForward
from hybridkt_ext.core.plain_vit_stages import block_groups, split_plain_vit
from hybridkt_ext.core.splitters import split_backbone, split_resnet
from hybridkt_ext.core.stage_usage import used_state_keys
from hybridkt_ext.core.stages import check_stage_contract
from hybridkt_ext.core.timm_backbones import split_timm_model
from hybridkt_ext.core.zoo_teachers import build_zoo_model, split_zoo_model

pytestmark = pytest.mark.usefixtures("one_thread")

# The teacher names, shrunk to 32-56 px and 4 blocks of 48-64 channels.
TIMM_CASES = {
    "timm.vit_tiny_patch16_224": dict(img_size=32, depth=4, embed_dim=48, num_heads=2),
    "timm.deit_tiny_patch16_224": dict(img_size=32, depth=4, embed_dim=48, num_heads=2),
    "timm.vit_small_patch14_reg4_dinov2": dict(img_size=56, depth=4, embed_dim=64, num_heads=2),
}


def timm_features(model, image):
    """The model's own features as a map, prefix tokens dropped."""
    tokens = model.forward_features(image)[:, model.num_prefix_tokens:]
    side = image.shape[-2] // model.patch_embed.patch_size[0], \
        image.shape[-1] // model.patch_embed.patch_size[1]
    return tokens.transpose(1, 2).reshape(image.shape[0], -1, *side)


def run_stages(staged, image):
    x, features = image, []
    for stage in staged.stage_specs:
        x = stage.module(x)
        features.append(stage.feature(x))
    return x, features


@pytest.mark.parametrize("kind", list(TIMM_CASES))
def test_timm_vit_stages_reproduce_forward_features(kind):
    torch.manual_seed(0)
    model = build_zoo_model(kind, TIMM_CASES[kind]).eval()
    staged = split_zoo_model(kind, model)
    side = model.patch_embed.img_size[0]
    assert [s.name for s in staged.stage_specs] == [f"blocks{i}-{i}" for i in range(4)]
    assert {s.reduction for s in staged.stage_specs} == {model.patch_embed.patch_size[0]}
    assert {s.global_tokens for s in staged.stage_specs} == {model.num_prefix_tokens}
    image = torch.randn(2, 3, side, side)
    with torch.no_grad():
        out, features = run_stages(staged, image)
        assert len(out) == 1 + model.num_prefix_tokens  # registers travel with the class token
        torch.testing.assert_close(features[-1], timm_features(model, image))
    check_stage_contract(staged, image_size=(side, side))
    # Loading a checkpoint probes which weights the stages use: at the declared size, the only
    # one a fixed-size ViT takes.
    assert "pos_embed" in used_state_keys(staged)


def test_dynamic_img_size_takes_other_sizes_and_fixed_size_names_the_fix():
    kwargs = dict(TIMM_CASES["timm.vit_tiny_patch16_224"])
    dynamic = build_zoo_model("timm.vit_tiny_patch16_224", {**kwargs, "dynamic_img_size": True})
    image = torch.randn(1, 3, 48, 64)
    with torch.no_grad():
        _, features = run_stages(split_timm_model(dynamic.eval()), image)
        torch.testing.assert_close(features[-1], timm_features(dynamic, image))
    fixed = split_timm_model(build_zoo_model("timm.vit_tiny_patch16_224", kwargs))
    with pytest.raises(ValueError, match="dynamic_img_size=True"):
        fixed.stage_specs[0].module(image)


def test_vit_stages_groups_blocks_by_count_or_end_indices():
    assert block_groups(12, None, "m") == [(0, 3), (3, 6), (6, 9), (9, 12)]
    assert block_groups(12, 3, "m") == [(0, 4), (4, 8), (8, 12)]
    assert block_groups(12, [1, 7], "m") == [(0, 2), (2, 8), (8, 12)]
    for bad in (0, 13, [7, 1], [12]):
        with pytest.raises(ValueError, match="vit_stages"):
            block_groups(12, bad, "m")
    model = build_zoo_model("timm.vit_tiny_patch16_224",
                            {**TIMM_CASES["timm.vit_tiny_patch16_224"], "vit_stages": [0, 2]})
    assert [s.name for s in split_timm_model(model).stage_specs] == ["blocks0-0", "blocks1-2",
                                                                 "blocks3-3"]
    with pytest.raises(ValueError, match="vit_stages applies to plain ViTs only"):
        build_zoo_model("timm.resnet18", {"vit_stages": 2})


def test_torchvision_vit_b_16_matches_its_encoder_and_refuses_other_sizes():
    torch.manual_seed(0)
    # vit_b_16 fixes its width and depth; only the image size shrinks (4 patches).
    model = build_zoo_model("torchvision.vit_b_16", dict(image_size=32)).eval()
    staged = split_backbone(model)
    image = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        tokens = model.encoder(torch.cat((model.class_token.expand(2, -1, -1),
                                          model._process_input(image)), 1))
        _, features = run_stages(staged, image)
    expected = tokens[:, 1:].transpose(1, 2).reshape(2, 768, 2, 2)
    torch.testing.assert_close(features[-1], expected)
    assert "encoder.pos_embedding" in used_state_keys(staged)
    with pytest.raises(ValueError, match="image_size set to the training size"):
        staged.stage_specs[0].module(torch.randn(1, 3, 48, 48))


def test_timm_vit_teacher_for_a_resnet_student_trains_the_student():
    """Four block groups at stride 16 pair stage for stage with ResNet's four stages."""
    torch.manual_seed(0)
    teacher = split_plain_vit(build_zoo_model(
        "timm.vit_tiny_patch16_224", {**TIMM_CASES["timm.vit_tiny_patch16_224"], "img_size": 64}))
    engine = HybridForward(split_resnet(models.resnet18(weights=None)), teacher).train()
    feats = engine.forward_hybrid(torch.randn(2, 3, 64, 64))
    paths = (feats.student, feats.student_first, feats.teacher_first)
    sum(f.square().mean() for path in paths for f in path).backward()
    assert all(p.grad is None for p in teacher.parameters())
    assert all(p.grad is not None for p in engine.to_student.parameters())
    assert engine.student.model.conv1.weight.grad is not None
