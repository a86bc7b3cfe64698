"""timm teachers: no downloads, stages from timm's FeatureInfo, exact features, hybrid use.

Every model is built with random weights (``pretrained=False``) and runs at most 92 pixels.
"""

from __future__ import annotations

from typing import Any

import pytest
import timm
import torch
from timm.models._features import _module_list
from torch import nn
from torchvision import models

from hybridkt_ext.core.errors import UnsupportedBackboneError
from hybridkt_ext.core.hybrid_forward import HybridForward
from hybridkt_ext.core.splitters import split_resnet
from hybridkt_ext.core.stage_alignment import align_stages
from hybridkt_ext.core.stages import StagedBackbone, check_stage_contract
from hybridkt_ext.core.timm_backbones import TimmStage, create_timm_model, split_timm_model

SWIN = "swin_tiny_patch4_window7_224"
# name -> (create_model kwargs, the second input size). Swin is built for 64 px with dynamic
# masks so that it takes a second size; its patch size 4 must divide that size.
CASES: dict[str, tuple[dict[str, Any], tuple[int, int]]] = {
    "resnet18": ({}, (70, 90)),
    "convnext_atto": ({}, (70, 90)),
    "efficientnet_b0": ({}, (70, 90)),
    "regnetx_002": ({}, (70, 90)),
    "mobilenetv3_small_100": ({}, (70, 90)),
    SWIN: ({"img_size": 64, "strict_img_size": False}, (68, 92)),
}


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module", params=list(CASES))
def case(request: pytest.FixtureRequest) -> tuple[str, nn.Module, dict, StagedBackbone]:
    """Each model once per module: its weights before splitting, and its backbone."""
    torch.manual_seed(0)
    model = create_timm_model(request.param, **CASES[request.param][0]).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    return request.param, model, before, split_timm_model(model).eval()


def sizes(name: str) -> list[tuple[int, int]]:
    return [(64, 64), CASES[name][1]]


def features_only_twin(name: str, model: nn.Module) -> nn.Module:
    """``features_only=True`` of the same architecture, carrying ``model``'s weights.

    Wrappers that flatten an nn.Sequential rename its children (``stages.0`` -> ``stages_0``);
    timm's ``_module_list`` gives the renaming.
    """
    twin = timm.create_model(name, pretrained=False, features_only=True, **CASES[name][0])
    renamed = {new: old for new, old, _ in _module_list(model, flatten_sequential=True)}
    plain = model.state_dict()
    state = {}
    for key in twin.state_dict():
        head, _, rest = key.partition(".")
        state[key] = plain[f"{renamed.get(head, head)}.{rest}"]
    twin.load_state_dict(state, strict=True)
    return twin.eval()


def test_layout_is_timms_feature_info(case):
    name, model, _, backbone = case
    specs = backbone.stage_specs
    # A plain timm model keeps feature_info as a list of dicts (a FeatureInfo once wrapped).
    assert [s.channels for s in specs] == [d["num_chs"] for d in model.feature_info]
    assert [s.reduction for s in specs] == [d["reduction"] for d in model.feature_info]
    assert all(s.scale == s.reduction and s.tap is None for s in specs)
    assert all(isinstance(s.module, TimmStage) for s in specs)
    for size in sizes(name):
        check_stage_contract(backbone, size)


def test_stage_outputs_equal_timms_features_only(case):
    name, model, _, backbone = case
    twin = features_only_twin(name, model)
    assert [s.channels for s in backbone.stage_specs] == twin.feature_info.channels()
    assert [s.reduction for s in backbone.stage_specs] == twin.feature_info.reduction()
    nhwc = str(getattr(twin, "output_fmt", "NCHW")).endswith("NHWC")
    for size in sizes(name):
        x = torch.randn(2, 3, *size, generator=torch.Generator().manual_seed(1))
        with torch.no_grad():
            staged, expected = backbone(x), twin(x)
        assert len(staged) == len(expected) == backbone.num_stages
        for out, ref in zip(staged, expected):
            assert torch.equal(out, ref.permute(0, 3, 1, 2) if nhwc else ref)


def test_state_dict_is_the_plain_models_under_model_prefix(case):
    _, model, before, backbone = case
    staged, plain = backbone.state_dict(), model.state_dict()
    assert list(staged) == [f"model.{key}" for key in plain]
    for key, value in plain.items():
        assert staged[f"model.{key}"].data_ptr() == value.data_ptr()
        assert torch.equal(value, before[key])  # splitting (and its probe) touches no weight
    assert all(n.startswith("model") for n, _ in backbone.named_modules() if n)


@pytest.mark.parametrize("name", list(CASES))
def test_hybrid_forward_with_a_torchvision_resnet18_student(name):
    torch.manual_seed(0)
    teacher = split_timm_model(create_timm_model(name, **CASES[name][0]))
    student, teacher = align_stages(split_resnet(models.resnet18(weights=None)), teacher)
    engine = HybridForward(student, teacher).train()
    for size in sizes(name):
        x = torch.randn(2, 3, *size, generator=torch.Generator().manual_seed(2))
        feats = engine.forward_hybrid(x)
        with torch.no_grad():
            expected = [tuple(f.shape) for f in engine(x)]
        paths = (feats.student, feats.student_first, feats.teacher_first)
        assert all([tuple(f.shape) for f in path] == expected for path in paths)
        engine.zero_grad(set_to_none=True)
        sum(f.square().mean() for path in paths for f in path).backward()
        assert all(p.grad is None for p in teacher.parameters())
        assert all(p.grad is not None for p in engine.to_student.parameters())
        assert student.model.conv1.weight.grad is not None


def test_a_dilated_model_pairs_by_scale():
    backbone = split_timm_model(create_timm_model("resnet18", output_stride=16))
    assert [s.reduction for s in backbone.stage_specs] == [2, 4, 8, 16, 16]
    assert [s.scale for s in backbone.stage_specs] == [2, 4, 8, 16, 32]
    check_stage_contract(backbone, (64, 64))


class _ToTokens(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(2).transpose(1, 2)


class TokenNet(nn.Module):
    """A conv stem, then token MLPs: features in NCHW, then twice as (B, H*W, C) tokens."""

    def __init__(self, position: bool = False) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 4, stride=4)
        self.tokens = _ToTokens()
        self.mlp = nn.Linear(8, 16)
        self.mlp2 = nn.Linear(16, 16)
        self.pos = nn.Parameter(torch.randn(1, 1, 16)) if position else None
        self.feature_info = [dict(module="stem", num_chs=8, reduction=4),
                             dict(module="mlp", num_chs=16, reduction=4),
                             dict(module="mlp2", num_chs=16, reduction=4)]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.mlp(self.tokens(self.stem(x)))
        return self.mlp2(x if self.pos is None else x + self.pos)


def test_token_outputs_become_maps_and_tokens_again():
    model = TokenNet().eval()
    backbone = split_timm_model(model)
    assert [s.name for s in backbone.stage_specs] == ["stem", "tokens+mlp", "mlp2"]
    x = torch.randn(1, 3, 36, 52)
    with torch.no_grad():
        maps = backbone(x)
        tokens = model.mlp(model.tokens(model.stem(x)))
        assert torch.equal(maps[1], tokens.transpose(1, 2).reshape(1, 16, 9, 13))
        assert torch.equal(maps[2].flatten(2).transpose(1, 2), model.mlp2(tokens))
    check_stage_contract(backbone, (36, 52))


def test_a_forward_that_does_more_than_chain_its_children_is_refused():
    with pytest.raises(UnsupportedBackboneError, match="TokenNet.*does not reproduce .*'mlp2'"):
        split_timm_model(TokenNet(position=True))
    # timm's plain ViTs are no such refusal: they split at block groups
    # (tests/core/test_timm_vit_stages.py).


def test_a_feature_inside_a_block_is_refused():
    model = TokenNet()
    model.feature_info[1] = dict(module="mlp2.weight", num_chs=16, reduction=4)
    with pytest.raises(UnsupportedBackboneError, match="'mlp2.weight' is no submodule"):
        split_timm_model(model)
    model = create_timm_model("resnet18")
    model.feature_info[2] = dict(module="layer2.0.conv1", num_chs=128, reduction=8)
    with pytest.raises(UnsupportedBackboneError, match="'layer2.0.conv1' lies deeper"):
        split_timm_model(model)


def test_features_only_wrappers_and_models_without_feature_info_are_refused():
    wrapper = timm.create_model("resnet18", pretrained=False, features_only=True)
    with pytest.raises(UnsupportedBackboneError, match="features_only wrapper"):
        split_timm_model(wrapper)
    with pytest.raises(UnsupportedBackboneError, match="no feature_info"):
        split_timm_model(nn.Sequential(nn.Conv2d(3, 4, 3)))


def test_create_timm_model_builds_without_weights():
    model = create_timm_model("resnet18", num_classes=3)
    assert isinstance(model, nn.Module) and model.fc.out_features == 3
    assert create_timm_model("resnet18.a1_in1k").fc.out_features == 1000  # a tag: config only


@pytest.mark.parametrize("kwargs", [
    {"pretrained": True},
    {"pretrained_cfg_overlay": {"file": "/tmp/resnet18.pth"}},
    {"pretrained_cfg_overlay": {"hf_hub_id": "timm/resnet18.a1_in1k"}},
    {"checkpoint_path": "/tmp/resnet18.pth"},
], ids=["pretrained", "overlay-file", "overlay-hub", "checkpoint-path"])
def test_create_timm_model_refuses_every_weight_source(kwargs):
    with pytest.raises(ValueError, match="teacher checkpoint"):
        create_timm_model("resnet18", **kwargs)


def test_create_timm_model_suggests_close_names():
    with pytest.raises(ValueError, match="timm has no model 'resnet5'; did you mean ") as info:
        create_timm_model("resnet5")
    assert "'resnet50'" in str(info.value)
    with pytest.raises(ValueError, match="model source"):
        create_timm_model("hf-hub:timm/resnet18.a1_in1k")
