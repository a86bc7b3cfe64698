"""teacher_precision: the frozen teacher's stages in bf16, the student and adapters as they are."""

from __future__ import annotations

import pytest
import torch

from hybridkt_ext.core import LossBalancer
from tests.toy_models import head_loss, make_engine


def step(engine, head, x, y):
    feats = engine.forward_hybrid(x)
    losses = [head_loss(head, f, y) for f in (feats.student_first, feats.teacher_first,
                                               feats.student)]
    params = [p for p in engine.parameters() if p.requires_grad]
    grads = torch.autograd.grad(LossBalancer("dynamic")(*losses).total, params)
    return torch.stack(losses), torch.cat([g.flatten() for g in grads]), feats


def test_bf16_teacher_agrees_with_fp32_and_keeps_the_student_in_fp32():
    exact, head = make_engine()
    low, low_head = make_engine(teacher_precision="bf16")
    low.load_state_dict(exact.state_dict())
    exact.train(), low.train()
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(4, 3, 16, 16, generator=g), torch.randint(0, 3, (4,), generator=g)
    seen = []
    low.teacher.stage(1).register_forward_hook(lambda m, i, out: seen.append(out.dtype))
    losses, grads, _ = step(exact, head, x, y)
    low_losses, low_grads, feats = step(low, low_head, x, y)
    assert seen == [torch.bfloat16]  # the teacher really ran in bf16 (T2 of path 1)
    assert all(f.dtype == torch.float32 for f in feats.student_first + feats.teacher_first)
    assert all(p.dtype == torch.float32 for p in low.parameters())
    torch.testing.assert_close(low_losses, losses, rtol=1e-2, atol=0)
    cosine = torch.nn.functional.cosine_similarity(low_grads, grads, dim=0)
    assert cosine > 0.99
    assert not torch.equal(low_losses, losses)  # bf16 differs at all: the switch acted


def test_teacher_precision_with_recomputation_gives_the_same_gradients():
    plain, head = make_engine(teacher_precision="bf16")
    recomputed, head_r = make_engine(teacher_precision="bf16", recompute_teacher=True)
    recomputed.load_state_dict(plain.state_dict())
    x, y = torch.randn(2, 3, 16, 16), torch.tensor([0, 2])
    losses, grads, _ = step(plain.train(), head, x, y)
    losses_r, grads_r, _ = step(recomputed.train(), head_r, x, y)
    torch.testing.assert_close(losses_r, losses)
    torch.testing.assert_close(grads_r, grads)


def test_unknown_teacher_precision_is_refused():
    with pytest.raises(ValueError, match=r"teacher_precision='int8' must be one of \['bf16', "
                                         r"'fp16'\] or None"):
        make_engine(teacher_precision="int8")
