"""Student export: plain layout, identical outputs, atomic writes."""

from __future__ import annotations

import pytest
import torch

from hybridkt_ext.core import export_student_state_dict, save_atomically
from tests.toy_models import ToyNet, make_engine


def test_export_loads_into_plain_model_with_identical_outputs(tmp_path):
    engine, _ = make_engine()
    engine.train()
    engine.forward_hybrid(torch.randn(4, 3, 16, 16))  # move running stats off their init
    exported = export_student_state_dict(
        {f"engine.{k}": v for k, v in engine.state_dict().items()},
        student_prefix="engine.student.model.",
        drop_prefixes=("engine.",),
    )
    path = save_atomically(exported, tmp_path / "student.pth")
    plain = ToyNet()
    plain.load_state_dict(torch.load(path, weights_only=True), strict=True)
    engine.eval()
    plain.eval()
    x = torch.randn(2, 3, 16, 16)
    torch.testing.assert_close(plain(x), engine.student.model(x), rtol=0, atol=0)
    assert not any(k.startswith(("teacher", "to_")) for k in exported)


def test_export_with_wrong_prefix_fails():
    engine, _ = make_engine()
    with pytest.raises(KeyError, match="student_prefix"):
        export_student_state_dict(engine.state_dict(), student_prefix="backbone.student.")


def test_save_atomically_refuses_to_overwrite_and_leaves_no_temp(tmp_path):
    target = tmp_path / "out.pth"
    save_atomically({"a": torch.zeros(1)}, target)
    with pytest.raises(FileExistsError, match="overwrite"):
        save_atomically({"a": torch.ones(1)}, target)
    assert torch.load(target)["a"].item() == 0.0
    save_atomically({"a": torch.ones(1)}, target, overwrite=True)
    assert torch.load(target)["a"].item() == 1.0
    assert [p.name for p in tmp_path.iterdir()] == ["out.pth"]


def test_failed_save_keeps_previous_file(tmp_path):
    target = tmp_path / "out.pth"
    save_atomically({"a": torch.zeros(1)}, target)

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        save_atomically({"a": Unpicklable()}, target, overwrite=True)
    assert torch.load(target)["a"].item() == 0.0
    assert [p.name for p in tmp_path.iterdir()] == ["out.pth"]
