"""Activation checkpointing of teacher stages: same losses and gradients, less saved memory."""

from __future__ import annotations

import copy

import torch
from torch.utils.checkpoint import checkpoint

import hybridkt_ext.core.hybrid_forward as hybrid_forward_module
from hybridkt_ext.core import LossBalancer
from hybridkt_ext.benchmark.activation_memory import SavedActivationMeter
from tests.toy_models import head_loss, make_engine


def batch(n: int = 4, size: int = 16, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, size, size, generator=g), torch.randint(0, 3, (n,), generator=g)


def hybrid_step(engine, head, x, y) -> list[torch.Tensor]:
    """Forward of the three paths and backward of the balanced total; returns L1, L2, L3."""
    feats = engine.forward_hybrid(x)
    losses = [
        head_loss(head, f, y) for f in (feats.student_first, feats.teacher_first, feats.student)
    ]
    LossBalancer("dynamic")(*losses).total.backward()
    return [loss.detach() for loss in losses]


def test_checkpointing_keeps_losses_and_gradients_and_leaves_teacher_untouched():
    plain, head = make_engine()
    ckpt = copy.deepcopy(plain)
    ckpt.recompute_teacher = True
    ckpt_head = ckpt.student.model.fc
    teacher_before = copy.deepcopy(plain.teacher.state_dict())
    plain.train()
    ckpt.train()
    x, y = batch()
    losses = hybrid_step(plain, head, x, y)
    ckpt_losses = hybrid_step(ckpt, ckpt_head, x, y)
    torch.testing.assert_close(ckpt_losses, losses, rtol=1e-6, atol=1e-7)
    trainable = [(n, p) for n, p in plain.named_parameters() if p.requires_grad]
    assert any(n.startswith("to_teacher") for n, _ in trainable)  # adapters are compared too
    ckpt_params = dict(ckpt.named_parameters())
    for name, p in trainable:
        assert p.grad is not None and p.grad.abs().sum() > 0, name
        torch.testing.assert_close(ckpt_params[name].grad, p.grad, rtol=1e-5, atol=1e-7, msg=name)
    for key, value in ckpt.teacher.state_dict().items():
        assert torch.equal(value, teacher_before[key]), key
    assert all(p.grad is None for p in ckpt.teacher.parameters())
    # Student running statistics come from the student path alone with checkpointing too.
    for key, value in ckpt.student.state_dict().items():
        assert torch.equal(value, plain.student.state_dict()[key]), key


def test_checkpointing_saves_no_teacher_activations_for_backward():
    saved = {}
    for switch in (False, True):
        engine, _ = make_engine(recompute_teacher=switch)
        engine.train()
        x, _ = batch()
        teacher_stages = [engine.teacher.stage(i) for i in range(engine.teacher.num_stages)]
        with SavedActivationMeter(engine.parameters(), watched=teacher_stages) as meter:
            feats = engine.forward_hybrid(x)
        saved[switch] = meter
        del feats
    # Without the switch, teacher stages T2 (path 1) and T3 (path 2) keep their activations;
    # with it they keep none. The saving is all of those but the stage outputs, which the
    # next op (an adapter) keeps either way.
    plain, ckpt = saved[False], saved[True]
    assert plain.bytes_saved_inside_watched > 0
    assert ckpt.bytes_saved_inside_watched == 0
    assert ckpt.watched_output_bytes == plain.watched_output_bytes > 0
    assert ckpt.total_bytes < plain.total_bytes
    assert (
        plain.total_bytes - ckpt.total_bytes
        == plain.bytes_saved_inside_watched - plain.watched_output_bytes
    )


def test_only_teacher_stages_with_autograd_are_checkpointed(monkeypatch):
    calls = []

    def counting_checkpoint(fn, teacher, index, *args, **kwargs):
        calls.append(index)  # the engine checkpoints its teacher stage call: (teacher, i, x)
        return checkpoint(fn, teacher, index, *args, **kwargs)

    monkeypatch.setattr(hybrid_forward_module, "checkpoint", counting_checkpoint)
    engine, _ = make_engine(recompute_teacher=True)
    engine.train()
    x, _ = batch()
    engine.forward_hybrid(x)
    # Path 1 is S T S, path 2 is T S T: T2 and T3 run with autograd, T1 (no grad) does not.
    assert calls == [1, 2]
    calls.clear()
    with torch.no_grad():  # nothing is saved anyway: recomputation would only cost time
        engine.forward_hybrid(x)
    assert calls == []
