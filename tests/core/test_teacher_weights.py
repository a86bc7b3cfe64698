"""Teacher checkpoints: every supported format, the detectron2 renaming, every error."""

from __future__ import annotations

import pickle
import re
import sys
import types

import pytest
import torch
from torch import nn
from torchvision.models import resnet18

from hybridkt_ext.core import CheckpointFileError, UntrustedCheckpointError
from hybridkt_ext.core.teacher_weights import (
    DETECTRON2_RESNET_TO_TORCHVISION,
    LoadReport,
    TeacherCheckpointError,
    load_teacher_weights,
    read_checkpoint,
    remap_keys,
    select_prefix,
)


class _MessageHub:
    """A non-tensor object like those mmengine stores next to the weights."""

    def __init__(self) -> None:
        self.log_scalars = {"loss": [0.5, 0.4]}


def _net(seed: int) -> nn.Module:
    """A ResNet-18 with random weights and random BN statistics (so buffers are checked too)."""
    torch.manual_seed(seed)
    net = resnet18(weights=None)
    for module in net.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.normal_()
            module.running_var.uniform_(0.5, 2.0)
            module.num_batches_tracked.fill_(seed + 7)
    return net


def _assert_loaded(module: nn.Module, reference: dict[str, torch.Tensor]) -> None:
    state = module.state_dict()
    for key, value in reference.items():
        assert torch.equal(state[key], value.to(state[key].dtype)), key


def _snapshot(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in module.state_dict().items()}


def _to_detectron2_name(name: str) -> str:
    """torchvision ResNet name -> detectron2 bottom-up name (the preset's inverse)."""
    first, rest = name.split(".", 1)
    if first == "conv1":
        return f"stem.conv1.{rest}"
    if first == "bn1":
        return f"stem.conv1.norm.{rest}"
    stage = f"res{int(first[len('layer'):]) + 1}"
    block, layer, leaf = rest.split(".", 2)
    if layer == "downsample":
        index, leaf = leaf.split(".", 1)
        return f"{stage}.{block}.shortcut.{'norm.' if index == '1' else ''}{leaf}"
    if layer.startswith("bn"):
        return f"{stage}.{block}.conv{layer[2:]}.norm.{leaf}"
    return f"{stage}.{block}.{layer}.{leaf}"


# ----------------------------------------------------------------------------- formats
def test_torchvision_plain_state_dict(tmp_path):
    src = _net(0).state_dict()
    torch.save(src, tmp_path / "resnet18.pth")
    dst = _net(1)
    report = load_teacher_weights(dst, tmp_path / "resnet18.pth")
    _assert_loaded(dst, src)
    assert set(report.loaded) == set(src)
    assert report.missing == report.unexpected == report.mismatched == []


def test_a_checkpoint_with_unknown_objects_needs_trust(tmp_path):
    src = _net(0).state_dict()
    ckpt = {
        "meta": {"epoch": 3, "hub": _MessageHub()},
        "state_dict": {f"backbone.{k}": v for k, v in src.items()},
        "optimizer": {"state": {}, "param_groups": [{"lr": 0.01}]},
    }
    path = tmp_path / "iter_80000.pth"
    torch.save(ckpt, path)
    with pytest.raises(UntrustedCheckpointError, match=r"test_teacher_weights\._MessageHub"):
        load_teacher_weights(_net(1), path, prefix="backbone.")
    dst = _net(1)
    load_teacher_weights(dst, path, prefix="backbone.", trust=True)
    _assert_loaded(dst, src)


def test_a_trusted_checkpoint_is_readable_without_its_framework(tmp_path, monkeypatch):
    # Pickle an object of a class from a module that is gone at load time, as when the user
    # has weights of a framework that is not installed here.
    fake = types.ModuleType("fake_framework_logging")

    class HistoryBuffer:
        def __init__(self) -> None:
            self.data = [1.0, 2.0]

    HistoryBuffer.__module__, HistoryBuffer.__qualname__ = fake.__name__, "HistoryBuffer"
    fake.HistoryBuffer = HistoryBuffer
    monkeypatch.setitem(sys.modules, fake.__name__, fake)
    src = _net(0).state_dict()
    path = tmp_path / "mmseg.pth"
    torch.save({"meta": {}, "message_hub": {"buf": HistoryBuffer()}, "state_dict": src}, path)
    monkeypatch.delitem(sys.modules, fake.__name__)
    with pytest.raises(ModuleNotFoundError):  # what a plain unpickler does here
        torch.load(path, weights_only=False)
    dst = _net(1)
    load_teacher_weights(dst, path, trust=True)
    _assert_loaded(dst, src)


def test_detectron2_pth_with_model_key(tmp_path):
    src = _net(0).state_dict()
    torch.save(
        {"model": src, "iteration": 90000, "scheduler": {"last_epoch": 3}},
        tmp_path / "model_final.pth",
    )
    dst = _net(1)
    load_teacher_weights(dst, tmp_path / "model_final.pth")
    _assert_loaded(dst, src)


def test_detectron2_pkl_with_numpy_arrays(tmp_path):
    src = _net(0).state_dict()
    ckpt = {
        "model": {k: v.numpy() for k, v in src.items()},
        "__author__": "Detectron2 Model Zoo",
        "matching_heuristics": True,
    }
    with open(tmp_path / "model_final_f10217.pkl", "wb") as f:
        pickle.dump(ckpt, f, protocol=2)
    state = read_checkpoint(tmp_path / "model_final_f10217.pkl")
    assert list(state) == list(src)  # every array, as a tensor of the same values
    for key, value in src.items():
        assert isinstance(state[key], torch.Tensor) and torch.equal(state[key], value), key
    dst = _net(1)
    load_teacher_weights(dst, tmp_path / "model_final_f10217.pkl")
    _assert_loaded(dst, src)


def test_non_tensor_entries_are_dropped(tmp_path):
    torch.save({"w": torch.ones(2), "_version": "1.0", "step": 3}, tmp_path / "c.pth")
    assert list(read_checkpoint(tmp_path / "c.pth")) == ["w"]


def test_the_generic_reader_raises_the_generic_error_and_a_teacher_reader_its_own(tmp_path):
    torch.save({"step": 3}, tmp_path / "no_weights.pth")
    with pytest.raises(CheckpointFileError, match="holds no tensors") as info:
        read_checkpoint(tmp_path / "no_weights.pth")
    assert not isinstance(info.value, TeacherCheckpointError)  # not every file is a teacher's
    with pytest.raises(TeacherCheckpointError, match="holds no tensors"):
        read_checkpoint(tmp_path / "no_weights.pth", error=TeacherCheckpointError)
    with pytest.raises(TeacherCheckpointError, match="holds no tensors"):
        load_teacher_weights(_net(0), tmp_path / "no_weights.pth")


def test_values_take_the_module_dtype(tmp_path):
    src = _net(0).half().state_dict()
    torch.save(src, tmp_path / "half.pth")
    dst = _net(1).double()
    load_teacher_weights(dst, tmp_path / "half.pth")
    assert dst.conv1.weight.dtype == torch.float64
    _assert_loaded(dst, src)


# ----------------------------------------------------------------------------- detectron2 preset
def test_detectron2_preset_renames_known_keys():
    names = {
        "stem.conv1.weight": "conv1.weight",
        "stem.conv1.norm.running_var": "bn1.running_var",
        "res2.1.conv3.weight": "layer1.1.conv3.weight",
        "res3.0.conv2.norm.weight": "layer2.0.bn2.weight",
        "res4.5.conv1.norm.running_mean": "layer3.5.bn1.running_mean",
        "res5.0.shortcut.weight": "layer4.0.downsample.0.weight",
        "res5.0.shortcut.norm.bias": "layer4.0.downsample.1.bias",
    }
    renamed = remap_keys({k: torch.zeros(1) for k in names}, DETECTRON2_RESNET_TO_TORCHVISION)
    assert sorted(renamed) == sorted(names.values())


def test_detectron2_pkl_end_to_end_with_prefix_and_preset(tmp_path):
    teacher = _net(0)
    teacher.fc = nn.Identity()  # a detectron2 bottom-up has no classifier
    src = teacher.state_dict()
    model = {
        f"backbone.bottom_up.{_to_detectron2_name(k)}": v.numpy()
        for k, v in src.items()
        if not k.endswith("num_batches_tracked")
    }  # FrozenBN
    model["backbone.fpn_lateral2.weight"] = torch.zeros(256, 64, 1, 1).numpy()
    model["roi_heads.box_predictor.cls_score.weight"] = torch.zeros(81, 1024).numpy()
    model["pixel_mean"] = torch.zeros(3, 1, 1).numpy()
    assert "backbone.bottom_up.res2.0.conv1.norm.weight" in model
    assert "backbone.bottom_up.res3.0.shortcut.norm.running_var" in model
    with open(tmp_path / "model_final.pkl", "wb") as f:
        pickle.dump(
            {"model": model, "__author__": "Detectron2 Model Zoo", "matching_heuristics": True}, f
        )
    dst = _net(1)
    dst.fc = nn.Identity()
    report = load_teacher_weights(
        dst,
        tmp_path / "model_final.pkl",
        prefix="backbone.bottom_up.",
        remap=DETECTRON2_RESNET_TO_TORCHVISION,
    )
    assert report.missing == []  # num_batches_tracked tolerated
    _assert_loaded(dst, {k: v for k, v in src.items() if not k.endswith("num_batches_tracked")})


# ----------------------------------------------------------------------------- file errors
def _check_error(path, *fragments: str) -> str:
    with pytest.raises(TeacherCheckpointError) as info:
        load_teacher_weights(_net(1), path)
    message = str(info.value)
    assert str(path) in message
    for fragment in fragments:
        assert fragment in message
    return message


def test_missing_file(tmp_path):
    _check_error(tmp_path / "nope.pth", "no such file")


def test_empty_file(tmp_path):
    (tmp_path / "empty.pth").write_bytes(b"")
    _check_error(tmp_path / "empty.pth", "empty (0 bytes)", "again")


def test_directory(tmp_path):
    _check_error(tmp_path, "not a file")


@pytest.mark.parametrize(
    "name, content",
    [
        ("notes.pth", b"these are not weights\n" * 4),
        ("image.pth", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(200))),
        ("notes.pkl", b"these are not weights\n"),
    ],
)
def test_not_a_checkpoint(tmp_path, name, content):
    (tmp_path / name).write_bytes(content)
    _check_error(tmp_path / name, "cannot read it as a checkpoint", "not a checkpoint")


@pytest.mark.parametrize(
    "name, legacy", [("t.pth", False), ("t_legacy.pth", True), ("t.pkl", None)]
)
def test_truncated_checkpoint(tmp_path, name, legacy):
    path = tmp_path / name
    state = _net(0).state_dict()
    if legacy is None:
        with open(path, "wb") as f:
            pickle.dump({"model": {k: v.numpy() for k, v in state.items()}}, f)
    else:
        torch.save(state, path, _use_new_zipfile_serialization=not legacy)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    _check_error(path, "truncated")


@pytest.mark.parametrize(
    "content, fragment",
    [
        ([torch.ones(2)], "holds a list, not a mapping of weights"),
        ({"name": "resnet", "epoch": 3}, "holds no tensors"),
        ({"state_dict": {"note": "x"}}, "holds no tensors"),
    ],
)
def test_content_not_a_mapping_of_weights(tmp_path, content, fragment):
    torch.save(content, tmp_path / "c.pth")
    _check_error(tmp_path / "c.pth", fragment)


# ----------------------------------------------------------------------------- key errors
def test_wrong_prefix_lists_present_prefixes(tmp_path):
    src = _net(0).state_dict()
    torch.save({f"module.backbone.{k}": v for k, v in src.items()}, tmp_path / "dp.pth")
    with pytest.raises(TeacherCheckpointError) as info:
        load_teacher_weights(_net(1), tmp_path / "dp.pth", prefix="backbone.")
    message = str(info.value)
    assert "'backbone.'" in message and str(tmp_path / "dp.pth") in message
    assert f"'module.' ({len(src)} keys)" in message
    assert f"'module.backbone.' ({len(src)} keys)" in message


def test_select_prefix():
    state = {"a.x": torch.zeros(1), "a.y": torch.ones(1), "b.x": torch.zeros(1)}
    assert sorted(select_prefix(state, "a.")) == ["x", "y"]
    assert select_prefix(state, "") == state
    with pytest.raises(TeacherCheckpointError, match=r"'a\.' \(2 keys\)"):
        select_prefix(state, "c.")


def test_mismatch_lists_missing_unexpected_and_shapes(tmp_path):
    src = dict(_net(0).state_dict())
    del src["layer2.0.conv1.weight"]
    src["extra.weight"] = torch.zeros(3)
    src["fc.weight"] = torch.zeros(10, 512)
    torch.save(src, tmp_path / "bad.pth")
    message = _check_error(
        tmp_path / "bad.pth",
        "missing from checkpoint (1): layer2.0.conv1.weight",
        "unexpected in checkpoint (1): extra.weight",
        "fc.weight: checkpoint (10, 512) vs module (1000, 512)",
        "`prefix`",
        "`remap`",
    )
    assert "..." not in message


def test_long_lists_are_truncated(tmp_path):
    torch.save({"conv1.weight": torch.zeros(64, 3, 7, 7)}, tmp_path / "partial.pth")
    missing = len([k for k in _net(0).state_dict() if not k.endswith("num_batches_tracked")])
    _check_error(
        tmp_path / "partial.pth",
        f"missing from checkpoint ({missing - 1})",
        f"... and {missing - 1 - 10} more",
    )


def test_remap_collision():
    state = {"layer.1.weight": torch.zeros(1), "layer.2.weight": torch.zeros(1)}
    with pytest.raises(TeacherCheckpointError, match="'layer.1.weight' and 'layer.2.weight'"):
        remap_keys(state, [(r"\.\d+\.", ".0.")])


def test_remap_rules_apply_in_order():
    renamed = remap_keys({"a.w": torch.zeros(1)}, [(r"^a\.", "b."), (r"^b\.", "c.")])
    assert list(renamed) == ["c.w"]
    with pytest.raises(TeacherCheckpointError, match="invalid regex"):
        remap_keys({"a": torch.zeros(1)}, [("(", "")])


def test_remap_collision_from_load_names_the_file(tmp_path):
    torch.save({"a.1": torch.zeros(1), "a.2": torch.zeros(1)}, tmp_path / "c.pth")
    with pytest.raises(TeacherCheckpointError, match=re.escape(str(tmp_path / "c.pth"))):
        load_teacher_weights(nn.Linear(1, 1), tmp_path / "c.pth", remap=[(r"\d", "0")])


# ----------------------------------------------------------------------------- strictness
def test_strict_failure_leaves_module_unchanged(tmp_path):
    src = dict(_net(0).state_dict())
    src["fc.weight"] = torch.zeros(10, 512)
    torch.save(src, tmp_path / "bad.pth")
    dst = _net(1)
    before = _snapshot(dst)
    with pytest.raises(TeacherCheckpointError):
        load_teacher_weights(dst, tmp_path / "bad.pth")
    _assert_loaded(dst, before)


def test_non_strict_loads_matches_and_reports(tmp_path):
    src = dict(_net(0).state_dict())
    del src["layer2.0.conv1.weight"]
    src["extra.weight"] = torch.zeros(3)
    src["fc.weight"] = torch.zeros(10, 512)
    torch.save(src, tmp_path / "bad.pth")
    dst = _net(1)
    before = _snapshot(dst)
    report = load_teacher_weights(dst, tmp_path / "bad.pth", strict=False)
    assert isinstance(report, LoadReport)
    assert report.missing == ["layer2.0.conv1.weight"]
    assert report.unexpected == ["extra.weight"]
    assert report.mismatched == ["fc.weight: checkpoint (10, 512) vs module (1000, 512)"]
    assert "fc.weight" not in report.loaded and "layer1.0.conv1.weight" in report.loaded
    _assert_loaded(dst, {k: src[k] for k in report.loaded})
    for key in ("layer2.0.conv1.weight", "fc.weight"):
        assert torch.equal(dst.state_dict()[key], before[key])
