"""``TransferStep``: one framework training forward per path, balanced by eq. 2."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from hybridkt_ext.core import (FitNetLoss, NonFiniteLossError, TransferStep, transfer_mode)
from hybridkt_ext.core.norm_stats import RunningStatsGuard
from hybridkt_ext.core.transfer_step import build_balancer
from tests.toy_models import head_loss, make_engine


def _batch(n: int = 4, size: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    return torch.randn(n, 3, size, size, generator=g), torch.randint(0, 3, (n,), generator=g)


def _step(mode: str = "hybrid", balance=None, **engine_kwargs):
    engine, head = make_engine(hybrid_paths=transfer_mode(mode).hybrid_paths, **engine_kwargs)
    engine.double().train()
    loss = transfer_mode(mode).loss(engine) if transfer_mode(mode).build_loss else None
    if loss is not None:
        loss.double()
    return TransferStep(engine, mode, build_balancer(mode, balance), loss), engine, head


def _framework_forward(step: TransferStep, head: nn.Module, x, y, calls: list):
    """What a framework's training forward does: its backbone once, its head once."""
    def forward():
        calls.append(step.active)
        return {"loss_ce": head_loss(head, step.features(x), y)}
    return forward


def test_hybrid_step_runs_the_forward_once_per_path_and_balances_by_eq_2(one_thread):
    step, engine, head = _step()
    x, y = _batch()
    x = x.double()
    calls: list = []
    result = step.run(_framework_forward(step, head, x, y, calls), lambda d: d["loss_ce"])
    assert calls == ["student_first", "teacher_first", "student"]  # student last: heads log it
    paths = engine.forward_hybrid(x)
    l1, l2, l3 = (head_loss(head, f, y) for f in (paths.student_first, paths.teacher_first,
                                                  paths.student))
    alpha = 2 * l3 / (l1 + l2)
    # alpha is logged in float32 whatever the loss dtype (the balancer's log values)
    torch.testing.assert_close(result.log_values["hkt_alpha"].double(), alpha.detach(),
                               rtol=1e-6, atol=0)
    torch.testing.assert_close(result.total, alpha.detach() * (l1 + l2) + l3)
    assert set(result.log_values) == {"hkt_alpha", "hkt_L1", "hkt_L2", "hkt_L3"}
    assert not step.running  # the cache is gone: the next step starts afresh


def test_modes_without_hybrid_paths_run_the_student_path_alone_and_log_no_alpha(one_thread):
    x, y = _batch()
    for mode in ("none", "fitnet", "at"):
        step, engine, head = _step(mode)
        calls: list = []
        result = step.run(_framework_forward(step, head, x.double(), y, calls),
                          lambda d: d["loss_ce"])
        assert calls == ["student"], mode
        assert "hkt_alpha" not in result.log_values, mode
        l3 = head_loss(head, engine(x.double()), y)
        if mode == "none":
            torch.testing.assert_close(result.total, l3)
        else:  # the mimicking loss is added and logged on its own
            torch.testing.assert_close(result.total, l3 + result.log_values["hkt_transfer"])
            assert result.log_values["hkt_transfer"] > 0, mode


def test_fixed_balance_weighs_the_hybrid_paths_by_fixed_alpha(one_thread):
    step, engine, head = _step(balance=dict(mode="fixed", fixed_alpha=0.25))
    x, y = _batch()
    result = step.run(_framework_forward(step, head, x.double(), y, []), lambda d: d["loss_ce"])
    values = result.log_values
    torch.testing.assert_close(result.total.detach().float(),
                               0.25 * (values["hkt_L1"] + values["hkt_L2"]) + values["hkt_L3"])


def test_features_outside_a_step_and_a_forward_that_skips_the_backbone_are_refused():
    step, _, head = _step()
    with pytest.raises(RuntimeError, match="outside TransferStep.run"):
        step.features(torch.zeros(1, 3, 16, 16))
    with pytest.raises(RuntimeError, match="never called the hybrid backbone"):
        step.run(lambda: {"loss_ce": torch.zeros((), requires_grad=True)},
                 lambda d: d["loss_ce"])
    assert not step.running


def test_a_backbone_called_on_two_inputs_in_one_forward_is_refused(one_thread):
    step, _, head = _step()
    x = torch.zeros(2, 3, 16, 16, dtype=torch.float64)

    def two_inputs():
        step.features(x)
        return {"loss_ce": head_loss(head, step.features(x[:, :, :8, :8]), torch.zeros(2).long())}

    with pytest.raises(RuntimeError, match="runs its backbone once per training forward"):
        step.run(two_inputs, lambda d: d["loss_ce"])
    assert not step.running


def test_a_non_finite_path_loss_stops_the_step_naming_the_path(one_thread):
    step, _, head = _step()
    x, y = _batch()

    def forward():
        loss = head_loss(head, step.features(x.double()), y)
        return {"loss_ce": loss * float("nan") if step.active == "teacher_first" else loss}

    with pytest.raises(NonFiniteLossError, match="L2"):
        step.run(forward, lambda d: d["loss_ce"], step=7)


def test_the_guard_freezes_head_statistics_on_the_hybrid_paths_only(one_thread):
    step, engine, head = _step()
    neck = nn.BatchNorm2d(16).double()  # a norm layer of the framework's neck
    guard = RunningStatsGuard(neck)
    x, y = _batch()
    seen = []

    def forward():
        feats = step.features(x.double())
        before = neck.running_mean.clone()
        out = neck(feats[-1])
        seen.append((step.active, not torch.equal(before, neck.running_mean)))
        return {"loss_ce": out.mean()}

    step.run(forward, lambda d: d["loss_ce"], guard=guard)
    assert seen == [("student_first", False), ("teacher_first", False), ("student", True)]


def test_a_mode_and_its_loss_must_match():
    engine, _ = make_engine()
    balancer = build_balancer("fitnet", None)
    with pytest.raises(ValueError, match="takes a mimicking loss"):
        TransferStep(engine, "fitnet", balancer)
    fitnet = FitNetLoss([4, 8, 16], [6, 12, 24])
    with pytest.raises(ValueError, match="takes no mimicking loss"):
        TransferStep(engine, "hybrid", build_balancer("hybrid", None), fitnet)
