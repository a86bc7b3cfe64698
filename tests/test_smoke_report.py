"""The smoke tool's parts that need no framework: --teacher forms, config kinds, the verdict."""
from __future__ import annotations

import pytest

from hybridkt_ext.smoke.config_kind import UnknownConfigKindError, config_kind
from hybridkt_ext.smoke.smoke_report import IterationLosses, SmokeResult
from hybridkt_ext.smoke.teacher_option import TeacherOption, TeacherOptionError


def test_teacher_forms_become_each_frameworks_own_settings():
    by_config = TeacherOption.parse("config:mmseg::deeplabv3/x.py")
    assert by_config.openmmlab_teacher() == dict(config="mmseg::deeplabv3/x.py",
                                                 allow_random_init=True)
    assert by_config.detectron2_options()[:2] == ["MODEL.HYBRIDKT.TEACHER.CONFIG",
                                                  "mmseg::deeplabv3/x.py"]
    zoo = TeacherOption.parse("timm.resnet18", checkpoint="t.safetensors")
    assert zoo.openmmlab_teacher() == dict(type="timm.resnet18", checkpoint="t.safetensors")
    assert zoo.detectron2_options() == [
        "MODEL.HYBRIDKT.TEACHER.FRAMEWORK", "timm", "MODEL.HYBRIDKT.TEACHER.ARCH", "resnet18",
        "MODEL.HYBRIDKT.TEACHER.WEIGHTS", "t.safetensors"]


def test_teacher_options_are_literals_for_openmmlab_and_refused_for_detectron2():
    vit = TeacherOption.parse("timm.vit_tiny_patch16_224", options=["dynamic_img_size=True",
                                                                    "vit_stages=[2, 5, 8, 11]"])
    assert vit.openmmlab_teacher() == dict(type="timm.vit_tiny_patch16_224",
                                           allow_random_init=True, dynamic_img_size=True,
                                           vit_stages=[2, 5, 8, 11])
    with pytest.raises(TeacherOptionError, match="MODEL.HYBRIDKT.TEACHER"):
        vit.detectron2_options()
    with pytest.raises(TeacherOptionError, match="KEY=VALUE"):
        TeacherOption.parse("timm.resnet18", options=["dynamic_img_size"])


@pytest.mark.parametrize("text", ["resnet18", "config:", "torchvision.", "mmseg::x.py"])
def test_a_teacher_in_no_known_form_is_refused_naming_the_forms(text):
    with pytest.raises(TeacherOptionError, match="config:<file"):
        TeacherOption.parse(text)


def test_config_kinds(tmp_path):
    assert config_kind("mmseg::pspnet/p.py") == "mmseg"
    assert config_kind("COCO-Detection/faster_rcnn_R_50_FPN_1x.yaml") == "detectron2"
    lazy = tmp_path / "lazy.py"
    lazy.write_text("from detectron2.config import LazyCall as L\nmodel = L(dict)()\n")
    with pytest.raises(UnknownConfigKindError, match="LazyConfig.*train_net.py"):
        config_kind(str(lazy))
    with pytest.raises(UnknownConfigKindError, match="not a config"):
        config_kind("weights.pth")


def _result(**changes) -> SmokeResult:
    losses = [IterationLosses(i, 2 * 1.0 / (0.8 + 1.2), 0.8, 1.2, 1.0) for i in (1, 2)]
    values = dict(config="c.py", framework="mmseg", iterations=2, losses=losses,
                  plain_seconds=1.0, hybrid_seconds=2.5, export_difference=0.0)
    return SmokeResult(**{**values, **changes})


def test_a_sound_run_passes_and_prints_the_ratio():
    result = _result()
    assert result.problems == []
    text = "\n".join(result.lines())
    assert "(2.50x)" in text and text.endswith("smoke test passed")


@pytest.mark.parametrize("changes, problem", [
    (dict(export_difference=0.1), "differ from the hybrid model's by 0.1"),
    (dict(export_difference=float("inf")), "differ"),
    (dict(losses=[IterationLosses(1, 1.0, 0.8, 1.2, 1.0)]), "logged at 1 of 2"),
    (dict(losses=[IterationLosses(1, 1.0, 0.8, 1.2, 1.5), IterationLosses(2, 1.0, 1, 1, 1)]),
     "iteration 1: alpha 1 != 2 L3"),
])
def test_each_failed_check_is_named(changes, problem):
    result = _result(**changes)
    assert any(problem in p for p in result.problems), result.problems
    assert result.lines()[-1].startswith("FAILED")
