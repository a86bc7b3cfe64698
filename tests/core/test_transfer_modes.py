"""The transfer-mode registry: one place to add a baseline, read by every adapter."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from hybridkt_ext.core import (TransferMode, TransferSettings, TransferStep, register_transfer_mode,
                               transfer_mode, transfer_mode_names)
from hybridkt_ext.core import transfer_modes
from tests.toy_models import head_loss, make_engine


class _MeanMatch(nn.Module):
    """A made-up baseline: match the mean activation of the last stage."""

    def __init__(self, weight: float = 1.0) -> None:
        super().__init__()
        self.weight = weight

    def forward(self, student, teacher):
        return self.weight * (student[-1].mean() - teacher[-1].detach().mean()) ** 2


@pytest.fixture
def mean_match_mode():
    mode = register_transfer_mode(TransferMode(
        "mean_match", "test baseline", needs_teacher=True, options=("weight",),
        build_loss=lambda engine, options: _MeanMatch(**options)))
    yield mode
    del transfer_modes._MODES["mean_match"]


def test_the_built_in_modes_are_registered_in_order():
    assert transfer_mode_names()[:4] == ("hybrid", "none", "fitnet", "at")
    assert transfer_mode("hybrid").hybrid_paths and not transfer_mode("none").needs_teacher


def test_an_unknown_mode_names_the_closest_and_all():
    with pytest.raises(ValueError, match=r"transfer='fitnett' is not a transfer mode\. Did you "
                                         r"mean 'fitnet'\? Modes: hybrid, none, fitnet, at"):
        transfer_mode("fitnett")


def test_a_second_mode_of_one_name_is_refused():
    with pytest.raises(ValueError, match="registered already"):
        register_transfer_mode(TransferMode("at", "again", needs_teacher=True))
    with pytest.raises(ValueError, match="hybrid paths need a teacher"):
        register_transfer_mode(TransferMode("odd", "no", needs_teacher=False, hybrid_paths=True))


def test_a_registered_baseline_trains_through_the_step_with_its_options(mean_match_mode):
    settings = TransferSettings.check("mean_match", None, {"mean_match": dict(weight=3.0)},
                                      where="transfer")
    engine, head = make_engine(hybrid_paths=False)
    loss = settings.mode.loss(engine, settings.options)
    step = TransferStep(engine, "mean_match", settings.balancer, loss)
    x, y = torch.randn(2, 3, 16, 16), torch.tensor([0, 1])
    result = step.run(lambda: {"ce": head_loss(head, step.features(x), y)}, lambda d: d["ce"])
    assert loss.weight == 3.0 and "hkt_transfer" in result.log_values
    assert "mean_match" in transfer_mode_names()


def test_settings_refuse_options_of_another_mode_and_unknown_options():
    with pytest.raises(ValueError, match=r"fitnet=\.\.\. sets options of transfer mode 'fitnet', "
                                         r"but transfer='hybrid': they would be ignored"):
        TransferSettings.check("hybrid", None, {"fitnet": dict(weight=2.0)}, owner="Backbone")
    with pytest.raises(ValueError, match=r"Backbone fitnet: unknown key 'wieght'\. Did you mean "
                                         r"'weight'"):
        TransferSettings.check("fitnet", None, {"fitnet": dict(wieght=2.0)}, owner="Backbone")
    with pytest.raises(ValueError, match="needs a teacher"):
        TransferSettings.check("at", teacher_given=False)
    assert TransferSettings.check("none", teacher_given=False).mode.name == "none"
