"""The engine's contract: eq. 2 gradients, frozen teacher, clean norm statistics, sharing."""

from __future__ import annotations

import copy

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from hybridkt_ext.core import (
    HybridForward,
    LossBalancer,
    StageMismatchError,
    assert_teacher_frozen,
    TeacherNotFrozenError,
)
from hybridkt_ext.benchmark.naive_paths import naive_hybrid_forward, native_stage_sizes
from tests.toy_models import ToyNet, head_loss, make_engine, staged


def batch(n: int = 4, size: int = 16, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, size, size, generator=g), torch.randint(0, 3, (n,), generator=g)


def path_losses(engine, head, x, y):
    feats = engine.forward_hybrid(x)
    return [
        head_loss(head, f, y) for f in (feats.student_first, feats.teacher_first, feats.student)
    ]


def trainable(engine, head):
    # The head belongs to the student model, so engine.parameters() already holds it.
    assert all(any(p is q for q in engine.parameters()) for p in head.parameters())
    return [p for p in engine.parameters() if p.requires_grad]


def test_gradient_is_alpha_weighted_sum_of_path_gradients():
    engine, head = make_engine()
    engine.double().train()  # float64, so the comparison tests eq. 2 and not rounding
    x, y = batch()
    x = x.double()
    params = trainable(engine, head)
    # BN in train mode uses batch statistics, so repeated forwards give identical losses.
    l1, l2, l3 = path_losses(engine, head, x, y)
    # S1 is shared by paths 1 and 3: keep the graph for the later gradients.
    g1 = torch.autograd.grad(l1, params, allow_unused=True, retain_graph=True)
    g2 = torch.autograd.grad(l2, params, allow_unused=True, retain_graph=True)
    g3 = torch.autograd.grad(l3, params, allow_unused=True)
    l1, l2, l3 = path_losses(engine, head, x, y)
    balanced = LossBalancer("dynamic")(l1, l2, l3)
    assert balanced.alpha.item() == pytest.approx(2 * l3.item() / (l1.item() + l2.item()),
                                                  rel=1e-6)  # alpha is computed in float32
    alpha = balanced.alpha.item()  # the value used: eq. 2 must then hold to float64 rounding
    total_grads = torch.autograd.grad(balanced.total, params, allow_unused=True)
    zero = torch.zeros(())
    for p, gt, a, b, c in zip(params, total_grads, g1, g2, g3):
        a, b, c = (zero if g is None else g for g in (a, b, c))
        expected = alpha * (a + b) + c
        torch.testing.assert_close(
            zero if gt is None else gt, expected + 0 * p, rtol=1e-9, atol=1e-12
        )


def test_teacher_weights_and_running_stats_unchanged_by_training():
    engine, head = make_engine()
    before = copy.deepcopy(engine.teacher.state_dict())
    # All parameters, teacher included, go to the optimiser: weight decay and momentum must
    # still leave the teacher alone because it has no gradient.
    opt = torch.optim.SGD(engine.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-2)
    engine.train()
    balancer = LossBalancer("dynamic")
    for step in range(4):
        x, y = batch(seed=step)
        total = balancer(*path_losses(engine, head, x, y)).total
        opt.zero_grad()
        total.backward()
        opt.step()
    after = engine.teacher.state_dict()
    assert before.keys() == after.keys()
    for k in before:
        assert torch.equal(before[k], after[k]), k
    assert all(p.grad is None for p in engine.teacher.parameters())
    assert_teacher_frozen(engine.teacher)


def test_teacher_stays_in_eval_mode_under_train():
    engine, _ = make_engine()
    engine.train()
    assert engine.student.training
    assert not any(m.training for m in engine.teacher.modules())
    assert not any(p.requires_grad for p in engine.teacher.parameters())


def test_assert_teacher_frozen_fails_when_unfrozen():
    engine, _ = make_engine()
    engine.teacher.model.features[1][1].train()
    with pytest.raises(TeacherNotFrozenError, match="training mode"):
        assert_teacher_frozen(engine.teacher)
    next(engine.teacher.parameters()).requires_grad_(True)
    with pytest.raises(TeacherNotFrozenError, match="trainable parameter"):
        assert_teacher_frozen(engine.teacher)


def test_student_running_stats_come_from_student_path_only():
    engine, head = make_engine()
    reference = copy.deepcopy(engine.student)
    engine.train()
    reference.train()
    x, y = batch()
    path_losses(engine, head, x, y)
    reference(x)  # one student-only forward of the same batch
    got, want = engine.student.state_dict(), reference.state_dict()
    running = [k for k in want if "running" in k or "num_batches" in k]
    assert running
    for k in running:
        assert torch.equal(got[k], want[k]), k


def test_hybrid_paths_would_have_changed_running_stats_without_the_guard():
    # The guard test above can only fail if hybrid paths touch student BN at all.
    engine, head = make_engine()
    engine.train()
    x, y = batch()
    before = copy.deepcopy(engine.student.state_dict())
    engine._stats_guard._toggle.clear()  # disable the guard
    feats = engine.forward_hybrid(x)
    del feats
    ref = copy.deepcopy(before)
    student_only = copy.deepcopy(engine.student)
    student_only.load_state_dict(ref)
    student_only(x)
    changed = [
        k
        for k in before
        if "running_mean" in k
        and not torch.equal(engine.student.state_dict()[k], student_only.state_dict()[k])
    ]
    assert changed


def test_gradient_reaches_first_student_stage_through_teacher_stage():
    engine, head = make_engine()
    engine.train()
    x, y = batch()
    l1 = path_losses(engine, head, x, y)[0]  # path 1: S1 T2 S3 -> only reaches S1 via T2
    s1_params = list(engine.student.stage(0).parameters())
    grads = torch.autograd.grad(l1, s1_params + list(engine.to_teacher["0"].parameters()))
    assert all(g is not None and g.abs().sum() > 0 for g in grads)
    assert all(not p.requires_grad for p in engine.teacher.parameters())


def test_path_plans_and_adapters_follow_switch_points():
    engine, _ = make_engine()
    assert engine.plan.student_first == "STS" and engine.plan.teacher_first == "TST"
    assert sorted(engine.to_teacher) == ["0", "1"] and sorted(engine.to_student) == ["0", "1", "2"]
    engine, _ = make_engine(switch_points=[2], out_indices=[2])
    assert engine.plan.student_first == "SST" and engine.plan.teacher_first == "TTS"
    # Only adapters some path uses exist (unused parameters would break DDP).
    assert sorted(engine.to_teacher) == ["1"] and sorted(engine.to_student) == ["1", "2"]


def test_shared_prefixes_cost_fewer_flops_with_identical_losses():
    engine, head = make_engine()
    engine.train()
    x, y = batch()
    sizes = native_stage_sizes(engine, x)  # cacheable per input shape: not counted

    def step(forward):
        with FlopCounterMode(display=False) as counter:
            feats = forward()
            losses = [head_loss(head, f, y) for f in
                      (feats.student_first, feats.teacher_first, feats.student)]
            LossBalancer()(*losses).total.backward()
        return losses, counter.get_total_flops()

    shared_losses, shared_flops = step(lambda: engine.forward_hybrid(x))
    naive_losses, naive_flops = step(lambda: naive_hybrid_forward(engine, engine.teacher, x, sizes))
    for a, b in zip(shared_losses, naive_losses):
        torch.testing.assert_close(a, b)
    # The saving is S1's forward and backward, run once instead of twice.
    s1_flops = FlopCounterMode(display=False)
    with s1_flops:
        engine.student.stage(0)(x).sum().backward()
    assert naive_flops - shared_flops >= 0.9 * s1_flops.get_total_flops()


def test_eval_forward_runs_student_only_and_matches_plain_model():
    engine, _ = make_engine()
    engine.eval()
    x, _ = batch()
    plain = engine.student.model.features
    torch.testing.assert_close(engine(x)[-1], plain(x), rtol=0, atol=0)


def test_size_mismatch_between_networks_is_interpolated():
    # padding=0 in the teacher shrinks its maps (16 -> 14 -> 6 -> 2): adapters must resize.
    engine, head = make_engine(teacher_padding=0)
    engine.train()
    x, y = batch()
    feats = engine.forward_hybrid(x)
    for path in (feats.student, feats.student_first, feats.teacher_first):
        assert [tuple(f.shape[1:]) for f in path] == [(4, 16, 16), (8, 8, 8), (16, 4, 4)]
    losses = [
        head_loss(head, f, y) for f in (feats.student_first, feats.teacher_first, feats.student)
    ]
    LossBalancer()(*losses).total.backward()


def test_student_input_convention_is_converted_for_the_teacher():
    from hybridkt_ext.core import InputConvention

    rgb = InputConvention(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
    bgr255 = InputConvention(
        mean=(103.53, 116.28, 123.675), std=(1.0, 1.0, 1.0), channel_order="BGR"
    )
    engine, _ = make_engine(student_input=rgb, teacher_input=bgr255)
    raw = torch.rand(2, 3, 5, 5)  # RGB in [0, 1]
    student_in = (raw - torch.tensor(rgb.mean).view(1, 3, 1, 1)) / torch.tensor(rgb.std).view(
        1, 3, 1, 1
    )
    expected = raw.flip(1) * 255 - torch.tensor(bgr255.mean).view(1, 3, 1, 1)
    # the teacher's mean is in 0-255 units, so express the student's raw image in those units
    rgb255 = InputConvention(
        mean=tuple(255 * m for m in rgb.mean), std=tuple(255 * s for s in rgb.std)
    )
    engine, _ = make_engine(student_input=rgb255, teacher_input=bgr255)
    torch.testing.assert_close(engine.teacher_input(student_in), expected, rtol=1e-5, atol=1e-4)
    same, _ = make_engine(student_input=rgb, teacher_input=rgb)
    assert same.teacher_input.identity


def test_stage_count_mismatch_fails_with_both_stage_lists():
    student = staged(ToyNet((4, 8, 16)))
    teacher = staged(ToyNet((4, 8)))
    with pytest.raises(StageMismatchError, match="align_stages") as err:
        HybridForward(student, teacher)
    assert "features.2" in str(err.value)


@pytest.mark.parametrize(
    "points, match", [([0], "outside"), ([3], "outside"), ([1, 1], "repeats"), ([], "empty")]
)
def test_bad_switch_points_fail_clearly(points, match):
    with pytest.raises(ValueError, match=match):
        make_engine(switch_points=points)


def test_bad_out_indices_fail_clearly():
    with pytest.raises(ValueError, match="out_indices"):
        make_engine(out_indices=[5])


def test_hybrid_forward_without_teacher_fails_clearly():
    engine = HybridForward(staged(ToyNet()))
    with pytest.raises(RuntimeError, match="no teacher"):
        engine.forward_hybrid(torch.zeros(1, 3, 8, 8))
