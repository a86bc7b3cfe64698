"""``hybrid_alternate``: the student path every step and one hybrid path, by iteration parity."""
from __future__ import annotations

import pytest
import torch

from hybridkt_ext.core import LossBalancer, NonFiniteLossError, TransferStep, transfer_mode
from hybridkt_ext.core.transfer_modes import TransferMode, register_transfer_mode
from hybridkt_ext.core.transfer_step import alternate_path, build_balancer
from tests.toy_models import head_loss, make_engine


def _step(balance=None):
    engine, head = make_engine()
    engine.double().train()
    mode = "hybrid_alternate"
    return TransferStep(engine, mode, build_balancer(mode, balance)), engine, head


def _run(step, engine, head, x, y, iteration):
    calls, teacher_calls = [], []
    handle = engine.teacher.stage(0).register_forward_hook(lambda *_: teacher_calls.append(1))

    def forward():
        calls.append(step.active)
        return {"loss_ce": head_loss(head, step.features(x), y)}

    result = step.run(forward, lambda d: d["loss_ce"], step=iteration)
    handle.remove()
    return result, calls, teacher_calls


def test_alternating_steps_run_one_hybrid_path_and_balance_it_against_the_student_path():
    step, engine, head = _step()
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(4, 3, 16, 16, generator=g).double(), torch.randint(0, 3, (4,), generator=g)
    params = [p for p in engine.parameters() if p.requires_grad]
    probe = _run(step, engine, head, x, y, 0)[2]
    assert probe == [1]  # the teacher's stage sizes, once for this input shape (one image)
    for iteration, name, key, path_id in ((10, "student_first", "hkt_L1", 1.0),
                                           (11, "teacher_first", "hkt_L2", 2.0)):
        result, calls, teacher_calls = _run(step, engine, head, x, y, iteration)
        assert calls == [name, "student"]
        # T1 runs only on the teacher-first path once the sizes are known.
        assert teacher_calls == ([1] if name == "teacher_first" else [])
        assert set(result.log_values) == {"hkt_alpha", key, "hkt_L3", "hkt_path"}
        assert result.log_values["hkt_path"].item() == path_id
        feats = engine.forward_hybrid(x)
        lk, l3 = head_loss(head, getattr(feats, name), y), head_loss(head, feats.student, y)
        alpha = (l3 / lk).detach()
        torch.testing.assert_close(result.log_values["hkt_alpha"].double(), alpha, rtol=1e-6,
                                   atol=0)
        # eq. 2 with one path: alpha * g_k + g_3, alpha a constant of the step
        grads = torch.autograd.grad(result.total, params, allow_unused=True)
        gk = torch.autograd.grad(lk, params, allow_unused=True, retain_graph=True)
        g3 = torch.autograd.grad(l3, params, allow_unused=True)
        zero = torch.zeros((), dtype=torch.float64)
        for total, a, b in zip(grads, gk, g3):
            if total is None:  # an adapter only the other hybrid path uses
                assert a is None and b is None
                continue
            a, b = (zero if g is None else g for g in (a, b))
            torch.testing.assert_close(total, alpha * a + b)


def test_alternate_path_is_a_function_of_the_iteration_and_without_one_counts_runs():
    assert [alternate_path(i) for i in range(3)] == ["student_first", "teacher_first",
                                                      "student_first"]
    step, engine, head = _step()
    x, y = torch.randn(2, 3, 16, 16).double(), torch.tensor([0, 1])
    ran = [_run(step, engine, head, x, y, None)[1][0] for _ in range(3)]
    assert ran == ["student_first", "teacher_first", "student_first"]


def test_fixed_balance_and_refusals_of_one_path():
    l1, l3 = torch.tensor(2.0), torch.tensor(1.0)
    fixed = LossBalancer("fixed", fixed_alpha=0.5).one_path(l1, l3, "student_first")
    assert fixed.total.item() == pytest.approx(0.5 * 2.0 + 1.0)
    assert fixed.l2 is None and fixed.l1.item() == 2.0
    with pytest.raises(NonFiniteLossError, match=r"L2 \(teacher-first path\) .* at step 7"):
        LossBalancer().one_path(torch.tensor(float("nan")), l3, "teacher_first", step=7)
    with pytest.raises(ValueError, match="path='student' must be 'student_first' or"):
        LossBalancer().one_path(l1, l3, "student")
    with pytest.raises(ValueError, match="alternating needs hybrid paths"):
        register_transfer_mode(TransferMode("alt_only", "", needs_teacher=True, alternate=True))
    assert transfer_mode("hybrid_alternate").alternate
