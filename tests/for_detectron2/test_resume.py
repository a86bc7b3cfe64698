"""``tools/train_net.py --resume`` with HybridKTTrainer: what continues, and what does not.

detectron2 checkpoints hold the model (teacher included), the optimiser, the LR scheduler and
the iteration. It restarts the data loader and does not restore the random generators, so after
a resume the batches, and with them the losses, differ from an uninterrupted run: that is
detectron2's design, not something the hybrid trainer can fix from outside (the mmseg side is
bit-exact, tests/reliability/test_mmseg_resume.py). These tests pin what a resumed hybrid run
must keep: iteration, schedule, optimiser state, student and adapters, the same frozen teacher,
alpha in the logs, and a clear error when the teacher file is gone.
"""
import json
import logging
import shutil

import pytest
import torch

from tests.for_detectron2.d2_helpers import SYNTHETIC_CONFIGS, TINY, load_cfg, train_net_module
from hybridkt_ext.core import TeacherCheckpointError, TeacherMismatchError  # noqa: E402
from hybridkt_ext.core import teacher_fingerprint  # noqa: E402
from hybridkt_ext.for_detectron2.hooks import find_teacher  # noqa: E402

CONFIG = next(p for p in SYNTHETIC_CONFIGS if p.name == "hybridkt-mobilenetv1-fpn-synthetic.yaml")
CHECKPOINT = "model_0000002.pth"  # written after 3 of the 6 iterations


@pytest.fixture(autouse=True)
def synthetic_data(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("HYBRIDKT_DATA", str(tmp_path_factory.getbasetemp() / "hkt_data"))


@pytest.fixture(scope="module")
def teacher_file(tmp_path_factory):
    import torchvision

    torch.manual_seed(1)
    path = tmp_path_factory.mktemp("teacher") / "resnet18.pth"
    torch.save(torchvision.models.resnet18().state_dict(), path)
    return path


def _cfg(output_dir, teacher_file):
    return load_cfg(CONFIG, TINY + [
        "SOLVER.MAX_ITER", "6", "SOLVER.CHECKPOINT_PERIOD", "3", "SOLVER.STEPS", "(4,)",
        "SOLVER.WARMUP_ITERS", "2", "SEED", "0", "OUTPUT_DIR", str(output_dir),
        "MODEL.HYBRIDKT.TEACHER.WEIGHTS", str(teacher_file),
        "MODEL.HYBRIDKT.TEACHER.WEIGHTS_STRICT", "False"])


def _history(trainer, key):
    """{iteration: value} of a scalar over the whole run (EventStorage keeps every step)."""
    return {it: value for value, it in trainer.storage.history(key).values()}


def _interrupted_copy(full_dir, resumed_dir):
    """What a run killed right after its iteration-3 checkpoint leaves behind."""
    resumed_dir.mkdir()
    shutil.copy(full_dir / CHECKPOINT, resumed_dir / CHECKPOINT)
    (resumed_dir / "last_checkpoint").write_text(CHECKPOINT)


def test_resume_continues_schedule_optimiser_student_and_teacher(tmp_path, teacher_file):
    trainer_cls = train_net_module().Trainer
    full = trainer_cls(_cfg(tmp_path / "full", teacher_file))
    full.resume_or_load(resume=False)
    full.train()
    saved = torch.load(tmp_path / "full" / CHECKPOINT, map_location="cpu", weights_only=False)
    state = saved["trainer"]
    assert saved["iteration"] == 2 and "LRScheduler" in state["hooks"]
    saved_optimiser = state["_trainer"]["optimizer"]["state"]

    _interrupted_copy(tmp_path / "full", tmp_path / "resumed")
    resumed = trainer_cls(_cfg(tmp_path / "resumed", teacher_file))
    resumed.resume_or_load(resume=True)
    assert resumed.start_iter == 3
    model_state = resumed.model.state_dict()
    for key, value in saved["model"].items():  # student, adapters, heads and teacher
        assert torch.equal(model_state[key], torch.as_tensor(value)), key
    optimiser_state = resumed.optimizer.state_dict()["state"]
    assert optimiser_state and all(
        torch.equal(optimiser_state[i]["momentum_buffer"], s["momentum_buffer"])
        for i, s in saved_optimiser.items())
    teacher = find_teacher(resumed.model)
    assert not any(p.requires_grad for p in teacher.parameters()) and not teacher.training
    teacher_before = teacher_fingerprint(teacher)
    resumed.train()  # HybridKTHook checks the teacher stayed frozen and unchanged
    assert teacher_fingerprint(teacher) == teacher_before == teacher_fingerprint(
        find_teacher(full.model))

    full_lr, resumed_lr = _history(full, "lr"), _history(resumed, "lr")
    assert sorted(resumed_lr) == [3, 4, 5]  # nothing re-run, nothing skipped
    for it in (3, 4, 5):  # warm-up done, the step at iteration 4 applied at the same place
        assert resumed_lr[it] == pytest.approx(full_lr[it], rel=1e-12), it
        l1, l2, l3 = (_history(resumed, k)[it] for k in ("hkt_L1", "hkt_L2", "hkt_L3"))
        assert _history(resumed, "hkt_alpha")[it] == pytest.approx(2 * l3 / (l1 + l2), rel=1e-4)
    assert full_lr[4] < full_lr[3]  # the LR step really is inside the resumed window
    assert json.loads((tmp_path / "resumed" / "metrics.json").read_text().splitlines()[0])[
        "iteration"] == 5  # logged under the run's own iteration numbers


def test_resume_with_the_teacher_file_gone_fails_at_build(tmp_path, teacher_file):
    gone = tmp_path / "moved_teacher.pth"
    shutil.copy(teacher_file, gone)
    cfg = _cfg(tmp_path / "run", gone)
    gone.unlink()
    with pytest.raises(TeacherCheckpointError, match="moved_teacher.pth"):
        train_net_module().Trainer(cfg)


def test_resuming_with_another_teacher_is_refused_as_on_the_mmseg_side(tmp_path, teacher_file,
                                                                       caplog):
    trainer_cls = train_net_module().Trainer
    first = trainer_cls(_cfg(tmp_path / "first", teacher_file))
    first.checkpointer.save("model_0000002", iteration=2)
    other = tmp_path / "other_teacher.pth"
    state = torch.load(teacher_file, weights_only=True)
    state["conv1.weight"] = state["conv1.weight"] + 1.0
    torch.save(state, other)
    second = trainer_cls(_cfg(tmp_path / "first", other))
    built = teacher_fingerprint(find_teacher(second.model))
    with pytest.raises(TeacherMismatchError, match="other_teacher.pth.*Restore the original"):
        second.resume_or_load(resume=True)
    assert teacher_fingerprint(find_teacher(second.model)) == built  # left as built
    # Loading the checkpoint as MODEL.WEIGHTS (not resuming) warns and keeps the teacher of
    # MODEL.HYBRIDKT.TEACHER.WEIGHTS: the teacher always comes from its own file.
    third = trainer_cls(_cfg(tmp_path / "third", other))
    built = teacher_fingerprint(find_teacher(third.model))
    third.cfg.defrost()
    third.cfg.MODEL.WEIGHTS = str(tmp_path / "first" / "model_0000002.pth")
    with caplog.at_level(logging.WARNING, logger="hybridkt_ext.for_detectron2.trainer"):
        third.resume_or_load(resume=False)
    assert "is not the teacher this checkpoint was trained with" in caplog.text
    assert "other_teacher.pth" in caplog.text and "Continuing with the teacher built" in caplog.text
    assert teacher_fingerprint(find_teacher(third.model)) == built
