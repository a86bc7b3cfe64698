"""detectron2 reads no checkpoint with a full unpickler unless the run opts in.

detectron2 itself reads ``.pkl`` weights with ``pickle.load``; a pickle naming ``os.system``
runs it. Through ``HybridKTTrainer`` (and tools/train_net.py) the teacher file, MODEL.WEIGHTS
and resumed checkpoints are read by the project's allowlist first.
"""
import os
import pickle

import pytest
import torch
import torchvision

from tests.for_detectron2.d2_helpers import SYNTHETIC_CONFIGS, TINY, load_cfg, train_net_module
from hybridkt_ext.core import UntrustedCheckpointError  # noqa: E402
from hybridkt_ext.for_detectron2 import SafeDetectionCheckpointer  # noqa: E402

CONFIG = next(p for p in SYNTHETIC_CONFIGS if p.name == "hybridkt-mobilenetv1-fpn-synthetic.yaml")


class _CreatesFile:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.fixture(autouse=True)
def synthetic_data(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("HYBRIDKT_DATA", str(tmp_path_factory.getbasetemp() / "hkt_data"))


def _hostile_pkl(tmp_path, state: dict) -> tuple[str, str]:
    marker = str(tmp_path / "code_ran")
    path = str(tmp_path / "model_final.pkl")
    with open(path, "wb") as f:
        pickle.dump({"model": {k: v.numpy() for k, v in state.items()},
                     "__author__": _CreatesFile(marker)}, f)
    return path, marker


def _cfg(tmp_path, *opts):
    return load_cfg(CONFIG, TINY + ["SOLVER.MAX_ITER", "1", "OUTPUT_DIR", str(tmp_path / "out"),
                                    *opts])


def test_a_hostile_teacher_pkl_is_refused(tmp_path):
    torch.manual_seed(0)
    path, marker = _hostile_pkl(tmp_path, torchvision.models.resnet18().state_dict())
    cfg = _cfg(tmp_path, "MODEL.HYBRIDKT.TEACHER.WEIGHTS", path,
               "MODEL.HYBRIDKT.TEACHER.WEIGHTS_STRICT", "False")
    with pytest.raises(UntrustedCheckpointError, match="posix.system"):
        train_net_module().Trainer.build_model(cfg)
    assert not os.path.exists(marker)


def test_hostile_model_weights_are_refused_unless_trusted(tmp_path):
    cfg = _cfg(tmp_path)
    trainer_cls = train_net_module().Trainer
    model = trainer_cls.build_model(cfg)
    path, marker = _hostile_pkl(tmp_path, model.state_dict())
    with pytest.raises(UntrustedCheckpointError, match="posix.system"):
        SafeDetectionCheckpointer(model).load(path)
    assert not os.path.exists(marker)
    # The same file through plain detectron2 (and through the opt-in) does run the payload.
    SafeDetectionCheckpointer(model, trust=True).load(path)
    assert os.path.exists(marker)


def test_a_hostile_resume_checkpoint_is_refused(tmp_path):
    cfg = _cfg(tmp_path)
    trainer = train_net_module().Trainer(cfg)
    out = tmp_path / "out"
    marker = tmp_path / "code_ran"
    torch.save({"model": trainer.model.state_dict(), "iteration": 3,
                "note": _CreatesFile(str(marker))}, out / "model_0000003.pth")
    (out / "last_checkpoint").write_text("model_0000003.pth")
    with pytest.raises(UntrustedCheckpointError, match="posix.system"):
        trainer.resume_or_load(resume=True)
    assert not marker.exists()


def test_trust_checkpoints_must_be_a_boolean(tmp_path):
    model = train_net_module().Trainer.build_model(_cfg(tmp_path))
    with pytest.raises(ValueError, match="True or False"):
        SafeDetectionCheckpointer(model, trust="yes")


def test_a_failed_checkpoint_save_leaves_the_previous_one(tmp_path, monkeypatch):
    model = train_net_module().Trainer.build_model(_cfg(tmp_path))
    out = tmp_path / "ckpt"
    out.mkdir()
    checkpointer = SafeDetectionCheckpointer(model, str(out))
    checkpointer.save("model_0000001")
    before = (out / "model_0000001.pth").read_bytes()

    def disk_full(obj, f, *args, **kwargs):
        f.write(b"half a checkpoint")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", disk_full)
    with pytest.raises(OSError, match="No space left"):
        checkpointer.save("model_0000001")
    monkeypatch.undo()
    assert (out / "model_0000001.pth").read_bytes() == before
    assert (out / "last_checkpoint").read_text() == "model_0000001.pth"
    assert sorted(p.name for p in out.iterdir()) == ["last_checkpoint", "model_0000001.pth"]
    assert checkpointer.resume_or_load("", resume=True) == {}  # it reads back whole
