"""Several teachers: each with its own adapters and hybrid paths, one balance per teacher."""
from __future__ import annotations

import pytest
import torch

from hybridkt_ext.core import (HybridForward, NonFiniteLossError, StageMismatchError,
                               TransferSettings, TransferStep, teacher_fingerprint)
from hybridkt_ext.core.transfer_step import build_balancer
from tests.toy_models import ToyNet, head_loss, make_engine, staged


def _two_teachers(seed: int = 0, **kwargs) -> tuple[HybridForward, torch.nn.Module]:
    torch.manual_seed(seed)
    student = ToyNet()
    teachers = [staged(ToyNet((6, 12, 24))), staged(ToyNet((5, 10, 20)))]
    engine = HybridForward(staged(student), teachers, teacher_names=("seg", "digits"), **kwargs)
    return engine.double(), student.fc


def _batch(seed: int = 3):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(4, 3, 16, 16, generator=g).double(),
            torch.randint(0, 3, (4,), generator=g))


def _run(step: TransferStep, head, x, y, iteration: int, calls: list | None = None):
    def forward():
        if calls is not None:
            calls.append(step.active)
        return {"loss_ce": head_loss(head, step.features(x), y)}
    return step.run(forward, lambda d: d["loss_ce"], step=iteration)


def test_a_one_teacher_list_is_the_single_teacher_engine_exactly(one_thread):
    single, head = make_engine(seed=5)
    torch.manual_seed(5)
    student, teacher = ToyNet(), ToyNet((6, 12, 24))
    listed = HybridForward(staged(student), [staged(teacher)])
    assert list(listed.state_dict()) == list(single.state_dict())  # the same checkpoint keys
    listed.load_state_dict(single.state_dict())
    x, y = _batch()
    results = []
    for engine, fc in ((single, head), (listed, student.fc)):
        fc.load_state_dict(head.state_dict())
        engine.double().train()
        fc.double()
        step = TransferStep(engine, "hybrid", build_balancer("hybrid", None))
        results.append(_run(step, fc, x, y, 0))
    assert set(results[0].log_values) == set(results[1].log_values) == {
        "hkt_alpha", "hkt_L1", "hkt_L2", "hkt_L3"}
    assert results[0].total.item() == results[1].total.item()
    for key, value in results[0].log_values.items():
        assert value.item() == results[1].log_values[key].item(), key


@pytest.mark.parametrize("train", [True, False], ids=["batch-norm", "fused-eval"])
def test_each_teachers_paths_are_the_single_teacher_paths_through_its_adapters(one_thread, train):
    engine, _ = _two_teachers()
    engine.train(train)
    x, _ = _batch()
    feats = engine.forward_hybrid(x)
    assert engine.path_names() == ("student", "student_first", "teacher_first",
                                   "student_first:1", "teacher_first:1")
    for k, teacher in enumerate(engine.teachers):
        alone = HybridForward(engine.student, teacher).double()
        alone.to_teacher.load_state_dict(engine.to_teacher[k].state_dict())
        alone.to_student.load_state_dict(engine.to_student[k].state_dict())
        alone.train(train)
        ref = alone.forward_hybrid(x)
        suffix = "" if k == 0 else f":{k}"
        for kind in ("student_first", "teacher_first"):
            for got, want in zip(feats.path(kind + suffix), getattr(ref, kind)):
                torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
        for got, want in zip(feats.student, ref.student):
            torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


def test_the_balance_keeps_the_transfer_term_at_two_l3_whatever_the_teacher_count(one_thread):
    engine, head = _two_teachers()
    engine.train()
    x, y = _batch()
    step = TransferStep(engine, "hybrid", build_balancer("hybrid", None))
    calls: list = []
    result = _run(step, head, x, y, 0, calls)
    assert calls == ["student_first", "teacher_first", "student_first:1", "teacher_first:1",
                     "student"]
    feats = engine.forward_hybrid(x)
    losses = {name: head_loss(head, feats.path(name), y) for name in engine.path_names()}
    l3 = losses["student"]
    alphas = [2 * l3 / (losses["student_first"] + losses["teacher_first"]),
              2 * l3 / (losses["student_first:1"] + losses["teacher_first:1"])]
    logged = result.log_values
    assert set(logged) == {"hkt_L3", "hkt_alpha/seg", "hkt_L1/seg", "hkt_L2/seg",
                           "hkt_alpha/digits", "hkt_L1/digits", "hkt_L2/digits"}
    # alpha is computed in float32 from the detached losses (LossBalancer), as with one teacher
    for name, alpha in zip(("seg", "digits"), alphas):
        torch.testing.assert_close(logged[f"hkt_alpha/{name}"].double(), alpha.detach(),
                                   rtol=1e-6, atol=0)
    used = [logged[f"hkt_alpha/{name}"].double() for name in ("seg", "digits")]
    expected = (used[0] * (losses["student_first"] + losses["teacher_first"])
                + used[1] * (losses["student_first:1"] + losses["teacher_first:1"])) / 2 + l3
    torch.testing.assert_close(result.total, expected, rtol=1e-12, atol=0)
    # Each alpha_k (L1_k + L2_k) is 2 L3: the total is 3 L3 for one teacher or for two.
    torch.testing.assert_close(result.total, 3 * l3, rtol=1e-6, atol=0)
    # The gradient is sum_k alpha_k (g1_k + g2_k) / K + g3 (alpha is a constant).
    student_params = list(engine.student.parameters())
    got = torch.autograd.grad(result.total, student_params, retain_graph=True)
    want = torch.autograd.grad(expected, student_params)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=1e-10, atol=1e-12)


def test_sampling_runs_one_teacher_per_step_in_turn(one_thread):
    engine, head = _two_teachers()
    engine.train()
    x, y = _batch()
    step = TransferStep(engine, "hybrid", build_balancer("hybrid", dict(teachers="sample")))
    seen = []
    for iteration in range(4):
        calls: list = []
        result = _run(step, head, x, y, iteration, calls)
        seen.append((calls, result.log_values["hkt_teacher"].item()))
        teacher = "seg" if iteration % 2 == 0 else "digits"
        assert {k for k in result.log_values if "/" in k} == {
            f"hkt_alpha/{teacher}", f"hkt_L1/{teacher}", f"hkt_L2/{teacher}"}
    assert seen[0] == (["student_first", "teacher_first", "student"], 0.0)
    assert seen[1] == (["student_first:1", "teacher_first:1", "student"], 1.0)
    assert seen[2][1] == 0.0 and seen[3][1] == 1.0


def test_alternating_and_sampling_give_every_teacher_both_paths_in_turn(one_thread):
    engine, head = _two_teachers()
    engine.train()
    x, y = _batch()
    step = TransferStep(engine, "hybrid_alternate",
                        build_balancer("hybrid_alternate", dict(teachers="sample")))
    runs = []
    for iteration in range(4):
        calls: list = []
        result = _run(step, head, x, y, iteration, calls)
        runs.append(calls[0])
        name = engine.teacher_names[iteration % 2]
        lk = result.log_values.get(f"hkt_L1/{name}", result.log_values.get(f"hkt_L2/{name}"))
        torch.testing.assert_close(result.log_values[f"hkt_alpha/{name}"],
                                   result.log_values["hkt_L3"] / lk)
    assert runs == ["student_first", "student_first:1", "teacher_first", "teacher_first:1"]


def test_a_non_finite_path_loss_names_the_teacher(one_thread):
    engine, head = _two_teachers()
    x, y = _batch()
    step = TransferStep(engine, "hybrid", build_balancer("hybrid", None))

    def forward():
        loss = head_loss(head, step.features(x), y)
        return {"loss_ce": loss * float("nan") if step.active == "teacher_first:1" else loss}
    with pytest.raises(NonFiniteLossError, match=r"L2 \(teacher-first path, teacher digits\)"):
        step.run(forward, lambda d: d["loss_ce"], step=7)


def test_reordering_the_teachers_changes_the_fingerprint(one_thread):
    engine, _ = _two_teachers()
    swapped = HybridForward(engine.student, engine.teachers[::-1])
    assert teacher_fingerprint(engine.teacher) != teacher_fingerprint(swapped.teacher)
    assert [k.split(".")[0] for k in engine.teacher.state_dict()][:1] == ["0"]


def test_refusals_name_the_teacher_and_the_fix():
    torch.manual_seed(0)
    student = staged(ToyNet())
    two_stages = staged(ToyNet((6, 12)))
    with pytest.raises(StageMismatchError, match=r"teacher 1 \(1\) has 2"):
        HybridForward(student, [staged(ToyNet((6, 12, 24))), two_stages])
    same = staged(ToyNet((6, 12, 24)))
    with pytest.raises(ValueError, match="same module as teacher 0"):
        HybridForward(student, [same, same])
    with pytest.raises(ValueError, match="teacher_names"):
        HybridForward(student, [same, staged(ToyNet())], teacher_names=("a", "a"))
    with pytest.raises(ValueError, match="takes one teacher"):
        TransferSettings.check("fitnet", teacher_count=2)
    with pytest.raises(ValueError, match="teachers='every'"):
        build_balancer("hybrid", dict(teachers="every"))
