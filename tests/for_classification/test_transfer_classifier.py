"""Every transfer mode trains on real digits; exports load into the plain classifier."""
from __future__ import annotations

import pytest
import torch

from hybridkt_ext.for_classification import (MODES, TrainConfig, TransferClassifier,
                                             build_classifier, evaluate, fit,
                                             load_digits_splits, staged_classifier)


@pytest.fixture(scope="module")
def digits():
    return load_digits_splits(image_size=32, train_limit=128)


def make(mode: str, **kwargs) -> TransferClassifier:
    torch.manual_seed(0)
    student, head = staged_classifier("mobilenet_v1_0.25", 10)
    teacher, teacher_head = staged_classifier("resnet18", 10)
    return TransferClassifier(student, head, mode, teacher, teacher_head, **kwargs)


@pytest.mark.parametrize("mode", MODES)
def test_each_mode_takes_optimiser_steps_and_logs(mode, digits):
    model = make(mode, fixed_alpha=0.5)
    teacher = model.engine.teacher
    assert (teacher is None) == (mode == "none")
    teacher_before = {} if teacher is None else {k: v.clone()
                                                 for k, v in teacher.state_dict().items()}
    student_before = {k: v.clone() for k, v in model.engine.student.state_dict().items()}
    rows = fit(model, model.training_step, digits[0], TrainConfig(epochs=1, batch_size=32))
    assert len(rows) == 4 and all(torch.isfinite(torch.tensor(r["loss"])) for r in rows)
    if mode in ("hybrid", "fixed"):
        assert {"hkt_alpha", "hkt_L1", "hkt_L2", "hkt_L3"} <= set(rows[0])
        if mode == "fixed":
            assert all(r["hkt_alpha"] == 0.5 for r in rows)
    elif mode == "hybrid_alternate":  # student-first, teacher-first, ... one per step
        assert [r["hkt_path"] for r in rows] == [1.0, 2.0, 1.0, 2.0]
        assert all(r["hkt_alpha"] == pytest.approx(r["hkt_L3"] / r[f"hkt_L{int(r['hkt_path'])}"],
                                                   rel=1e-5) for r in rows)
    elif mode != "none":
        assert rows[0]["hkt_transfer"] > 0 and rows[0]["hkt_L3"] > 0
    student_after = model.engine.student.state_dict()
    assert any(not torch.equal(student_before[k], student_after[k]) for k in student_before)
    if teacher is not None:
        for k, v in teacher.state_dict().items():
            assert torch.equal(v, teacher_before[k]), k


def test_mobilenet_student_and_resnet_teacher_are_aligned_to_four_stages():
    model = make("hybrid")
    assert [s.reduction for s in model.engine.student.stage_specs] == [4, 8, 16, 32]
    assert model.engine.plan.student_first == "STST"


@pytest.mark.parametrize("mode", ["hybrid", "fitnet"])
def test_export_loads_into_plain_classifier_with_identical_logits(mode, digits):
    model = make(mode)
    fit(model, model.training_step, digits[0], TrainConfig(epochs=1, batch_size=32))
    plain = build_classifier("mobilenet_v1_0.25", 10)
    plain.load_state_dict(model.student_state_dict(), strict=True)
    model.eval()
    plain.eval()
    x = digits[1].tensors[0][:16]
    torch.testing.assert_close(plain(x), model(x), rtol=0, atol=0)
    assert evaluate(plain, digits[1]) == evaluate(model, digits[1])


def test_bad_modes_fail_clearly():
    student, head = staged_classifier("mobilenet_v1_0.25", 10)
    with pytest.raises(ValueError, match="hybird"):
        TransferClassifier(student, head, "hybird")
    with pytest.raises(ValueError, match="needs a teacher"):
        TransferClassifier(student, head, "hybrid")
    with pytest.raises(ValueError, match="unknown architecture"):
        build_classifier("resnet9000", 10)
