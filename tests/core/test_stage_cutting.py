"""``cut_into_stages``: stages end before downsampling or a dilation rise, and after outputs."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from hybridkt_ext.core import cut_into_stages
from hybridkt_ext.core.stage_cutting import probe_shapes


def _conv(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride, padding=dilation, dilation=dilation)


class Chain(nn.Module):
    def __init__(self, convs: list[nn.Conv2d]) -> None:
        super().__init__()
        self.convs = nn.ModuleList(convs)


def _cut(convs, out_parts, dilations=None):
    model = Chain(convs)
    parts = list(model.convs)
    return cut_into_stages(model, parts, [f"c{i}" for i in range(len(parts))], out_parts,
                           dilations=dilations, probe_size=32)


def test_stages_end_before_each_downsampling_part_with_measured_shapes():
    staged, out = _cut([_conv(3, 4), _conv(4, 4), _conv(4, 8, 2), _conv(8, 16, 2)], [3])
    assert [s.name for s in staged.stage_specs] == ["c0+c1", "c2", "c3"]
    assert [(s.channels, s.reduction) for s in staged.stage_specs] == [(4, 1), (8, 2), (16, 4)]
    assert out == (2,)


def test_a_dilation_rise_starts_a_stage_at_the_same_reduction():
    convs = [_conv(3, 4, 2), _conv(4, 8, 1, dilation=2), _conv(8, 8, 1, dilation=2)]
    staged, _ = _cut(convs, [2], dilations=[1, 2, 2])
    assert [s.name for s in staged.stage_specs] == ["c0", "c1+c2"]
    assert [s.reduction for s in staged.stage_specs] == [2, 2]
    assert [s.scale for s in staged.stage_specs] == [2, 4]  # reduction x dilation


def test_every_returned_part_ends_a_stage():
    staged, out = _cut([_conv(3, 4), _conv(4, 6), _conv(6, 8)], [0, 2])
    assert [s.name for s in staged.stage_specs] == ["c0", "c1+c2"]
    assert out == (0, 1)


def test_the_staged_backbone_computes_what_the_chain_computes():
    convs = [_conv(3, 4), _conv(4, 8, 2), _conv(8, 8)]
    staged, _ = _cut(convs, [2])
    x = torch.randn(1, 3, 16, 16)
    torch.testing.assert_close(staged(x)[-1], convs[2](convs[1](convs[0](x))))


def test_the_probe_restores_training_flags_and_refuses_a_shrunk_probe():
    model = Chain([_conv(3, 4, 2), _conv(4, 4, 2)]).train()
    model.convs[0].eval()
    probe_shapes(model, list(model.convs), probe_size=16)
    assert model.training and not model.convs[0].training and model.convs[1].training
    with pytest.raises(ValueError, match="probe shrinks to 1x1"):
        probe_shapes(model, list(model.convs), probe_size=4)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="one name and dilation per part"):
        cut_into_stages(Chain([_conv(3, 4)]), [_conv(3, 4)], ["a", "b"], [0])
    with pytest.raises(ValueError, match=r"out_parts \(3,\) must name parts in 0\.\.0"):
        cut_into_stages(Chain([_conv(3, 4)]), [_conv(3, 4)], ["a"], [3])
