"""FT, AB and CWD: each loss against the formula written out here, and each mode through the
registry and the step."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from hybridkt_ext.core import (ActivationBoundaryLoss, ChannelWiseDivergenceLoss,
                               FactorTransferLoss, TransferSettings, TransferStep, transfer_mode)
from tests.toy_models import head_loss, make_engine

EPS = 1e-5  # BatchNorm's eps: in eval mode with fresh statistics BN divides by sqrt(1 + eps)


def _features(seed: int = 0, channels: int = 4, size: int = 3):
    torch.manual_seed(seed)
    student = torch.randn(2, channels, size, size, dtype=torch.float64).relu()
    teacher = torch.randn(2, channels, size, size, dtype=torch.float64).relu()
    return student.requires_grad_(), teacher.requires_grad_()


def _identity_convs(module: nn.Module) -> None:
    """Every 3x3/1x1 (transposed) conv of ``module`` becomes the identity map."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.dirac_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def test_cwd_is_the_per_channel_spatial_kl_scaled_as_mmrazor():
    s, t = _features()
    loss = ChannelWiseDivergenceLoss([4], [4], weight=3.0, tau=2.0).double()
    p_t = torch.exp(t.flatten(2) / 2) / torch.exp(t.flatten(2) / 2).sum(2, keepdim=True)
    p_s = torch.exp(s.flatten(2) / 2) / torch.exp(s.flatten(2) / 2).sum(2, keepdim=True)
    expected = 3.0 * 2.0**2 / (2 * 4) * (p_t * torch.log(p_t / p_s)).sum()
    got = loss([s], [t])
    torch.testing.assert_close(got, expected)
    got.backward()
    assert s.grad is not None and s.grad.abs().sum() > 0 and t.grad is None


def test_cwd_aligns_channels_and_resizes_to_the_teacher():
    torch.manual_seed(0)
    loss = ChannelWiseDivergenceLoss([3, 4], [5, 6])  # default: the last stage only
    assert loss.stages == (1,) and loss.aligners[0].out_channels == 6
    s = [torch.randn(2, 3, 8, 8), torch.randn(2, 4, 4, 4, requires_grad=True)]
    value = loss(s, [torch.randn(2, 5, 4, 4), torch.randn(2, 6, 2, 2)])
    value.backward()
    assert value > 0 and s[1].grad is not None


def test_ab_is_the_hinge_squared_boundary_loss_with_the_explicit_masks():
    s, t = _features(1)
    s = (s - 0.5).detach().requires_grad_()  # both sides of the margin and of zero
    loss = ActivationBoundaryLoss([4], [4], weight=2.0, margin=0.5).double().eval()
    _identity_convs(loss)
    c = s / (1 + EPS) ** 0.5  # the connector: identity conv, then fresh BN in eval mode
    inactive = ((c > -0.5) & (t <= 0)).double()
    active = ((c <= 0.5) & (t > 0)).double()
    expected = 2.0 * ((c + 0.5) ** 2 * inactive + (c - 0.5) ** 2 * active).mean()
    assert inactive.sum() > 0 and active.sum() > 0
    got = loss([s], [t])
    torch.testing.assert_close(got, expected)
    got.backward()
    assert s.grad.abs().sum() > 0 and t.grad is None


def test_ft_is_the_l1_distance_of_normalised_factors_plus_the_reconstruction():
    s, t = _features(2)
    loss = FactorTransferLoss([4], [4], beta=10.0, rate=1.0, reconstruction_weight=0.5)
    loss = loss.double().eval()
    _identity_convs(loss)
    # Identity convs, fresh eval BN (1 / sqrt(1 + eps) each) and leaky ReLU on non-negative
    # maps: each of the 3 layers only scales, which the normalisation removes.
    f_t = nn.functional.normalize(t.flatten(1), dim=1)
    f_s = nn.functional.normalize(s.flatten(1), dim=1)
    reconstructed = t / (1 + EPS) ** 3  # 6 layers through encoder and decoder
    expected = 10.0 * (f_t - f_s).abs().mean() + 0.5 * ((reconstructed - t) ** 2).mean()
    got = loss([s], [t])
    torch.testing.assert_close(got, expected)
    got.backward()
    assert s.grad.abs().sum() > 0 and t.grad is None


def test_the_ft_term_does_not_move_the_paraphraser():
    torch.manual_seed(0)
    loss = FactorTransferLoss([4, 8], [6, 12], reconstruction_weight=0.0)
    assert loss.stages == (1,) and loss.paraphrasers[0].encoder[-3].out_channels == 6
    s = [torch.randn(2, 4, 8, 8), torch.randn(2, 8, 4, 4, requires_grad=True)]
    loss(s, [torch.randn(2, 6, 8, 8), torch.randn(2, 12, 2, 2)]).backward()
    # The zero-weighted reconstruction still back-propagates, zeros only: the FT term adds none.
    assert all(p.grad.abs().sum() == 0 for p in loss.paraphrasers.parameters())
    assert all(p.grad.abs().sum() > 0 for p in loss.translators.parameters())
    FactorTransferLoss([4], [6])([torch.randn(2, 4, 3, 3)], [torch.randn(2, 6, 3, 3)]).backward()


@pytest.mark.parametrize("build, match", [
    (lambda: ChannelWiseDivergenceLoss([4], [4], tau=0.0), r"`tau` must be positive; got 0\.0"),
    (lambda: ChannelWiseDivergenceLoss([4], [4], weight=-1), r"`weight` must be non-negative"),
    (lambda: ActivationBoundaryLoss([4], [4], margin=-1), r"`margin` must be positive"),
    (lambda: FactorTransferLoss([4], [4], beta=-1), r"`beta` must be non-negative"),
    (lambda: FactorTransferLoss([4], [4], rate=0), r"`rate` must be positive"),
    (lambda: ActivationBoundaryLoss([4], [4, 8]), r"student has 1 stages but teacher has 2"),
    (lambda: FactorTransferLoss([4, 8], [4, 8], stages=[2]), r"stage index 2 is out of range"),
])
def test_bad_arguments_are_refused(build, match):
    with pytest.raises(ValueError, match=match):
        build()


def test_features_of_other_channels_than_built_for_are_refused():
    loss = ChannelWiseDivergenceLoss([4], [4])
    with pytest.raises(ValueError, match=r"stage 0: features have 3 \(student\) and 4"):
        loss([torch.randn(1, 3, 2, 2)], [torch.randn(1, 4, 2, 2)])


@pytest.mark.parametrize("mode, options, attribute, value", [
    ("ft", dict(beta=5.0, stages=[1]), "beta", 5.0),
    ("ab", dict(weight=2.0, margin=0.5), "margin", 0.5),
    ("cwd", dict(tau=4.0), "tau", 4.0),
])
def test_each_mode_trains_through_the_step_with_its_options(mode, options, attribute, value):
    settings = TransferSettings.check(mode, None, {mode: options}, where="transfer")
    assert settings.mode is transfer_mode(mode) and settings.mode.needs_teacher
    engine, head = make_engine(hybrid_paths=False)
    loss = settings.mode.loss(engine, settings.options)
    assert getattr(loss, attribute) == value
    step = TransferStep(engine, mode, settings.balancer, loss)
    x, y = torch.randn(2, 3, 16, 16), torch.tensor([0, 1])
    result = step.run(lambda: {"ce": head_loss(head, step.features(x), y)}, lambda d: d["ce"])
    result.total.backward()
    assert result.log_values["hkt_transfer"] > 0
    assert all(p.grad is None for p in engine.teacher.parameters())
    assert any(p.grad is not None for p in loss.parameters())


def test_an_unknown_option_names_the_closest():
    with pytest.raises(ValueError, match=r"Toy cwd: unknown key 'taus'\. Did you mean 'tau'"):
        TransferSettings.check("cwd", None, {"cwd": dict(taus=2.0)}, owner="Toy")


def test_cwd_refuses_a_one_by_one_map_where_it_would_be_zero():
    with pytest.raises(ValueError, match=r"CWD stage 0: the teacher's map is 1x1"):
        ChannelWiseDivergenceLoss([4], [4])([torch.randn(2, 4, 1, 1)], [torch.randn(2, 4, 1, 1)])
