"""SavedActivationMeter: bytes saved for backward, once per storage, parameters excluded."""

from __future__ import annotations

import torch
from torch import nn

from hybridkt_ext.benchmark.activation_memory import SavedActivationMeter


def test_counts_each_saved_storage_once_and_skips_parameters():
    weight = nn.Parameter(torch.randn(256))
    x = torch.randn(256, requires_grad=True)
    with SavedActivationMeter([weight]) as meter:
        y = x * weight  # saves x and weight
        z = y.sigmoid()  # saves its output z
        (z * z).sum()  # saves z twice: one storage
        with torch.no_grad():
            x.cos()  # no autograd: nothing saved
    assert meter.total_bytes == 2 * 256 * 4  # x and z, float32


def test_watched_module_inputs_count_and_its_own_saves_are_reported_apart():
    inner = nn.Sequential(nn.Linear(64, 64), nn.ReLU())
    x = torch.randn(8, 64, requires_grad=True)
    with SavedActivationMeter(inner.parameters(), watched=[inner]) as meter:
        out = inner(x * 2)  # the watched input x * 2 is held whatever the module saves
        out.exp()
    activation = 8 * 64 * 4
    assert meter.bytes_saved_inside_watched == activation  # the ReLU output
    assert meter.watched_output_bytes == activation
    assert meter.total_bytes == 3 * activation  # input, ReLU output, exp output
