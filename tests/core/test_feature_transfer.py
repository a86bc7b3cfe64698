"""The baselines: FitNet hints, attention transfer and Hinton's KD."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from hybridkt_ext.core.feature_transfer import AttentionTransferLoss, FitNetLoss, kd_loss

STUDENT_CHANNELS = (4, 8, 16)
TEACHER_CHANNELS = (6, 12, 24)


def feats(channels, size=16, n=2, seed=0, grad=False):
    g = torch.Generator().manual_seed(seed)
    out = []
    for i, c in enumerate(channels):
        s = size // 2**i
        out.append(torch.randn(n, c, s, s, generator=g).requires_grad_(grad))
    return out


# ----------------------------------------------------------------------------- FitNet
def test_fitnet_default_stage_is_the_middle():
    assert FitNetLoss(STUDENT_CHANNELS, TEACHER_CHANNELS).stages == (1,)
    assert FitNetLoss((1, 2, 3, 4), (1, 2, 3, 4)).stages == (2,)


def test_fitnet_zero_when_regressor_maps_student_onto_teacher():
    loss = FitNetLoss(STUDENT_CHANNELS, TEACHER_CHANNELS)
    student = feats(STUDENT_CHANNELS)
    teacher = feats(TEACHER_CHANNELS, seed=1)
    with torch.no_grad():
        teacher[1] = loss.regressors[0](student[1])
    assert loss(student, teacher).item() == pytest.approx(0.0, abs=1e-12)
    assert loss(student, feats(TEACHER_CHANNELS, seed=1)).item() > 0


def test_fitnet_gradients_reach_student_and_regressor_not_teacher():
    loss = FitNetLoss(STUDENT_CHANNELS, TEACHER_CHANNELS, stages=[0, 2], weight=0.5)
    student = feats(STUDENT_CHANNELS, grad=True)
    teacher = feats(TEACHER_CHANNELS, seed=1, grad=True)
    value = loss(student, teacher)
    value.backward()
    assert value.item() > 0
    assert student[0].grad.abs().sum() > 0 and student[2].grad.abs().sum() > 0
    assert student[1].grad is None  # stage not transferred
    assert all(r.weight.grad.abs().sum() > 0 for r in loss.regressors)
    assert all(t.grad is None for t in teacher)


def test_fitnet_matches_hand_computation_and_resizes():
    loss = FitNetLoss((4,), (6,), stages=[0], weight=2.0)
    student = torch.randn(2, 4, 8, 8)
    teacher = torch.randn(2, 6, 4, 4)
    hint = F.interpolate(
        loss.regressors[0](student), size=(4, 4), mode="bilinear", align_corners=False
    )
    expected = 2.0 * ((hint - teacher) ** 2).mean()
    torch.testing.assert_close(loss([student], [teacher]), expected)


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        (dict(student_channels=(4, 8), teacher_channels=(4, 8, 16)), "same stages"),
        (dict(stages=[3]), "out of range"),
        (dict(stages=[-1]), "non-negative"),
        (dict(stages=[]), "at least one"),
        (dict(stages=[1, 1]), "duplicate"),
        (dict(weight=-1.0), "non-negative"),
        (dict(student_channels=(4, 0, 16)), "positive"),
    ],
)
def test_fitnet_validation(kwargs, fragment):
    args = dict(student_channels=STUDENT_CHANNELS, teacher_channels=TEACHER_CHANNELS) | kwargs
    with pytest.raises(ValueError, match=fragment):
        FitNetLoss(**args)


def test_fitnet_forward_validation():
    loss = FitNetLoss(STUDENT_CHANNELS, TEACHER_CHANNELS)
    with pytest.raises(ValueError, match="3 student features but 2 teacher"):
        loss(feats(STUDENT_CHANNELS), feats(TEACHER_CHANNELS)[:2])
    with pytest.raises(ValueError, match="built for 8 and 12"):
        loss(feats(STUDENT_CHANNELS), feats((6, 13, 24)))


# ----------------------------------------------------------------------------- AT
def test_at_zero_for_identical_features_and_no_parameters():
    at = AttentionTransferLoss()
    f = feats(TEACHER_CHANNELS)
    assert at(f, f).item() == pytest.approx(0.0, abs=1e-10)
    assert list(at.parameters()) == []


def test_at_invariant_to_per_sample_scale():
    at = AttentionTransferLoss()
    student, teacher = feats(STUDENT_CHANNELS), feats(STUDENT_CHANNELS, seed=1)
    scale = torch.tensor([0.1, 7.0]).view(2, 1, 1, 1)
    assert at([s * scale for s in teacher], teacher).item() == pytest.approx(0.0, abs=1e-8)
    torch.testing.assert_close(at([s * scale for s in student], teacher), at(student, teacher))


def test_at_matches_hand_computation_with_different_sizes_and_channels():
    at = AttentionTransferLoss(stages=[0, 1])
    student = [torch.randn(2, 4, 16, 16), torch.randn(2, 8, 8, 8)]
    teacher = [torch.randn(2, 32, 8, 8), torch.randn(2, 64, 8, 8)]

    def amap(x, size):
        a = x.pow(2).mean(1, keepdim=True)
        a = F.interpolate(a, size=size, mode="bilinear", align_corners=False)
        return a.flatten(1) / a.flatten(1).norm(dim=1, keepdim=True)

    expected = (
        sum(
            (amap(s, t.shape[-2:]) - amap(t, t.shape[-2:])).pow(2).mean()
            for s, t in zip(student, teacher)
        )
        * 1000
        / 2
    )
    torch.testing.assert_close(at(student, teacher), expected)


def test_at_gradient_reaches_student_not_teacher():
    at = AttentionTransferLoss(stages=[2], beta=10.0)
    student = feats(STUDENT_CHANNELS, grad=True)
    teacher = feats(TEACHER_CHANNELS, seed=1, grad=True)
    at(student, teacher).backward()
    assert student[2].grad.abs().sum() > 0 and student[0].grad is None
    assert all(t.grad is None for t in teacher)


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        (dict(beta=-1.0), "beta"),
        (dict(p=0.0), "positive"),
        (dict(stages=[]), "at least one"),
        (dict(stages=[-2]), "non-negative"),
    ],
)
def test_at_validation(kwargs, fragment):
    with pytest.raises(ValueError, match=fragment):
        AttentionTransferLoss(**kwargs)


def test_at_forward_validation():
    with pytest.raises(ValueError, match="out of range for 3"):
        AttentionTransferLoss(stages=[3])(feats(STUDENT_CHANNELS), feats(TEACHER_CHANNELS))
    with pytest.raises(ValueError, match="3 student features but 1 teacher"):
        AttentionTransferLoss()(feats(STUDENT_CHANNELS), feats(TEACHER_CHANNELS)[:1])


# ----------------------------------------------------------------------------- KD
def test_kd_zero_for_equal_logits():
    logits = torch.randn(5, 10)
    assert kd_loss(logits, logits.clone()).item() == pytest.approx(0.0, abs=1e-7)


def test_kd_matches_hand_computation():
    s = torch.tensor([[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]], dtype=torch.float64)
    t = torch.tensor([[2.0, 0.0, 1.0], [1.0, 1.0, 1.0]], dtype=torch.float64)
    temperature = 2.0
    expected = 0.0
    for srow, trow in zip(s.tolist(), t.tolist()):
        zs = sum(math.exp(v / temperature) for v in srow)
        zt = sum(math.exp(v / temperature) for v in trow)
        for sv, tv in zip(srow, trow):
            ps, pt = math.exp(sv / temperature) / zs, math.exp(tv / temperature) / zt
            expected += pt * math.log(pt / ps)
    expected = expected / 2 * temperature**2
    assert kd_loss(s, t, temperature).item() == pytest.approx(expected, rel=1e-12)


def test_kd_gradient_reaches_student_not_teacher_and_dense_logits():
    s = torch.randn(2, 5, 3, 3, requires_grad=True)
    t = torch.randn(2, 5, 3, 3, requires_grad=True)
    dense = kd_loss(s, t)
    dense.backward()
    assert s.grad.abs().sum() > 0 and t.grad is None
    flat = kd_loss(*(x.detach().permute(0, 2, 3, 1).reshape(-1, 5) for x in (s, t)))
    torch.testing.assert_close(dense.detach(), flat)


def test_kd_validation():
    with pytest.raises(ValueError, match="temperature"):
        kd_loss(torch.zeros(2, 3), torch.zeros(2, 3), temperature=0.0)
    with pytest.raises(ValueError, match="same shape"):
        kd_loss(torch.zeros(2, 3), torch.zeros(2, 4))
