"""Student bottom-ups beyond the FPN ResNet: RegNet, DC5 (dilated res5) and C4 (res2..res4).

Every model here is tiny (widths of 8..64 channels, 64 px inputs): the tests check the stage
declarations and the engine's wiring, not accuracy.
"""
import pytest
import torch

from tests.for_detectron2 import d2_helpers  # noqa: F401  (skips the module without detectron2)
from detectron2.config import get_cfg  # noqa: E402
from detectron2.layers import ShapeSpec  # noqa: E402
from detectron2.modeling import FPN  # noqa: E402
from detectron2.modeling.backbone import RegNet  # noqa: E402
from detectron2.modeling.backbone.fpn import LastLevelMaxPool  # noqa: E402
from detectron2.modeling.backbone.regnet import ResBottleneckBlock, SimpleStem  # noqa: E402
from detectron2.modeling.backbone.resnet import build_resnet_backbone  # noqa: E402

from hybridkt_ext.core import (HybridForward, StageMismatchError,  # noqa: E402
                               check_stage_contract)
from hybridkt_ext.for_detectron2 import add_hybridkt_config  # noqa: E402
from hybridkt_ext.for_detectron2.hybrid_backbone import (  # noqa: E402
    HybridBottomUp, HybridFPN, build_hybrid_engine, transfer_settings)
from hybridkt_ext.for_detectron2.stage_split import (match_teacher_stages,  # noqa: E402
                                                     split_bottom_up)
from hybridkt_ext.for_detectron2.teacher import build_teacher  # noqa: E402

# A tiny bottleneck ResNet-50: DC5 needs Bottleneck blocks (detectron2 refuses RES5_DILATION 2
# for R18/R34), and RES2_OUT_CHANNELS is free only from depth 50 on.
TINY_R50 = ["MODEL.RESNETS.DEPTH", "50", "MODEL.RESNETS.STEM_OUT_CHANNELS", "8",
            "MODEL.RESNETS.RES2_OUT_CHANNELS", "32", "MODEL.RESNETS.WIDTH_PER_GROUP", "8",
            "MODEL.BACKBONE.FREEZE_AT", "0", "MODEL.DEVICE", "cpu",
            "MODEL.HYBRIDKT.TEACHER.ARCH", "resnet18",
            # No checkpoint: these tests check shapes and wiring, not transferred knowledge.
            "MODEL.HYBRIDKT.TEACHER.ALLOW_RANDOM_INIT", "True"]
RES_CHANNELS = {"res2": 32, "res3": 64, "res4": 128, "res5": 256}
IMAGE = (2, 3, 64, 64)


def _cfg(opts=()):
    cfg = get_cfg()
    add_hybridkt_config(cfg)
    cfg.merge_from_list(TINY_R50 + list(opts))
    return cfg


def _tiny_regnet(**overrides):
    # depth 5, w_0 8, w_a 12, w_m 2: four stages of widths 8, 16, 32, 64 and depths 1, 1, 2, 1.
    kwargs = dict(stem_class=SimpleStem, stem_width=8, block_class=ResBottleneckBlock, depth=5,
                  w_a=12, w_0=8, w_m=2.0, group_width=8, se_ratio=0.25, norm="BN",
                  out_features=["s1", "s2", "s3", "s4"])
    kwargs.update(overrides)
    return RegNet(**kwargs)


def _backward_reaches(features, *modules):
    """Backpropagates the sum of ``features``; asserts every module got some gradient."""
    sum(f.float().mean() for f in features).backward()
    for module in modules:
        grads = [p.grad for p in module.parameters() if p.requires_grad]
        assert grads and any(g is not None and g.abs().sum() > 0 for g in grads), module


# RegNet ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("train", [False, True], ids=["eval", "train"])
def test_regnet_split_equals_its_own_forward(train):
    regnet = _tiny_regnet().train(train)
    staged = split_bottom_up(regnet)
    assert staged.model is regnet
    names = [s.name for s in staged.stage_specs]
    assert names == ["s1", "s2", "s3", "s4"]  # the FPN reads the stages by these names
    shapes = regnet.output_shape()
    assert [(s.channels, s.reduction, s.scale) for s in staged.stage_specs] == [
        (shapes[n].channels, shapes[n].stride, shapes[n].stride) for n in names]
    assert [s.reduction for s in staged.stage_specs] == [4, 8, 16, 32]
    check_stage_contract(staged)
    torch.manual_seed(0)
    x = torch.randn(IMAGE)
    with torch.no_grad():
        expected = regnet(x)
        got = staged(x)
    for name, out in zip(names, got):
        assert torch.equal(out, expected[name]), name
    assert list(staged.state_dict()) == [f"model.{k}" for k in regnet.state_dict()]


def test_regnet_student_through_the_hybrid_fpn():
    torch.manual_seed(0)
    regnet = _tiny_regnet()
    names = ["s1", "s2", "s3", "s4"]
    settings = transfer_settings(_cfg())
    engine = build_hybrid_engine(_cfg(), split_bottom_up(regnet), names, settings.mode)
    assert [s.scale for s in engine.teacher.stage_specs] == [4, 8, 16, 32]
    fpn_args = dict(in_features=names, out_channels=16, norm="", top_block=LastLevelMaxPool())
    hybrid = HybridFPN(bottom_up=HybridBottomUp(engine, names, settings), **fpn_args)
    # detectron2's FPN over the very same RegNet, with the hybrid FPN's lateral/output convs.
    plain = FPN(bottom_up=regnet, **fpn_args)
    result = plain.load_state_dict({k: v for k, v in hybrid.state_dict().items()
                                    if not k.startswith("bottom_up.")}, strict=False)
    assert result.missing_keys and all(k.startswith("bottom_up.") for k in result.missing_keys)
    assert not result.unexpected_keys
    x = torch.randn(IMAGE)
    hybrid.eval()
    plain.eval()
    with torch.no_grad():
        expected, got = plain(x), hybrid(x)
    assert got.keys() == expected.keys() == {"p2", "p3", "p4", "p5", "p6"}
    for key in got:
        assert torch.equal(got[key], expected[key]), key
    hybrid.train()
    paths = hybrid.forward_hybrid(x)
    for feats in (paths.student, paths.student_first, paths.teacher_first):
        assert {k: v.shape for k, v in feats.items()} == {k: v.shape for k, v in got.items()}
    _backward_reaches([v for p in (paths.student, paths.student_first, paths.teacher_first)
                       for v in p.values()], regnet.stem, regnet.s4, engine.to_teacher,
                      engine.to_student)
    assert all(p.grad is None for p in engine.teacher.parameters())


def test_regnet_from_detectron2s_lazy_config():
    model_zoo = pytest.importorskip("detectron2.model_zoo")
    try:
        cfg = model_zoo.get_config("new_baselines/mask_rcnn_regnety_4gf_dds_FPN_100ep_LSJ.py")
    except RuntimeError as err:  # a detectron2 install without its model-zoo configs
        pytest.skip(str(err))
    from detectron2.config import instantiate

    bottom_up = cfg.model.backbone.bottom_up
    # The config's own classes and stage names, at a tiny width; SyncBN needs a process group.
    bottom_up.update(stem_width=8, depth=5, w_a=12, w_0=8, w_m=2.0, group_width=8, norm="BN")
    staged = split_bottom_up(instantiate(bottom_up))
    assert [s.name for s in staged.stage_specs] == list(cfg.model.backbone.in_features)


# ResNet DC5 ------------------------------------------------------------------------------------

def test_dc5_student_pairs_res5_with_the_teachers_stride_32_stage():
    # Base-RCNN-DilatedC5.yaml: OUT_FEATURES ["res5"], RES5_DILATION 2.
    cfg = _cfg(["MODEL.RESNETS.OUT_FEATURES", "['res5']", "MODEL.RESNETS.RES5_DILATION", "2"])
    torch.manual_seed(0)
    bottom_up = build_resnet_backbone(cfg, ShapeSpec(channels=3))
    student = split_bottom_up(bottom_up)
    assert [s.name for s in student.stage_specs] == ["res2", "res3", "res4", "res5"]
    assert [s.reduction for s in student.stage_specs] == [4, 8, 16, 16]
    assert [s.scale for s in student.stage_specs] == [4, 8, 16, 32]
    check_stage_contract(student)
    engine = build_hybrid_engine(cfg, student, ["res5"], transfer_settings(cfg).mode)
    assert [s.scale for s in engine.teacher.stage_specs] == [4, 8, 16, 32]
    engine.train()
    x = torch.randn(IMAGE)
    paths = engine.forward_hybrid(x)
    # Path 1 (S T S T) ends on the teacher's /32 res5, interpolated to the student's /16.
    for feats in (paths.student, paths.student_first, paths.teacher_first):
        assert [tuple(f.shape) for f in feats] == [(2, RES_CHANNELS["res5"], 4, 4)]
    plain = bottom_up(x)  # FrozenBN (the default norm): no batch statistics to differ
    assert torch.equal(paths.student[0], plain["res5"])
    assert torch.equal(engine(x)[0], plain["res5"])
    _backward_reaches(paths.student + paths.student_first + paths.teacher_first,
                      bottom_up.stem, bottom_up.res5, engine.to_teacher, engine.to_student)
    assert all(p.grad is None for p in engine.teacher.parameters())


def test_dc5_student_against_a_teacher_without_a_stride_32_stage():
    dc5 = split_bottom_up(build_resnet_backbone(
        _cfg(["MODEL.RESNETS.OUT_FEATURES", "['res5']", "MODEL.RESNETS.RES5_DILATION", "2"]),
        ShapeSpec(channels=3)))
    c4 = split_bottom_up(build_resnet_backbone(
        _cfg(["MODEL.RESNETS.OUT_FEATURES", "['res4']"]), ShapeSpec(channels=3)))
    with pytest.raises(StageMismatchError) as err:
        match_teacher_stages(dc5, c4)
    message = str(err.value)
    assert "no teacher stage ends at scale 32" in message and "'res5'" in message
    assert "/16" in message and "MODEL.HYBRIDKT.TEACHER.ARCH" in message


# ResNet C4 -------------------------------------------------------------------------------------

def test_c4_student_switches_within_res2_to_res4():
    # Base-RCNN-C4.yaml keeps detectron2's default OUT_FEATURES ["res4"]; res5 lives in
    # Res5ROIHeads, so the backbone (and hybrid forward) ends at res4.
    cfg = _cfg(["MODEL.RESNETS.OUT_FEATURES", "['res4']"])
    torch.manual_seed(0)
    bottom_up = build_resnet_backbone(cfg, ShapeSpec(channels=3))
    student = split_bottom_up(bottom_up)
    assert [(s.name, s.reduction) for s in student.stage_specs] == [
        ("res2", 4), ("res3", 8), ("res4", 16)]
    teacher = match_teacher_stages(student, build_teacher(cfg))
    assert [(s.name, s.scale) for s in teacher.stage_specs] == [
        ("conv1+bn1+relu+maxpool+layer1", 4), ("layer2", 8), ("layer3", 16)]
    engine = HybridForward(student, teacher, out_indices=[2])
    layer4_calls = []
    teacher.model.layer4.register_forward_hook(lambda *_: layer4_calls.append(1))
    engine.train()
    x = torch.randn(IMAGE)
    paths = engine.forward_hybrid(x)
    for feats in (paths.student, paths.student_first, paths.teacher_first):
        assert [tuple(f.shape) for f in feats] == [(2, RES_CHANNELS["res4"], 4, 4)]
    assert torch.equal(paths.student[0], bottom_up(x)["res4"])
    assert not layer4_calls  # the teacher's depth past the student's last scale never runs
    _backward_reaches(paths.student + paths.student_first + paths.teacher_first,
                      bottom_up.stem, bottom_up.res4, engine.to_teacher, engine.to_student)


@pytest.mark.parametrize("config, names, scales", [
    ("COCO-Detection/faster_rcnn_R_50_C4_1x.yaml", ["res2", "res3", "res4"], [4, 8, 16]),
    ("COCO-Detection/faster_rcnn_R_50_DC5_1x.yaml", ["res2", "res3", "res4", "res5"],
     [4, 8, 16, 32]),
], ids=["C4", "DC5"])
def test_detectron2s_own_c4_and_dc5_configs(config, names, scales):
    model_zoo = pytest.importorskip("detectron2.model_zoo")
    try:
        path = model_zoo.get_config_file(config)
    except RuntimeError as err:
        pytest.skip(str(err))
    cfg = get_cfg()
    add_hybridkt_config(cfg)
    cfg.merge_from_file(path)
    cfg.merge_from_list(TINY_R50)
    student = split_bottom_up(build_resnet_backbone(cfg, ShapeSpec(channels=3)))
    assert [(s.name, s.scale) for s in student.stage_specs] == list(zip(names, scales))
    teacher = match_teacher_stages(student, build_teacher(cfg))
    assert [s.scale for s in teacher.stage_specs] == scales


# Errors ----------------------------------------------------------------------------------------

def test_resnet_with_a_single_stage_is_refused():
    bottom_up = build_resnet_backbone(_cfg(["MODEL.RESNETS.OUT_FEATURES", "['res2']"]),
                                      ShapeSpec(channels=3))
    with pytest.raises(ValueError, match="MODEL.RESNETS.OUT_FEATURES") as err:
        split_bottom_up(bottom_up)
    assert "'res4' (C4)" in str(err.value) and "'res5'" in str(err.value)


def test_unknown_bottom_up_names_the_supported_types():
    import torchvision

    with pytest.raises(TypeError) as err:
        split_bottom_up(torchvision.models.resnet18())
    message = str(err.value)
    assert "detectron2 ResNet" in message and "RegNet" in message and "staged()" in message
    assert "MODEL.HYBRIDKT.STUDENT_BOTTOM_UP" in message
