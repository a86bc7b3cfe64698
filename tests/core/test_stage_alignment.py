"""Pairing stages of backbones with different stage counts."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from hybridkt_ext.core import (
    StagedBackbone,
    StageMismatchError,
    StageSpec,
    align_stages,
    check_stage_contract,
    merge_stages,
)


def chain(reductions: list[int], widths: list[int]) -> StagedBackbone:
    """Stages with the given cumulative reductions (stride 1 or 2 each) and widths."""
    specs, cin, prev = [], 3, 1
    layers = nn.ModuleList()
    for i, (r, w) in enumerate(zip(reductions, widths)):
        conv = nn.Conv2d(cin, w, 3, r // prev, 1)
        layers.append(conv)
        specs.append(StageSpec(f"s{i}", w, r, conv))
        cin, prev = w, r
    return StagedBackbone(layers, specs)


def test_equal_counts_are_returned_unchanged():
    s, t = chain([4, 8], [2, 3]), chain([4, 8], [5, 6])
    assert align_stages(s, t) == (s, t)


def test_mobilenet_like_student_merges_its_reduction_two_stage():
    student = chain([2, 4, 8, 16, 32], [4, 8, 16, 32, 64])
    teacher = chain([4, 8, 16, 32], [8, 16, 32, 64])
    s, t = align_stages(student, teacher)
    assert [x.reduction for x in s.stage_specs] == [4, 8, 16, 32]
    assert t is teacher
    assert s.stage_specs[0].name == "s0+s1" and s.stage_specs[0].channels == 8
    check_stage_contract(s, (64, 64))
    x = torch.randn(1, 3, 64, 64)
    torch.testing.assert_close(s(x)[-1], student(x)[-1])


def test_vgg_like_teacher_and_resnet_like_student_share_three_scales():
    vgg = chain([1, 2, 4, 8, 32], [4, 8, 16, 32, 32])
    resnet = chain([4, 8, 16, 32], [8, 16, 32, 64])
    s, t = align_stages(resnet, vgg)
    assert [x.reduction for x in s.stage_specs] == [4, 8, 32]
    assert [x.reduction for x in t.stage_specs] == [4, 8, 32]


def test_no_shared_scales_fails_listing_both():
    with pytest.raises(StageMismatchError, match="share 1 reduction"):
        align_stages(chain([2, 4, 8], [1, 2, 3]), chain([8, 32], [1, 2]))


def test_merge_stages_validates_groups():
    with pytest.raises(ValueError, match="consecutive"):
        merge_stages(chain([2, 4, 8], [1, 2, 3]), [[0], [2]])
