"""Fused paired stages: one student call on 2N where no norm layer couples the batch, exact."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn
from torchvision.ops import FrozenBatchNorm2d

from hybridkt_ext.core import LossBalancer
from hybridkt_ext.core.norm_stats import uses_batch_statistics
from tests.toy_models import head_loss, make_engine

NORMS = {
    "layernorm": lambda c: nn.GroupNorm(1, c),  # LayerNorm over (C, H, W) of each sample
    "groupnorm": lambda c: nn.GroupNorm(2, c),
    "frozenbn": FrozenBatchNorm2d,
    "eval_bn": nn.BatchNorm2d,  # put in eval mode below, as mmdet's norm_eval=True does
}


def engine_with_norm(norm: str, fuse: bool):
    engine, head = make_engine(fuse_stages=fuse)
    for block in engine.student.model.features:
        block[1] = NORMS[norm](block[1].num_features)
    engine.double().train()
    if norm == "eval_bn":
        for m in engine.student.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.eval()
    return engine, head


def stage_calls(engine) -> list[int]:
    """Counts calls of each student stage module during the engine's next forward."""
    counts = [0] * engine.student.num_stages
    for i in range(engine.student.num_stages):
        engine.student.stage(i).register_forward_hook(
            lambda *_, i=i: counts.__setitem__(i, counts[i] + 1))
    return counts


def step(engine, head, x, y):
    feats = engine.forward_hybrid(x)
    losses = [head_loss(head, f, y) for f in (feats.student_first, feats.teacher_first,
                                               feats.student)]
    total = LossBalancer("dynamic")(*losses).total
    params = [p for p in engine.parameters() if p.requires_grad]
    return torch.stack(losses), torch.autograd.grad(total, params)


@pytest.mark.parametrize("norm", sorted(NORMS))
def test_fused_step_equals_unfused_losses_and_gradients(norm):
    fused, head_f = engine_with_norm(norm, fuse=True)
    unfused, head_u = engine_with_norm(norm, fuse=False)
    unfused.load_state_dict(fused.state_dict())
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(3, 3, 12, 12, generator=g).double(), torch.randint(0, 3, (3,), generator=g)
    calls = stage_calls(fused)
    losses_f, grads_f = step(fused, head_f, x, y)
    losses_u, grads_u = step(unfused, head_u, x, y)
    # S1 is shared by two paths (one call either way); S2 and S3 run once each when fused.
    assert calls == [1, 1, 1]
    torch.testing.assert_close(losses_f, losses_u, rtol=1e-10, atol=1e-12)
    for a, b in zip(grads_f, grads_u):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_training_mode_batchnorm_student_is_not_fused_and_keeps_its_statistics():
    # The student path's batch statistics must come from the student path alone (the
    # running-stats guard's reason): fusing would normalise S2 over both paths' inputs.
    engine, head = make_engine(fuse_stages=True)
    engine.train()
    reference = copy.deepcopy(engine)
    reference.fuse_stages = False
    assert uses_batch_statistics(engine.student)
    x = torch.randn(2, 3, 12, 12)
    calls = stage_calls(engine)
    feats, ref_feats = engine.forward_hybrid(x), reference.forward_hybrid(x)
    assert calls == [1, 2, 2]
    for a, b in zip(feats.teacher_first + feats.student, ref_feats.teacher_first
                    + ref_feats.student):
        torch.testing.assert_close(a, b)
    for a, b in zip(engine.student.buffers(), reference.student.buffers()):
        torch.testing.assert_close(a, b)  # running statistics: the student path's only


def test_fusion_follows_the_modules_state_at_call_time():
    engine, _ = engine_with_norm("eval_bn", fuse=True)
    assert not uses_batch_statistics(engine.student)
    engine.student.train()  # a user's later train(): the BN layers use batch statistics again
    calls = stage_calls(engine)
    engine.forward_hybrid(torch.randn(2, 3, 12, 12).double())
    assert calls == [1, 2, 2]
