"""RunningStatsGuard: both the toggle and the save/restore strategies."""

from __future__ import annotations

import torch
from torch import nn

from hybridkt_ext.core.norm_stats import RunningStatsGuard


class HandRolledBN(nn.BatchNorm2d):
    """Updates running stats itself, ignoring track_running_stats (like some synced BNs)."""

    def forward(self, x):
        if self.training:
            with torch.no_grad():
                self.running_mean.mul_(0.9).add_(0.1 * x.mean((0, 2, 3)))
        return super().forward(x)


def test_guard_freezes_torch_and_custom_norms_but_keeps_batch_statistics():
    model = nn.Sequential(nn.BatchNorm2d(3), HandRolledBN(3)).train()
    guard = RunningStatsGuard(model)
    assert len(guard._toggle) == 1 and len(guard._restore) == 1
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(4, 3, 5, 5) * 3 + 1
    with guard.frozen():
        y = model(x)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    # batch statistics were used: the output is normalised per channel
    assert y.mean((0, 2, 3)).abs().max() < 1e-5
    assert model[0].track_running_stats  # restored afterwards
    model(x)  # outside the guard, stats update again
    assert not torch.equal(model[0].running_mean, before["0.running_mean"])
    assert not torch.equal(model[1].running_mean, before["1.running_mean"])


def test_guard_leaves_eval_mode_layers_alone():
    model = nn.Sequential(nn.BatchNorm2d(3)).eval()
    guard = RunningStatsGuard(model)
    with guard.frozen():
        assert model[0].track_running_stats


def test_guard_follows_norm_layers_replaced_after_it_was_built():
    model = nn.Sequential(nn.Conv2d(3, 3, 1), nn.BatchNorm2d(3)).train()
    guard = RunningStatsGuard(model)
    model[1] = nn.BatchNorm2d(3).train()  # e.g. mmengine's revert_sync_batchnorm
    with guard.frozen():
        model(torch.randn(4, 3, 5, 5) + 3)
    assert torch.equal(model[1].running_mean, torch.zeros(3))


class _OwnForwardBatchNorm(nn.BatchNorm2d):
    """Like detectron2's NaiveSyncBatchNorm on one process: its own forward, BatchNorm's math."""

    def forward(self, x):
        return super().forward(x)


def test_guard_on_a_batchnorm_with_its_own_forward_keeps_backward_working():
    # Restoring buffers that batch_norm saved for backward would fail backward with "modified
    # by an inplace operation": such layers are toggled as well as restored.
    model = nn.Sequential(nn.Conv2d(3, 3, 1), _OwnForwardBatchNorm(3)).train()
    guard = RunningStatsGuard(model)
    with guard.frozen():
        out = model(torch.randn(4, 3, 5, 5) + 3)
    out.square().mean().backward()
    assert torch.equal(model[1].running_mean, torch.zeros(3))
    assert model[0].weight.grad is not None
