"""A teacher named by its detectron2 training config, in an mmseg config (the real Runner)."""
from __future__ import annotations

import pickle

import pytest
import torch

pytest.importorskip("mmseg.models", reason="MMSegmentation (with mmcv ops) is not installed; "
                    "pip install 'hybridkt_ext[mmseg]'")
pytest.importorskip("detectron2.modeling", reason="detectron2 is not installed (source-only; "
                    "see docs/detectron2.md)")

from mmengine.config import Config  # noqa: E402
from detectron2 import model_zoo  # noqa: E402

from hybridkt_ext.core import TeacherCheckpointError  # noqa: E402
from hybridkt_ext.for_detectron2.teacher_config import teacher_from_config  # noqa: E402
from hybridkt_ext.for_mmseg.hybrid_backbone import build_teacher  # noqa: E402
from tests.for_mmseg.conftest import HYBRID_CONFIG, read_scalars, run_config  # noqa: E402


@pytest.fixture
def detector(tmp_path):
    """A user's detectron2 config (R-18 Faster R-CNN FPN over the model zoo's R-50 one) and a
    model_final.pkl of it, saved as the model zoo saves (numpy arrays under 'model')."""
    config = tmp_path / "faster_rcnn_R_18_FPN.yaml"
    base = model_zoo.get_config_file("COCO-Detection/faster_rcnn_R_50_FPN_3x.yaml")
    config.write_text(f"_BASE_: {base}\n"
                      "MODEL:\n  RESNETS:\n    DEPTH: 18\n    RES2_OUT_CHANNELS: 64\n")
    torch.manual_seed(0)
    staged, _, prefix = teacher_from_config(str(config))
    path = tmp_path / "model_final.pkl"
    with open(path, "wb") as f:
        pickle.dump({"model": {prefix + k: v.numpy()
                               for k, v in staged.model.state_dict().items()},
                     "__author__": "Detectron2 Model Zoo"}, f)
    return config, path, staged


def test_a_detectron2_config_teacher_trains_in_an_mmseg_config(tmp_path, detector):
    config, checkpoint, built = detector
    cfg = Config.fromfile(str(HYBRID_CONFIG))
    cfg.model.backbone.teacher = dict(config=str(config), checkpoint=str(checkpoint))
    runner = run_config(cfg, tmp_path / "work", tmp_path / "data")
    teacher = runner.model.backbone.engine.teacher.model
    for key, value in built.model.state_dict().items():  # the file's weights, untouched
        assert torch.equal(teacher.state_dict()[key], value), key
    # detectron2's convention (BGR, its config's mean and std), not the student's
    _, convention = build_teacher(dict(config=str(config), checkpoint=str(checkpoint)))
    assert convention.channel_order == "BGR" and tuple(convention.std) == (1.0, 1.0, 1.0)
    assert [r["step"] for r in read_scalars(tmp_path / "work") if "hkt_alpha" in r] == [1, 2]


def test_a_detectron2_config_teacher_refuses_another_detectors_file(detector, tmp_path):
    config, _, _ = detector
    other = tmp_path / "other.pkl"
    with open(other, "wb") as f:
        pickle.dump({"model": {"backbone.bottom_up.stem.conv1.weight": torch.zeros(1).numpy()}}, f)
    with pytest.raises(TeacherCheckpointError, match="backbone.bottom_up"):
        build_teacher(dict(config=str(config), checkpoint=str(other)))
    with pytest.raises(ValueError, match=r"\['depth'\] cannot be set next to it"):
        build_teacher(dict(config=str(config), depth=50, allow_random_init=True))
