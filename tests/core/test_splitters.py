"""Splitters: stage contracts, exact staged forward, state dict layout and error messages."""

from __future__ import annotations

import dataclasses
from typing import Callable

import pytest
import torch
from torch import nn
from torchvision import models

from hybridkt_ext.core.mobilenet_v1 import MobileNetV1
from hybridkt_ext.core.splitters import (
    split_backbone,
    split_mobilenet_v1,
    split_mobilenet_v2,
    split_mobilenet_v3,
    split_resnet,
    split_sequential,
    split_vgg,
)
from hybridkt_ext.core.stages import StagedBackbone, check_stage_contract


def small_cnn() -> nn.Sequential:
    """Stages at 1, 2, 8: a stride-2 conv, then a max-pool; the tail max-pool joins the last."""
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Conv2d(8, 16, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
    )


def resnet_features(model: models.ResNet, x: torch.Tensor) -> torch.Tensor:
    x = model.maxpool(model.relu(model.bn1(model.conv1(x))))
    return model.layer4(model.layer3(model.layer2(model.layer1(x))))


def feature_params(model: nn.Module) -> set[int]:
    """Ids of the parameters of the feature extractor (what the stages must cover)."""
    if isinstance(model, models.ResNet):
        head = {id(p) for p in model.fc.parameters()}
        return {id(p) for p in model.parameters()} - head
    extractor = model if isinstance(model, nn.Sequential) else model.features
    return {id(p) for p in extractor.parameters()}


def plain_features(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    if isinstance(model, models.ResNet):
        return resnet_features(model, x)
    return model(x) if isinstance(model, nn.Sequential) else model.features(x)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Runs this module on one intra-op thread, restoring the count afterwards.

    The inputs are tiny: extra threads only add synchronisation, and on a shared 2-core machine
    they made this module several times slower.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


Factory = Callable[[], nn.Module]
Splitter = Callable[[nn.Module], StagedBackbone]
Layout = tuple[list[int], list[int]]  # stage channels, stage reductions

CASES: dict[str, tuple[Factory, Splitter, Layout]] = {
    "resnet18": (
        lambda: models.resnet18(weights=None),
        split_resnet,
        ([64, 128, 256, 512], [4, 8, 16, 32]),
    ),
    "resnet34": (
        lambda: models.resnet34(weights=None),
        split_resnet,
        ([64, 128, 256, 512], [4, 8, 16, 32]),
    ),
    "resnet50": (
        lambda: models.resnet50(weights=None),
        split_resnet,
        ([256, 512, 1024, 2048], [4, 8, 16, 32]),
    ),
    "resnet101": (
        lambda: models.resnet101(weights=None),
        split_resnet,
        ([256, 512, 1024, 2048], [4, 8, 16, 32]),
    ),
    "resnet50_dilated": (
        lambda: models.resnet50(weights=None, replace_stride_with_dilation=[False, True, True]),
        split_resnet,
        ([256, 512, 1024, 2048], [4, 8, 8, 8]),
    ),
    "vgg16": (
        lambda: models.vgg16(weights=None),
        split_vgg,
        ([64, 128, 256, 512, 512], [1, 2, 4, 8, 32]),
    ),
    "vgg16_bn": (
        lambda: models.vgg16_bn(weights=None),
        split_vgg,
        ([64, 128, 256, 512, 512], [1, 2, 4, 8, 32]),
    ),
    "mobilenet_v1": (
        lambda: MobileNetV1(),
        split_mobilenet_v1,
        ([64, 128, 256, 512, 1024], [2, 4, 8, 16, 32]),
    ),
    "mobilenet_v1_0.25": (
        lambda: MobileNetV1(width_mult=0.25),
        split_mobilenet_v1,
        ([16, 32, 64, 128, 256], [2, 4, 8, 16, 32]),
    ),
    "mobilenet_v2": (
        lambda: models.mobilenet_v2(weights=None),
        split_mobilenet_v2,
        ([16, 24, 32, 96, 1280], [2, 4, 8, 16, 32]),
    ),
    "mobilenet_v3_large": (
        lambda: models.mobilenet_v3_large(weights=None),
        split_mobilenet_v3,
        ([16, 24, 40, 112, 960], [2, 4, 8, 16, 32]),
    ),
    "mobilenet_v3_small": (
        lambda: models.mobilenet_v3_small(weights=None),
        split_mobilenet_v3,
        ([16, 16, 24, 48, 576], [2, 4, 8, 16, 32]),
    ),
    "mobilenet_v3_large_dilated": (
        lambda: models.mobilenet_v3_large(weights=None, dilated=True),
        split_mobilenet_v3,
        ([16, 24, 40, 112, 960], [2, 4, 8, 16, 16]),
    ),
    "small_cnn": (small_cnn, split_sequential, ([8, 16, 32], [1, 2, 8])),
}


NAMES = {
    "resnet50": ["conv1+bn1+relu+maxpool+layer1", "layer2", "layer3", "layer4"],
    # The trailing max-pool (index 30, 43 with BN) joins the last conv block.
    "vgg16": [f"features[{a}:{b}]" for a, b in [(0, 4), (4, 9), (9, 16), (16, 23), (23, 31)]],
    "vgg16_bn": [f"features[{a}:{b}]" for a, b in [(0, 6), (6, 13), (13, 23), (23, 33), (33, 44)]],
    "mobilenet_v1": [f"features[{a}:{b}]" for a, b in [(0, 2), (2, 4), (4, 6), (6, 12), (12, 14)]],
    "mobilenet_v3_large_dilated": [
        f"features[{a}:{b}]" for a, b in [(0, 2), (2, 4), (4, 7), (7, 13), (13, 17)]
    ],
    "small_cnn": ["[0:3]", "[3:5]", "[5:9]"],
}


@pytest.fixture(scope="module", params=list(CASES))
def case(request: pytest.FixtureRequest) -> tuple[str, nn.Module, dict, StagedBackbone]:
    """Builds each model once per module: its state before splitting, and its backbone."""
    factory, splitter, _ = CASES[request.param]
    torch.manual_seed(0)
    model = factory().eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    # eval() on the wrapper too: check_stage_contract restores the wrapper's own flag on the
    # whole model, and a training-mode forward would update the BN running stats.
    return request.param, model, before, splitter(model).eval()


def test_declared_channels_and_reductions_match_the_outputs(case):
    _, _, _, backbone = case
    check_stage_contract(backbone, (64, 64))
    check_stage_contract(backbone, (36, 52))  # odd ratios: floor/ceil rounding, H != W


def test_expected_stage_layout(case):
    name, _, _, backbone = case
    channels, reductions = CASES[name][2]
    assert [s.channels for s in backbone.stage_specs] == channels
    assert [s.reduction for s in backbone.stage_specs] == reductions
    if name in NAMES:
        assert [s.name for s in backbone.stage_specs] == NAMES[name]


def test_staged_forward_equals_the_plain_feature_extractor(case):
    _, model, _, backbone = case
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        outputs = backbone(x)
        expected = plain_features(model, x)
    assert len(outputs) == backbone.num_stages
    assert torch.equal(outputs[-1], expected)


def test_state_dict_is_the_models_under_model_prefix(case):
    _, model, before, backbone = case
    staged, plain = backbone.state_dict(), model.state_dict()
    assert list(staged) == [f"model.{key}" for key in plain]
    for key, value in plain.items():
        assert staged[f"model.{key}"].data_ptr() == value.data_ptr()
        # Splitting neither re-initialises nor touches a weight.
        assert torch.equal(value, before[key])


def test_stages_reuse_the_models_parameters_and_cover_its_features(case):
    _, model, _, backbone = case
    model_params = [id(p) for p in model.parameters()]
    assert [id(p) for p in backbone.parameters()] == model_params
    assert all(name.startswith("model") for name, _ in backbone.named_modules() if name)
    stage_params: list[int] = []
    for spec in backbone.stage_specs:
        stage_params += [id(p) for m in spec.module.submodules() for p in m.parameters()]
    assert len(stage_params) == len(set(stage_params)), "a parameter belongs to two stages"
    assert set(stage_params) == feature_params(model)


def test_split_backbone_dispatches_on_the_type(case):
    name, model, _, backbone = case
    dispatched = split_backbone(model)
    layout = [(s.name, s.channels, s.reduction) for s in backbone.stage_specs]
    assert [(s.name, s.channels, s.reduction) for s in dispatched.stage_specs] == layout
    assert dispatched.model is model


def test_contract_check_fails_on_a_wrong_spec():
    backbone = split_resnet(models.resnet18(weights=None))
    specs = list(backbone.stage_specs)
    for wrong in (
        dataclasses.replace(specs[1], channels=specs[1].channels + 1),
        dataclasses.replace(specs[1], reduction=specs[1].reduction * 2),
    ):
        bad = StagedBackbone(backbone.model, [specs[0], wrong, *specs[2:]])
        with pytest.raises(AssertionError, match="layer2"):
            check_stage_contract(bad, (64, 64))


def test_mobilenet_v1_classifies():
    model = MobileNetV1(num_classes=7, width_mult=0.25, in_channels=1)
    assert model(torch.randn(2, 1, 32, 32)).shape == (2, 7)
    assert len(model.features) == 14
    with pytest.raises(ValueError, match="width_mult"):
        MobileNetV1(width_mult=0)


def test_split_sequential_restores_training_flags():
    module = small_cnn().train()
    module[1].eval()  # a frozen BN must stay frozen after the probe
    split_sequential(module)
    assert module.training and not module[1].training
    assert all(m.training for i, m in enumerate(module) if i != 1)
    assert all(p.grad is None for p in module.parameters())
    assert module[1].num_batches_tracked.item() == 0  # the probe ran in eval mode


def test_split_sequential_merges_a_parameter_free_head_into_the_next_stage():
    module = nn.Sequential(nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(3, 4, 3, padding=1))
    backbone = split_sequential(module)
    assert [(s.name, s.channels, s.reduction) for s in backbone.stage_specs] == [("[0:3]", 4, 2)]
    check_stage_contract(backbone, (64, 64))


def test_split_sequential_without_downsampling_is_one_stage():
    module = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 5, 1))
    backbone = split_sequential(module, in_channels=3)
    assert [(s.name, s.channels, s.reduction) for s in backbone.stage_specs] == [("[0:3]", 5, 1)]


def test_split_sequential_ignores_a_border_trimming_conv():
    module = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Conv2d(4, 4, 3, stride=2, padding=1))
    assert [s.reduction for s in split_sequential(module).stage_specs] == [1, 2]


@pytest.mark.parametrize(
    "module, match",
    [
        (nn.ModuleList([nn.Conv2d(3, 4, 3)]), "needs an nn.Sequential, got ModuleList"),
        (nn.Sequential(), "empty Sequential"),
        (nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten()), r"part \[1\] \(Flatten\)"),
        (nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1)), "probe_size"),
    ],
    ids=["not-sequential", "empty", "flatten", "global-pool"],
)
def test_split_sequential_errors(module: nn.Module, match: str):
    with pytest.raises(ValueError, match=match):
        split_sequential(module)


def test_split_sequential_needs_a_large_enough_probe():
    deep = nn.Sequential(*[nn.Conv2d(3, 3, 3, stride=2, padding=1) for _ in range(7)])
    with pytest.raises(ValueError, match="probe_size"):
        split_sequential(deep)
    assert split_sequential(deep, probe_size=256).stage_specs[-1].reduction == 128


def test_split_backbone_rejects_an_unknown_type():
    class Custom(nn.Module):
        pass

    with pytest.raises(TypeError, match="Custom") as info:
        split_backbone(Custom())
    assert "split_sequential" in str(info.value) and "StageSpec" in str(info.value)


def test_specific_splitters_reject_other_models():
    with pytest.raises(TypeError, match="split_resnet expects .*ResNet, got MobileNetV1"):
        split_resnet(MobileNetV1(width_mult=0.25))


def test_stages_follow_modules_replaced_after_splitting():
    # Frameworks swap norm layers after build (mmengine reverts SyncBN; DDP converts to it):
    # a stage must run the module the model holds now, not the one it held at split time.
    model = models.resnet18(weights=None).eval()
    backbone = split_resnet(model)
    x = torch.randn(1, 3, 32, 32)
    before = backbone(x)[0]
    replacement = nn.BatchNorm2d(64).eval()
    with torch.no_grad():
        replacement.weight.fill_(2.0)
    model.bn1 = replacement
    after = backbone(x)[0]
    assert not torch.equal(before, after)
    torch.testing.assert_close(after, model.layer1(model.maxpool(model.relu(
        replacement(model.conv1(x))))))
