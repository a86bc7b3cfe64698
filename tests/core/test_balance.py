"""Dynamic / fixed / student-only balancing and its guards."""

from __future__ import annotations

import math

import pytest
import torch

from hybridkt_ext.core import BALANCE_MODES, LossBalancer, NonFiniteLossError


def t(v: float) -> torch.Tensor:
    return torch.tensor(v, requires_grad=True)


def test_dynamic_alpha_is_two_l3_over_l1_plus_l2_and_total_matches():
    l1, l2, l3 = t(1.5), t(2.5), t(1.0)
    out = LossBalancer("dynamic")(l1, l2, l3)
    assert out.alpha.item() == pytest.approx(0.5)
    assert out.total.item() == pytest.approx(0.5 * 4.0 + 1.0)
    assert not out.alpha.requires_grad
    out.total.backward()
    # alpha is a constant: d total / d L1 = alpha, d total / d L3 = 1 (no term through alpha)
    assert l1.grad.item() == pytest.approx(0.5) and l3.grad.item() == pytest.approx(1.0)


def test_fixed_alpha_and_student_only():
    out = LossBalancer("fixed", fixed_alpha=0.25)(t(2.0), t(2.0), t(1.0))
    assert out.alpha.item() == pytest.approx(0.25) and out.total.item() == pytest.approx(2.0)
    only = LossBalancer("student_only")(None, None, t(0.7))
    assert only.total.item() == pytest.approx(0.7) and only.l1 is None
    assert set(only.log_values()) == {"hkt_alpha", "hkt_L3"}


def test_log_keys_never_contain_loss():
    # mmengine's parse_losses sums every key containing "loss"; metrics must not be summed.
    keys = LossBalancer()(t(1.0), t(1.0), t(1.0)).log_values()
    assert keys and not any("loss" in k for k in keys)


@pytest.mark.parametrize("l1, l2", [(0.0, 0.0), (-1.0, 0.5)])
def test_alpha_is_zero_when_hybrid_losses_are_not_positive(l1, l2):
    out = LossBalancer()(t(l1), t(l2), t(1.0))
    assert out.alpha.item() == 0.0 and math.isfinite(out.total.item())


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
@pytest.mark.parametrize("position, name", [(0, "L1"), (1, "L2"), (2, "L3")])
def test_non_finite_path_loss_raises_naming_the_path(bad, position, name):
    losses = [t(1.0), t(1.0), t(1.0)]
    losses[position] = t(bad)
    with pytest.raises(NonFiniteLossError, match=name):
        LossBalancer()(*losses)


def test_bad_arguments_fail_clearly():
    with pytest.raises(ValueError, match="dynamc"):
        LossBalancer("dynamc")
    for bad in (-0.1, float("nan"), float("inf"), "abc"):
        with pytest.raises(ValueError, match="fixed_alpha"):
            LossBalancer("fixed", fixed_alpha=bad)
    with pytest.raises(ValueError, match="three path losses"):
        LossBalancer("dynamic")(None, None, t(1.0))
    assert BALANCE_MODES == ("dynamic", "fixed", "student_only")
