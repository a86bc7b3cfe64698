"""The one teacher-loading policy (core.load_teacher) for torchvision and timm teachers."""
from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from hybridkt_ext.core import TeacherCheckpointError
from hybridkt_ext.core.teacher_loading import load_teacher
from hybridkt_ext.core.teacher_spec import REMAP_PRESETS, TeacherSpec
from hybridkt_ext.core.zoo_teachers import build_zoo_model, split_zoo_model


def _teacher(kind: str, **kwargs):
    return split_zoo_model(kind, build_zoo_model(kind, kwargs))


def _weights(kind: str, seed: int = 0, **kwargs) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    return {k: v.contiguous() for k, v in build_zoo_model(kind, kwargs).state_dict().items()}


@pytest.mark.parametrize("kind, stage_key, suffix", [
    ("torchvision.resnet18", "layer3.", ".pth"),
    ("timm.resnet18", "layer3.", ".safetensors"),
    ("timm.convnext_atto", "stages.2.", ".safetensors"),
])
def test_a_teacher_missing_one_stage_is_refused_and_nothing_is_loaded(tmp_path, kind, stage_key,
                                                                      suffix):
    weights = _weights(kind)
    kept = {k: v for k, v in weights.items() if not k.startswith(stage_key)}
    path = str(tmp_path / f"teacher{suffix}")
    save_file(kept, path) if suffix == ".safetensors" else torch.save(kept, path)
    staged = _teacher(kind)
    before = {k: v.clone() for k, v in staged.model.state_dict().items()}
    with pytest.raises(TeacherCheckpointError, match=f"stages use \\[{stage_key}"):
        load_teacher(staged, TeacherSpec(checkpoint=path, strict=False))
    assert all(torch.equal(v, before[k]) for k, v in staged.model.state_dict().items())
    full = str(tmp_path / f"full{suffix}")
    save_file(weights, full) if suffix == ".safetensors" else torch.save(weights, full)
    load_teacher(staged, TeacherSpec(checkpoint=full))
    assert all(torch.equal(v, weights[k]) for k, v in staged.model.state_dict().items())


def test_a_classifier_of_another_task_stays_behind_unless_required(tmp_path):
    # An ImageNet file (1000 classes) for a 10-class teacher: the trunk loads, the head cannot.
    weights = _weights("torchvision.resnet18")
    torch.save(weights, tmp_path / "imagenet.pth")
    staged = _teacher("torchvision.resnet18", num_classes=10)
    report = load_teacher(staged, TeacherSpec(checkpoint=str(tmp_path / "imagenet.pth")))
    assert "fc.weight: checkpoint (1000, 512) vs module (10, 512)" in report.mismatched
    assert torch.equal(staged.model.layer4[1].conv2.weight, weights["layer4.1.conv2.weight"])
    with pytest.raises(TeacherCheckpointError, match=r"shape mismatches \[fc.weight"):
        load_teacher(_teacher("torchvision.resnet18", num_classes=10),
                     TeacherSpec(checkpoint=str(tmp_path / "imagenet.pth")),
                     require=["fc.weight", "fc.bias"])  # KD needs the teacher's logits


def test_no_checkpoint_needs_an_explicit_random_init():
    with pytest.raises(ValueError, match=r"teacher.checkpoint is not set.*allow_random_init=True"):
        TeacherSpec.from_mapping({})
    with pytest.warns(UserWarning, match="random initialisation"):
        assert load_teacher(_teacher("torchvision.resnet18"),
                            TeacherSpec(allow_random_init=True)) is None


@pytest.mark.parametrize("values, match", [
    ({"checkpoint": "t.pth", "strict": "False"}, r"teacher.strict must be True or False"),
    ({"checkpoint": "t.pth", "remap": "detectron2"}, r"not a preset.*detectron2_resnet_to_tor"),
    ({"checkpoint": "t.pth", "remap": [("a",)]}, r"\(pattern, replacement\) string pairs"),
    ({"checkpoint": "t.pth", "input": {"mean": (1, 2)}}, r"teacher.input"),
    ({"checkpoint": "t.pth", "prefixx": "a."}, r"unknown loading keys \['prefixx'\]"),
    ({"checkpoint": ""}, r"teacher.checkpoint must be a file path"),
])
def test_spec_values_are_checked_with_the_key_named(values, match):
    with pytest.raises(ValueError, match=match):
        TeacherSpec.from_mapping(values)


def test_framework_key_names_appear_in_messages():
    names = {"checkpoint": "MODEL.HYBRIDKT.TEACHER.WEIGHTS",
             "allow_random_init": "MODEL.HYBRIDKT.TEACHER.ALLOW_RANDOM_INIT"}
    with pytest.raises(ValueError, match=r"MODEL.HYBRIDKT.TEACHER.WEIGHTS is not set.*"
                                         r"MODEL.HYBRIDKT.TEACHER.ALLOW_RANDOM_INIT=True"):
        TeacherSpec.from_mapping({}, names=names)


def test_one_name_per_remap_preset():
    assert list(REMAP_PRESETS) == ["detectron2_resnet_to_torchvision"]
    spec = TeacherSpec.from_mapping({"checkpoint": "t.pth",
                                     "remap": "detectron2_resnet_to_torchvision"})
    assert spec.remap == REMAP_PRESETS["detectron2_resnet_to_torchvision"]


def test_zoo_names_never_download():
    for kwargs in ({"weights": "DEFAULT"}, {"pretrained": True}):
        with pytest.raises(ValueError, match="checkpoint"):
            build_zoo_model("torchvision.resnet18", kwargs)
    with pytest.raises(ValueError, match="torchvision.resnet18"):
        build_zoo_model("torchvision.resnet81")
