"""Splitters of torchvision EfficientNet, RegNet, ConvNeXt and Swin: layout, exactness, hybrid use.

Every model is built with ``weights=None`` (nothing is downloaded) and runs at most 96 pixels.
"""

from __future__ import annotations

from typing import Callable

import pytest
import torch
from torch import nn
from torchvision import models

from hybridkt_ext.core.hybrid_forward import HybridForward
from hybridkt_ext.core.splitters import (
    split_backbone,
    split_convnext,
    split_efficientnet,
    split_regnet,
    split_resnet,
    split_swin,
)
from hybridkt_ext.core.stage_alignment import align_stages
from hybridkt_ext.core.stages import StagedBackbone, check_stage_contract

SIZES = [(64, 64), (70, 90)]  # 70 x 90 is not a multiple of 32: ceil/floor sizes per stage


pytestmark = pytest.mark.usefixtures("one_thread")


def _regnet_features(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return model.trunk_output(model.stem(x))


def _swin_features(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    # What the classifier pools: features + norm (NHWC), permuted to NCHW by the model itself.
    return model.permute(model.norm(model.features(x)))


def _features(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return model.features(x)


Case = tuple[Callable[[], nn.Module], Callable[[nn.Module], StagedBackbone],
             Callable[[nn.Module, torch.Tensor], torch.Tensor], str, list[tuple[str, int, int]]]

CASES: dict[str, Case] = {
    "efficientnet_b0": (
        lambda: models.efficientnet_b0(weights=None), split_efficientnet, _features,
        "classifier",
        [("features[0:2]", 16, 2), ("features[2:3]", 24, 4), ("features[3:4]", 40, 8),
         ("features[4:6]", 112, 16), ("features[6:9]", 1280, 32)],
    ),
    "efficientnet_v2_s": (
        lambda: models.efficientnet_v2_s(weights=None), split_efficientnet, _features,
        "classifier",
        [("features[0:2]", 24, 2), ("features[2:3]", 48, 4), ("features[3:4]", 64, 8),
         ("features[4:6]", 160, 16), ("features[6:8]", 1280, 32)],
    ),
    "regnet_x_400mf": (
        lambda: models.regnet_x_400mf(weights=None), split_regnet, _regnet_features, "fc",
        [("stem", 32, 2), ("trunk_output.block1", 32, 4), ("trunk_output.block2", 64, 8),
         ("trunk_output.block3", 160, 16), ("trunk_output.block4", 400, 32)],
    ),
    "regnet_y_400mf": (
        lambda: models.regnet_y_400mf(weights=None), split_regnet, _regnet_features, "fc",
        [("stem", 32, 2), ("trunk_output.block1", 48, 4), ("trunk_output.block2", 104, 8),
         ("trunk_output.block3", 208, 16), ("trunk_output.block4", 440, 32)],
    ),
    "convnext_tiny": (
        lambda: models.convnext_tiny(weights=None), split_convnext, _features, "classifier",
        [("features[0:2]", 96, 4), ("features[2:4]", 192, 8), ("features[4:6]", 384, 16),
         ("features[6:8]", 768, 32)],
    ),
    "swin_t": (
        lambda: models.swin_t(weights=None), split_swin, _swin_features, "head",
        [("features[0:2]", 96, 4), ("features[2:4]", 192, 8), ("features[4:6]", 384, 16),
         ("features[6:8]+norm", 768, 32)],
    ),
    "swin_v2_t": (
        lambda: models.swin_v2_t(weights=None), split_swin, _swin_features, "head",
        [("features[0:2]", 96, 4), ("features[2:4]", 192, 8), ("features[4:6]", 384, 16),
         ("features[6:8]+norm", 768, 32)],
    ),
}


@pytest.fixture(scope="module", params=list(CASES))
def case(request: pytest.FixtureRequest) -> tuple[str, nn.Module, dict, StagedBackbone]:
    """Each model once per module: its weights before splitting, and its backbone."""
    factory, splitter, _, _, _ = CASES[request.param]
    torch.manual_seed(0)
    model = factory().eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    return request.param, model, before, splitter(model).eval()


def test_stage_layout_and_contract(case):
    name, _, _, backbone = case
    layout = [(s.name, s.channels, s.reduction) for s in backbone.stage_specs]
    assert layout == CASES[name][4]
    assert all(s.scale == s.reduction and s.tap is None for s in backbone.stage_specs)
    for size in SIZES:
        check_stage_contract(backbone, size)


@pytest.mark.parametrize("size", SIZES)
def test_staged_forward_equals_the_plain_feature_extractor(case, size):
    name, model, _, backbone = case
    x = torch.randn(2, 3, *size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        outputs = backbone(x)
        expected = CASES[name][2](model, x)
    assert len(outputs) == backbone.num_stages
    assert all(out.dim() == 4 and out.shape[1] == spec.channels
               for out, spec in zip(outputs, backbone.stage_specs))
    assert torch.equal(outputs[-1], expected)


def test_swin_stages_are_nchw_views_of_the_nhwc_features():
    model = models.swin_t(weights=None).eval()
    backbone = split_swin(model)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        first, second = backbone(x)[:2]
        nhwc = model.features[:2](x)
        assert torch.equal(first, nhwc.permute(0, 3, 1, 2))
        assert torch.equal(second, model.features[2:4](nhwc).permute(0, 3, 1, 2))


def test_state_dict_is_the_models_under_model_prefix(case):
    _, model, before, backbone = case
    staged, plain = backbone.state_dict(), model.state_dict()
    assert list(staged) == [f"model.{key}" for key in plain]
    for key, value in plain.items():
        assert staged[f"model.{key}"].data_ptr() == value.data_ptr()
        assert torch.equal(value, before[key])  # splitting touches no weight


def test_stages_cover_everything_but_the_head(case):
    name, model, _, backbone = case
    head = {id(p) for p in model.get_submodule(CASES[name][3]).parameters()}
    stage_params: list[int] = []
    for spec in backbone.stage_specs:
        stage_params += [id(p) for m in spec.module.submodules() for p in m.parameters()]
    assert len(stage_params) == len(set(stage_params)), "a parameter belongs to two stages"
    assert set(stage_params) == {id(p) for p in model.parameters()} - head
    assert all(n.startswith("model") for n, _ in backbone.named_modules() if n)


def test_split_backbone_dispatches_on_the_type(case):
    _, model, _, backbone = case
    dispatched = split_backbone(model)
    layout = [(s.name, s.channels, s.reduction) for s in backbone.stage_specs]
    assert [(s.name, s.channels, s.reduction) for s in dispatched.stage_specs] == layout
    assert dispatched.model is model


@pytest.mark.parametrize("splitter, expected", [
    (split_efficientnet, "EfficientNet"), (split_regnet, "RegNet"),
    (split_convnext, "ConvNeXt"), (split_swin, "SwinTransformer")])
def test_specific_splitters_reject_other_models(splitter, expected):
    with pytest.raises(TypeError, match=f"expects .*{expected}, got ResNet"):
        splitter(models.resnet18(weights=None))


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("teacher_name", ["efficientnet_b0", "regnet_x_400mf", "convnext_tiny",
                                          "swin_t", "swin_v2_t"])
def test_hybrid_forward_with_a_resnet18_student(teacher_name, size):
    torch.manual_seed(0)
    factory, splitter = CASES[teacher_name][:2]
    student, teacher = align_stages(split_resnet(models.resnet18(weights=None)),
                                    splitter(factory()))
    engine = HybridForward(student, teacher).train()
    x = torch.randn(2, 3, *size, generator=torch.Generator().manual_seed(2))
    feats = engine.forward_hybrid(x)
    with torch.no_grad():
        expected = [tuple(f.shape) for f in engine(x)]
    for path in (feats.student, feats.student_first, feats.teacher_first):
        assert [tuple(f.shape) for f in path] == expected
    sum(f.square().mean() for path in (feats.student, feats.student_first, feats.teacher_first)
        for f in path).backward()
    assert all(p.grad is None for p in teacher.parameters())
    assert all(p.grad is not None for p in engine.to_student.parameters())
    assert all(p.grad is not None for p in engine.to_teacher.parameters())
    assert student.model.conv1.weight.grad is not None
