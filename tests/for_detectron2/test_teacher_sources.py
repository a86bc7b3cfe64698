"""detectron2 teachers named by their own config (YAML and LazyConfig), and from timm.

Each test writes the checkpoint it loads: a detector's weights as detectron2 saves them, built
from the config the teacher is named by.
"""
import pytest
import torch

from tests.for_detectron2.d2_helpers import SYNTHETIC_CONFIGS, TINY, load_cfg
from detectron2.modeling import build_model  # noqa: E402

from hybridkt_ext.for_detectron2.hooks import find_teacher  # noqa: E402
from hybridkt_ext.for_detectron2.teacher import build_teacher  # noqa: E402
from hybridkt_ext.for_detectron2.teacher_config import teacher_from_config  # noqa: E402

CONFIG = next(p for p in SYNTHETIC_CONFIGS if p.name == "hybridkt-mobilenetv1-fpn-synthetic.yaml")
FPN_YAML = "COCO-Detection/faster_rcnn_R_50_FPN_3x.yaml"
C4_YAML = "COCO-Detection/faster_rcnn_R_50_C4_1x.yaml"
LAZY = "new_baselines/mask_rcnn_R_50_FPN_100ep_LSJ.py"
LAZY_REGNET = "new_baselines/mask_rcnn_regnetx_4gf_dds_FPN_100ep_LSJ.py"


@pytest.fixture(autouse=True)
def synthetic_data(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("HYBRIDKT_DATA", str(tmp_path_factory.getbasetemp() / "hkt_data"))


def _detector_checkpoint(path, name: str) -> dict[str, torch.Tensor]:
    """What detectron2 saves for a detector of config ``name``: its bottom-up under its
    prefix, plus other detector keys the teacher does not use."""
    torch.manual_seed(0)
    staged, _, prefix = teacher_from_config(name)
    weights = {k: v.clone().normal_() if v.is_floating_point() else v
               for k, v in staged.model.state_dict().items()}
    model = {f"{prefix}{k}": v for k, v in weights.items()}
    model["roi_heads.box_predictor.cls_score.weight"] = torch.zeros(81, 1024)
    torch.save({"model": model, "iteration": 90000}, path)
    return weights


def _cfg(*opts):
    return load_cfg(CONFIG, TINY + list(opts))


@pytest.mark.parametrize("name, stages, prefix", [
    (FPN_YAML, ["res2", "res3", "res4", "res5"], "backbone.bottom_up."),
    (C4_YAML, ["res2", "res3", "res4"], "backbone."),  # res5 lives in the C4 ROI head
    (LAZY, ["res2", "res3", "res4", "res5"], "backbone.bottom_up."),
    (LAZY_REGNET, ["s1", "s2", "s3", "s4"], "backbone.bottom_up."),  # detectron2's RegNet
])
def test_a_teacher_named_by_its_config_is_that_bottom_up(tmp_path, name, stages, prefix):
    weights = _detector_checkpoint(tmp_path / "model_final.pth", name)
    staged, convention, found_prefix = teacher_from_config(name)
    assert [s.name for s in staged.stage_specs] == stages and found_prefix == prefix
    # detectron2's ImageNet models: BGR, 0-255, minus the pixel mean (std 1 in the YAMLs).
    assert convention.channel_order == "BGR" and convention.mean[0] == pytest.approx(103.53)
    cfg = _cfg("MODEL.HYBRIDKT.TEACHER.CONFIG", name,
               "MODEL.HYBRIDKT.TEACHER.WEIGHTS", str(tmp_path / "model_final.pth"))
    teacher = build_teacher(cfg)
    for key, value in weights.items():
        assert torch.equal(teacher.model.state_dict()[key], value), key


def test_a_config_teacher_trains_in_the_hybrid_model(tmp_path):
    _detector_checkpoint(tmp_path / "model_final.pth", FPN_YAML)
    cfg = _cfg("MODEL.HYBRIDKT.TEACHER.CONFIG", FPN_YAML,
               "MODEL.HYBRIDKT.TEACHER.WEIGHTS", str(tmp_path / "model_final.pth"))
    model = build_model(cfg)
    engine = model.backbone.engine
    assert engine.teacher is find_teacher(model)
    assert engine.teacher_input.swap is False  # both BGR
    paths = model.backbone.forward_hybrid(torch.randn(1, 3, 128, 128))
    sum(f.square().mean() for f in paths.teacher_first.values()).backward()


def test_a_missing_teacher_config_is_named(tmp_path):
    cfg = _cfg("MODEL.HYBRIDKT.TEACHER.CONFIG", "COCO-Detection/nope.yaml",
               "MODEL.HYBRIDKT.TEACHER.ALLOW_RANDOM_INIT", "True")
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        build_teacher(cfg)


def test_a_teacher_yaml_config_never_runs_code(tmp_path):
    # detectron2's merge_from_file would retry a YAML that safe_load refuses with unsafe_load.
    marker = tmp_path / "PWNED"
    evil = tmp_path / "teacher.yaml"
    evil.write_text(f'MODEL: !!python/object/apply:os.system ["touch {marker}"]\n')
    cfg = _cfg("MODEL.HYBRIDKT.TEACHER.CONFIG", str(evil),
               "MODEL.HYBRIDKT.TEACHER.ALLOW_RANDOM_INIT", "True")
    with pytest.raises(ValueError, match=r"not a valid YAML config: .*teacher.yaml, line 1"):
        build_teacher(cfg)
    assert not marker.exists()


def test_a_timm_teacher_from_a_safetensors_file(tmp_path):
    from safetensors.torch import save_file

    from hybridkt_ext.core.zoo_teachers import build_zoo_model

    torch.manual_seed(0)
    weights = {k: v.contiguous() for k, v in build_zoo_model("timm.resnet18").state_dict()
               .items()}
    save_file(weights, str(tmp_path / "resnet18.safetensors"))
    cfg = _cfg("MODEL.HYBRIDKT.TEACHER.FRAMEWORK", "timm", "MODEL.HYBRIDKT.TEACHER.ARCH",
               "resnet18", "MODEL.HYBRIDKT.TEACHER.WEIGHTS", str(tmp_path / "resnet18.safetensors"))
    model = build_model(cfg)
    teacher = find_teacher(model).model
    assert torch.equal(teacher.layer3[0].conv1.weight, weights["layer3.0.conv1.weight"])
