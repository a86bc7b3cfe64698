"""Hostile inputs to the framework-neutral core: one clear error, before anything is written.

Cases already covered in tests/core are not repeated here: empty, truncated and
non-checkpoint teacher files, wrong key prefixes (test_checkpoint.py); out-of-range,
repeated and empty switch points (test_hybrid_forward.py); misspelled balance modes and
negative, NaN, inf or non-numeric fixed alphas (test_balance.py); refusing to overwrite and
keeping the previous file on a failed save (test_export.py).
"""
from __future__ import annotations

import os
import stat

import pytest
import torch
from torch import nn

from hybridkt_ext.core import (InputConvention, LossBalancer, TeacherCheckpointError,
                               load_teacher_weights, make_path_plan, save_atomically)
from hybridkt_ext.core import CheckpointFileError, read_checkpoint_file
from hybridkt_ext.core.transfer_step import build_balancer
from tests.toy_models import head_loss, make_engine
from tests.conftest import png_bytes


# ----------------------------------------------------------------------------- checkpoints
@pytest.mark.parametrize("name, content", [
    ("teacher.png", None),  # a real PNG image with its own suffix
    ("teacher.txt", b"model: resnet50\nepochs: 90\n"),  # a config mistaken for the weights
])
def test_a_file_that_is_no_checkpoint_names_the_file_and_the_fix_in_one_line(tmp_path, name,
                                                                            content):
    path = tmp_path / name
    path.write_bytes(png_bytes() if content is None else content)
    with pytest.raises(TeacherCheckpointError) as info:
        load_teacher_weights(nn.Linear(2, 2), path)
    message = str(info.value)
    assert message.startswith(f"{path}: cannot read it as a checkpoint (UnpicklingError: ")
    assert "not a checkpoint at all; pass a file written by torch.save" in message  # the fix
    assert "\n" not in message  # one line ...
    assert "weights_only` set to `False`" not in message  # ... without torch's unsafe advice


@pytest.mark.parametrize("content, fragment", [
    (b"", r"empty \(0 bytes\)"),
    (b"\x89PNG\r\n\x1a\n" + bytes(64), "cannot read it as a checkpoint"),
])
def test_whole_checkpoint_reader_raises_checkpoint_file_error(tmp_path, content, fragment):
    # The exporters read whole training checkpoints (not just weights) with this reader.
    path = tmp_path / "iter_400.pth"
    path.write_bytes(content)
    with pytest.raises(CheckpointFileError, match=fragment):
        read_checkpoint_file(path)
    with pytest.raises(CheckpointFileError, match="no such file"):
        read_checkpoint_file(tmp_path / "missing.pth")
    assert issubclass(TeacherCheckpointError, CheckpointFileError)


def test_truncated_mmengine_checkpoint_through_the_whole_reader(tmp_path):
    path = tmp_path / "iter_2.pth"
    torch.save({"meta": {"iter": 2}, "state_dict": nn.Linear(64, 64).state_dict()}, path)
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(CheckpointFileError, match="truncated"):
        read_checkpoint_file(path)


# ----------------------------------------------------------------------------- switch points
@pytest.mark.parametrize("points, fragment", [
    ([1.5], "not integer stage indices"),
    ([True], "not integer stage indices"),
    (["1"], "not integer stage indices"),
    ("1,2", "must be a list of stage indices"),
    (2, "must be a list of stage indices"),
])
def test_switch_points_that_are_not_stage_indices_fail_clearly(points, fragment):
    with pytest.raises(ValueError, match=fragment) as info:
        make_path_plan(4, points)
    assert "switch_points" in str(info.value)


def test_switch_points_accept_numpy_integers():
    import numpy as np

    assert make_path_plan(4, [np.int64(2)]).student_first == "SSTT"


# ----------------------------------------------------------------------------- balance
@pytest.mark.parametrize("alpha", ["0.5", b"1", True])
def test_fixed_alpha_that_only_looks_like_a_number_is_refused(alpha):
    with pytest.raises(ValueError, match="fixed_alpha must be a number") as info:
        LossBalancer("fixed", fixed_alpha=alpha)
    assert "fixed_alpha=0.5" in str(info.value)  # the fix, spelled out


@pytest.mark.parametrize("mode", ["dynamic", "student_only"])
def test_a_fixed_alpha_that_the_mode_would_ignore_is_refused(mode):
    with pytest.raises(ValueError) as info:
        LossBalancer(mode, fixed_alpha=0.5)
    assert str(info.value) == (
        f"LossBalancer: fixed_alpha=0.5 applies only with mode='fixed', but mode={mode!r} "
        "ignores it; write dict(mode='fixed', fixed_alpha=0.5) or drop fixed_alpha.")
    assert LossBalancer(mode).fixed_alpha == 1.0 and LossBalancer("fixed").fixed_alpha == 1.0


@pytest.mark.parametrize("transfer, balance, ignored_by", [
    ("hybrid", dict(mode="dynamic", fixed_alpha=0.5), "mode='dynamic'"),
    ("hybrid", dict(fixed_alpha=0.5), "mode='dynamic'"),  # dynamic is the default mode
    ("fitnet", dict(mode="fixed", fixed_alpha=0.5), "transfer='fitnet'"),
])
def test_a_balance_config_whose_fixed_alpha_would_be_ignored_is_refused(transfer, balance,
                                                                        ignored_by):
    with pytest.raises(ValueError) as info:
        build_balancer(transfer, balance, "model.backbone.balance")
    assert str(info.value).startswith(
        f"model.backbone.balance.fixed_alpha=0.5 would be ignored by {ignored_by}: it weighs "
        "the hybrid paths only with transfer='hybrid'")
    assert build_balancer("hybrid", dict(mode="fixed", fixed_alpha=0.5)).fixed_alpha == 0.5


def test_misspelled_mode_suggests_the_intended_one():
    with pytest.raises(ValueError, match=r"mode='Dynamic'.*did you mean 'dynamic'"):
        LossBalancer("Dynamic")
    with pytest.raises(ValueError, match=r"mode='studentonly'.*did you mean 'student_only'"):
        LossBalancer("studentonly")


# ----------------------------------------------------------------------------- input conventions
@pytest.mark.parametrize("kwargs, fragment", [
    (dict(mean=(1.0, 2.0, float("nan"))), "mean values must be finite"),
    (dict(std=(1.0, float("inf"), 1.0)), "std values must be finite"),
    (dict(mean=("123", 116, 103)), "mean values must be finite numbers"),
    (dict(mean="RGB"), "mean needs 3 numbers"),
    (dict(std=(1.0, 1.0)), "std needs 3 numbers"),
    (dict(std=(1.0, 0.0, 1.0)), "std values must be positive"),
    (dict(channel_order="rgb"), "channel_order"),
])
def test_teacher_input_convention_is_checked_when_built(kwargs, fragment):
    # A NaN mean would otherwise surface only as a NaN L2 at the first step.
    with pytest.raises(ValueError, match=fragment):
        InputConvention(**kwargs)


# ----------------------------------------------------------------------------- image sizes
@pytest.mark.parametrize("size", [(17, 23), (15, 9), (33, 16)])
@pytest.mark.parametrize("teacher_padding", [1, 0])
def test_images_not_divisible_by_the_total_stride_train_on_every_path(size, teacher_padding):
    # Decision: odd sizes work. Each network rounds its own feature sizes; adapters resize
    # to the receiving network's size, so every path's features match the student path's.
    engine, head = make_engine(teacher_padding=teacher_padding)
    engine.train()
    x, y = torch.randn(2, 3, *size), torch.randint(0, 3, (2,))
    feats = engine.forward_hybrid(x)
    shapes = [tuple(f.shape) for f in feats.student]
    assert [tuple(f.shape) for f in feats.student_first] == shapes
    assert [tuple(f.shape) for f in feats.teacher_first] == shapes
    losses = [head_loss(head, f, y) for f in (feats.student_first, feats.teacher_first,
                                              feats.student)]
    balanced = LossBalancer()(*losses)
    balanced.total.backward()
    assert torch.isfinite(balanced.total)
    engine.eval()
    assert [tuple(f.shape) for f in engine(x)] == shapes  # inference: student path alone


# ----------------------------------------------------------------------------- export
def test_export_into_a_folder_path_fails_before_writing(tmp_path):
    with pytest.raises(IsADirectoryError, match="is a folder"):
        save_atomically({"w": torch.zeros(1)}, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_failure_mid_write_leaves_no_file_and_no_temporary(tmp_path, monkeypatch):
    import hybridkt_ext.core.export as export

    def save_half_then_fail(obj, f):
        f.write(b"PK\x03\x04 half of a zip")  # bytes already on disk when the failure hits
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(export.torch, "save", save_half_then_fail)
    with pytest.raises(OSError, match="No space left"):
        save_atomically({"w": torch.zeros(1)}, tmp_path / "student.pth")
    assert list(tmp_path.iterdir()) == []


def test_exported_file_has_normal_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        path = save_atomically({"w": torch.zeros(1)}, tmp_path / "student.pth")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644  # not mkstemp's private 0o600


# ----------------------------------------------------------------------------- the teacher
def test_a_teacher_that_is_the_student_is_refused_at_build():
    from hybridkt_ext.core import HybridForward
    from tests.toy_models import ToyNet, staged

    student = staged(ToyNet())
    with pytest.raises(ValueError, match="share the same module.*0 trainable"):
        HybridForward(student, student)
    shared, other = ToyNet(), ToyNet()
    other.features[0] = shared.features[0]  # one block in both networks
    with pytest.raises(ValueError, match=r"share 3 parameters \(e.g. 'features.0.0.weight'\)"):
        HybridForward(staged(shared), staged(other))


@pytest.mark.parametrize("unfreeze", ["train", "requires_grad"])
def test_a_teacher_unfrozen_by_the_user_is_frozen_again_before_the_step(unfreeze):
    torch.manual_seed(0)
    engine, head = make_engine()
    teacher = engine.teacher
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    if unfreeze == "train":
        teacher.train()  # would let its BatchNorm statistics drift
    else:
        teacher.requires_grad_(True)  # would let an optimiser train it
    optimizer = torch.optim.SGD(engine.parameters(), lr=0.1)
    with pytest.warns(UserWarning, match="frozen again before this step"):
        feats = engine.forward_hybrid(torch.randn(4, 3, 16, 16))
    sum(f[-1].square().mean() for f in (feats.student_first, feats.teacher_first)).backward()
    optimizer.step()
    assert not any(m.training for m in teacher.modules())
    assert not any(p.requires_grad for p in teacher.parameters())
    for key, value in teacher.state_dict().items():
        assert torch.equal(value, before[key]), key
