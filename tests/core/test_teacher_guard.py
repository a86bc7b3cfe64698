"""``TeacherGuard``: frozen before, unchanged after, and the resume policy, for every adapter."""
from __future__ import annotations

import pytest
import torch

from hybridkt_ext.core import (TeacherGuard, TeacherMismatchError, TeacherNotFrozenError,
                               TeacherSource, freeze_teacher)
from tests.toy_models import ToyNet

SOURCE = TeacherSource("cfg.teacher.file", "t.pth", "start afresh with load_from")


def _teacher(seed: int = 0) -> ToyNet:
    torch.manual_seed(seed)
    return freeze_teacher(ToyNet())


def test_a_teacher_not_frozen_before_training_is_refused_naming_what():
    teacher = _teacher()
    teacher.features[1].train()
    with pytest.raises(TeacherNotFrozenError, match=r"Hook, before training: .*module\(s\) in "
                                                    r"training mode, e\.g\. \['features\.1'"):
        TeacherGuard(teacher, "Hook").before_training()


def test_a_teacher_changed_during_training_is_named_by_its_tensors():
    teacher = _teacher()
    guard = TeacherGuard(teacher, "Hook")
    guard.before_training()
    guard.after_training()  # unchanged: passes
    with torch.no_grad():
        teacher.features[0][1].running_mean += 1
    with pytest.raises(TeacherNotFrozenError, match=r"changed during training: "
                                                    r"\['features\.0\.1\.running_mean'\]"):
        guard.after_training()


def test_after_training_without_before_training_checks_nothing():
    TeacherGuard(_teacher()).after_training()


def test_the_same_teacher_passes_resume_and_load():
    teacher = _teacher()
    guard = TeacherGuard(teacher)
    trained_with = guard.fingerprint()
    assert guard.check_loaded(trained_with, SOURCE, resuming=True) is None
    assert guard.check_loaded(trained_with, SOURCE, resuming=False) is None


def test_resuming_with_another_teacher_is_refused_and_loading_warns():
    trained_with = TeacherGuard(_teacher(seed=1)).fingerprint()
    guard = TeacherGuard(_teacher(seed=2), "Hook")
    with pytest.raises(TeacherMismatchError, match=r"Restore the original teacher file at "
                                                   r"cfg\.teacher\.file to resume; .*start afresh"):
        guard.check_loaded(trained_with, SOURCE, resuming=True, trained_from="old.pth")
    warning = guard.check_loaded(trained_with, SOURCE, resuming=False, trained_from="old.pth")
    assert "'t.pth'" in warning and "'old.pth'" in warning
    assert warning.endswith("Continuing with the teacher built from the config.")


def test_a_random_teacher_cannot_be_resumed():
    trained_with = TeacherGuard(_teacher(seed=1)).fingerprint()
    with pytest.raises(TeacherMismatchError, match="drawn anew at every build"):
        TeacherGuard(_teacher(seed=2)).check_loaded(trained_with, SOURCE, resuming=True,
                                                    random_init=True)
