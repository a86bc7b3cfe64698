"""Speed switches of the training step (channels-last, bf16 autocast) on the hybrid paths.

Each switch may change rounding only: the hybrid losses and gradients must match the plain
fp32, contiguous step within the switch's float tolerance.
"""

from __future__ import annotations

import contextlib

import pytest
import torch

from hybridkt_ext.core import InputConvention, LossBalancer
from tests.toy_models import head_loss, make_engine

# A teacher with another convention, so the input transform runs on the channels-last image.
BGR255 = InputConvention(mean=(103.53, 116.28, 123.675), std=(1.0, 1.0, 1.0), channel_order="BGR")


def batch(n: int = 4, size: int = 16, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, size, size, generator=g), torch.randint(0, 3, (n,), generator=g)


def hybrid_step(
    teacher_padding: int,
    memory_format: torch.memory_format = torch.contiguous_format,
    autocast: bool = False,
    recompute_teacher: bool = False,
):
    """One hybrid forward + backward; returns (L1, L2, L3) and the trainable gradients."""
    engine, head = make_engine(
        teacher_padding=teacher_padding, teacher_input=BGR255, recompute_teacher=recompute_teacher
    )
    engine.to(memory_format=memory_format).train()
    x, y = batch()
    x = x.contiguous(memory_format=memory_format)
    amp = torch.autocast("cpu", dtype=torch.bfloat16) if autocast else contextlib.nullcontext()
    with amp:
        feats = engine.forward_hybrid(x)
        losses = [
            head_loss(head, f, y) for f in (feats.student_first, feats.teacher_first, feats.student)
        ]
        total = LossBalancer("dynamic")(*losses).total
    total.backward()
    grads = {n: p.grad for n, p in engine.named_parameters() if p.requires_grad}
    return torch.stack(losses).detach(), grads


@pytest.mark.parametrize("teacher_padding", [1, 0])  # 0: adapters interpolate
def test_channels_last_gives_the_contiguous_losses_and_gradients(teacher_padding):
    losses, grads = hybrid_step(teacher_padding)
    cl_losses, cl_grads = hybrid_step(teacher_padding, torch.channels_last)
    torch.testing.assert_close(cl_losses, losses, rtol=1e-5, atol=1e-6)
    assert cl_grads.keys() == grads.keys()
    for name, grad in grads.items():
        torch.testing.assert_close(cl_grads[name], grad, rtol=1e-4, atol=1e-6, msg=name)


def test_channels_last_reaches_every_stage_and_adapter():
    # A silent conversion back to NCHW (e.g. in the input transform or an interpolation)
    # would cost a copy per switch and run the next stage in the slower layout.
    engine, _ = make_engine(teacher_padding=0, teacher_input=BGR255)
    engine.to(memory_format=torch.channels_last).train()
    layouts = []

    def record(module, args):
        layouts.append(args[0].is_contiguous(memory_format=torch.channels_last))

    modules = [engine.student.stage(i) for i in range(engine.student.num_stages)]
    modules += [engine.teacher.stage(i) for i in range(engine.teacher.num_stages)]
    modules += [*engine.to_teacher.values(), *engine.to_student.values()]
    for module in modules:
        module.register_forward_pre_hook(record)
    x, _ = batch()
    feats = engine.forward_hybrid(x.contiguous(memory_format=torch.channels_last))
    # Student stages S1 (shared), S2 x2, S3 x2; teacher T1, T2, T3; adapters at the four
    # switches and on T3's output for the head.
    assert len(layouts) == 5 + 3 + 5
    assert all(layouts)
    for path in (feats.student, feats.student_first, feats.teacher_first):
        assert all(f.is_contiguous(memory_format=torch.channels_last) for f in path)


def test_bf16_autocast_keeps_hybrid_losses_and_gradients_within_bf16_rounding():
    losses, grads = hybrid_step(teacher_padding=0)
    bf16_losses, bf16_grads = hybrid_step(teacher_padding=0, autocast=True)
    # bf16 keeps 8 mantissa bits (relative rounding 4e-3 per op); a loss averages many
    # terms, a small parameter's gradient fewer, so gradients are compared by direction.
    torch.testing.assert_close(bf16_losses.float(), losses, rtol=5e-3, atol=1e-4)
    for name, grad in grads.items():
        assert bf16_grads[name].dtype == torch.float32, name  # master weights stay fp32
        cosine = torch.nn.functional.cosine_similarity(
            bf16_grads[name].flatten(), grad.flatten(), dim=0
        )
        assert cosine > 0.97, (name, cosine.item())


def test_checkpointed_teacher_recomputes_under_the_same_autocast():
    # Recomputation during backward runs outside the autocast block: unless the checkpoint
    # restores autocast, the recomputed teacher activations would be fp32, not the bf16 ones
    # the forward used, and the gradients would differ.
    losses, grads = hybrid_step(teacher_padding=1, autocast=True)
    ckpt_losses, ckpt_grads = hybrid_step(teacher_padding=1, autocast=True, recompute_teacher=True)
    torch.testing.assert_close(ckpt_losses, losses, rtol=0, atol=0)
    for name, grad in grads.items():
        torch.testing.assert_close(ckpt_grads[name], grad, rtol=1e-5, atol=1e-6, msg=name)
