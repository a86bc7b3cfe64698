"""Teachers from every source an mmseg config can name, each with a checkpoint the test writes.

* named by the mmseg config it was trained with (``teacher.config``): dilations, strides and the
  pixel convention come from that config;
* a hand-written backbone dict, held against the checkpoint's own training config;
* torchvision, timm and mmpretrain networks;
* the one loading policy: stage weights must be in the file, a classifier head may be.
"""
from __future__ import annotations

import warnings

import pytest
import torch
import torchvision

pytest.importorskip("mmseg.models", reason="MMSegmentation (with mmcv ops) is not installed")

from mmengine.config import Config  # noqa: E402
from mmseg.registry import MODELS  # noqa: E402

from hybridkt_ext.core import TeacherCheckpointError  # noqa: E402
from hybridkt_ext.for_mmseg import HybridBackbone, build_teacher  # noqa: E402
from hybridkt_ext.for_openmmlab.teacher_config import resolve_config_path  # noqa: E402

R18_D8 = "mmseg::deeplabv3/deeplabv3_r18-d8_4xb2-80k_cityscapes-512x1024.py"
STUDENT = dict(type="ResNetV1c", depth=18, stem_channels=16, base_channels=16,
               out_indices=(0, 1, 2, 3))


def _segmentor_checkpoint(path, config: str) -> dict[str, torch.Tensor]:
    """What mmengine's Runner writes for ``config``: meta['cfg'] and the segmentor's weights."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cfg = Config.fromfile(str(resolve_config_path(config)))
    backbone = dict(cfg.model.backbone)
    backbone.pop("init_cfg", None)
    backbone.pop("pretrained", None)
    torch.manual_seed(3)
    weights = MODELS.build(backbone).state_dict()
    torch.save({"meta": {"cfg": cfg.pretty_text, "iter": 80000},
                "state_dict": {f"backbone.{k}": v for k, v in weights.items()}}, path)
    return weights


def test_a_teacher_named_by_its_config_is_the_network_it_was_trained_as(tmp_path):
    weights = _segmentor_checkpoint(tmp_path / "r18_d8.pth", R18_D8)
    staged, convention = build_teacher(dict(config=R18_D8, checkpoint=str(tmp_path / "r18_d8.pth")))
    model = staged.model
    assert tuple(model.dilations) == (1, 1, 2, 4) and tuple(model.strides) == (1, 2, 1, 1)
    assert [s.reduction for s in staged.stage_specs] == [4, 8, 8, 8]
    assert [s.scale for s in staged.stage_specs] == [4, 8, 16, 32]
    for key, value in weights.items():
        assert torch.equal(model.state_dict()[key], value), key
    # The config's data preprocessor: ImageNet mean/std, BGR images converted to RGB.
    assert convention.channel_order == "RGB" and convention.mean == (123.675, 116.28, 103.53)


def test_a_hand_written_teacher_that_drops_the_dilations_is_refused(tmp_path):
    _segmentor_checkpoint(tmp_path / "r18_d8.pth", R18_D8)
    # Same weight shapes as the D8 network: only the training config can tell them apart.
    plain = dict(type="ResNetV1c", depth=18, checkpoint=str(tmp_path / "r18_d8.pth"),
                 prefix="backbone.")
    with pytest.raises(TeacherCheckpointError) as info:
        build_teacher(plain)
    message = str(info.value)
    assert "ResNetV1c.dilations: (1, 1, 1, 1) vs (1, 1, 2, 4)" in message
    assert "Its training config sets contract_dilation=True, dilations=(1, 1, 2, 4), " \
        "strides=(1, 2, 1, 1)." in message
    assert "teacher=dict(config=" in message
    good = dict(plain, dilations=(1, 1, 2, 4), strides=(1, 2, 1, 1), contract_dilation=True)
    build_teacher(good)  # the same values by hand pass


def test_a_config_teacher_takes_no_network_keys_beside_the_config(tmp_path):
    with pytest.raises(ValueError, match=r"\['depth'\] cannot be set next to it"):
        build_teacher(dict(config=R18_D8, depth=50, checkpoint=str(tmp_path / "x.pth")))
    with pytest.raises(FileNotFoundError, match="no config file"):
        build_teacher(dict(config="mmseg::deeplabv3/nope.py", allow_random_init=True))


def test_hybrid_backbone_with_a_config_teacher_trains_three_paths(tmp_path):
    _segmentor_checkpoint(tmp_path / "r18_d8.pth", R18_D8)
    backbone = HybridBackbone(student=STUDENT,
                              teacher=dict(config=R18_D8, checkpoint=str(tmp_path / "r18_d8.pth")))
    paths = backbone.forward_hybrid(torch.randn(2, 3, 64, 64))
    sum(f.square().mean() for f in paths.teacher_first).backward()
    assert backbone.engine.teacher_input.identity  # the student's convention is the same here


def test_a_torchvision_teacher_missing_one_stage_is_refused(tmp_path):
    torch.manual_seed(0)
    weights = torchvision.models.resnet18().state_dict()
    gone = [k for k in weights if k.startswith("layer3.")]
    torch.save({k: v for k, v in weights.items() if k not in gone}, tmp_path / "r18.pth")
    spec = dict(type="torchvision.resnet18", checkpoint=str(tmp_path / "r18.pth"))
    with pytest.raises(TeacherCheckpointError, match=r"missing weights that stages use \[layer3"):
        build_teacher(spec)
    torch.save(weights, tmp_path / "r18.pth")
    staged, _ = build_teacher(spec)
    assert torch.equal(staged.model.layer3[0].conv1.weight, weights["layer3.0.conv1.weight"])


def test_a_classification_checkpoint_lends_its_trunk_to_an_mmseg_teacher(tmp_path):
    # An ImageNet ResNet-18 file (fc of 1000 classes) for mmseg's ResNet (same trunk names).
    torch.manual_seed(0)
    weights = torchvision.models.resnet18().state_dict()
    torch.save(weights, tmp_path / "imagenet_r18.pth")
    staged, _ = build_teacher(dict(type="ResNet", depth=18,
                                   checkpoint=str(tmp_path / "imagenet_r18.pth")))
    assert torch.equal(staged.model.layer4[1].conv2.weight, weights["layer4.1.conv2.weight"])
    weights["stray.weight"] = torch.zeros(1)  # not a head: strict refuses it
    torch.save(weights, tmp_path / "imagenet_r18.pth")
    with pytest.raises(TeacherCheckpointError, match=r"unexpected keys \[stray.weight\]"):
        build_teacher(dict(type="ResNet", depth=18, checkpoint=str(tmp_path / "imagenet_r18.pth")))


def test_an_mmpretrain_teacher_loads_from_its_file(tmp_path):
    pytest.importorskip("mmpretrain", reason="mmpretrain (optional extra) is not installed")
    arch = dict(depths=[1, 1, 1, 1], channels=[16, 32, 64, 128])
    torch.manual_seed(0)
    network = dict(type="mmpretrain.ConvNeXt", arch=arch, gap_before_final_norm=False,
                   out_indices=(0, 1, 2, 3))
    weights = MODELS.build(network).state_dict()
    torch.save({"state_dict": {f"backbone.{k}": v for k, v in weights.items()}},
               tmp_path / "convnext.pth")
    staged, _ = build_teacher(dict(network, prefix="backbone.",
                                   checkpoint=str(tmp_path / "convnext.pth")))
    assert [s.channels for s in staged.stage_specs] == [16, 32, 64, 128]
    assert torch.equal(staged.model.state_dict()["stages.3.0.depthwise_conv.weight"],
                       weights["stages.3.0.depthwise_conv.weight"])


def test_the_students_own_pretrained_init_still_applies(tmp_path):
    # A SegFormer student whose config loads ImageNet weights through init_cfg, as the stock
    # configs do (from a local file here: no downloads).
    student = dict(type="MixVisionTransformer", embed_dims=16, num_layers=[1, 1, 1, 1],
                   num_heads=[1, 1, 1, 1])
    torch.manual_seed(5)
    pretrained = MODELS.build(student).state_dict()
    torch.save({"state_dict": pretrained}, tmp_path / "mit_imagenet.pth")
    student["init_cfg"] = dict(type="Pretrained", checkpoint=str(tmp_path / "mit_imagenet.pth"))
    backbone = HybridBackbone(student=student, teacher=dict(STUDENT, allow_random_init=True))
    backbone.init_weights()
    for key, value in pretrained.items():
        assert torch.equal(backbone.student.state_dict()[key], value), key


def _hand_written_teacher_file(path, cfg_text: str) -> dict:
    """A teacher checkpoint whose stored training config is ``cfg_text``."""
    torch.manual_seed(3)
    backbone = dict(type="ResNetV1c", depth=18, dilations=(1, 1, 2, 4), strides=(1, 2, 1, 1),
                    contract_dilation=True)
    weights = MODELS.build(backbone).state_dict()
    torch.save({"meta": {"cfg": cfg_text, "iter": 80000},
                "state_dict": {f"backbone.{k}": v for k, v in weights.items()}}, path)
    return dict(backbone, checkpoint=str(path), prefix="backbone.")


def test_a_stored_training_config_is_never_executed(tmp_path):
    marker = tmp_path / "PWNED"
    hostile = (f"_x = __import__('os').system('touch {marker}')\n"
               "model = dict(backbone=dict(type='ResNetV1c', depth=18))\n")
    teacher = _hand_written_teacher_file(tmp_path / "t.pth", hostile)
    with pytest.warns(UserWarning, match=r"cannot read the training config stored in this "
                      r"checkpoint \(meta\['cfg'\]: line 1: `__import__\('os'\).system"):
        staged, _ = build_teacher(teacher)
    assert not marker.exists()
    assert staged.num_stages == 4  # the weights still load; only the check is skipped


def test_a_hand_written_teacher_takes_the_pixel_convention_of_its_training_config(tmp_path):
    stored = ("model = dict(type='EncoderDecoder', data_preprocessor=dict(type="
              "'SegDataPreProcessor', mean=[0, 0, 0], std=[1, 1, 1], bgr_to_rgb=False),\n"
              "    backbone=dict(type='ResNetV1c', depth=18, dilations=(1, 1, 2, 4), "
              "strides=(1, 2, 1, 1), contract_dilation=True))\n")
    teacher = _hand_written_teacher_file(tmp_path / "t.pth", stored)
    _, convention = build_teacher(teacher)
    assert convention.channel_order == "BGR" and convention.mean == (0, 0, 0) \
        and convention.std == (1, 1, 1)
    # What the student's images become for this teacher: the ImageNet RGB normalisation undone.
    backbone = HybridBackbone(student=STUDENT, teacher=teacher)
    from hybridkt_ext.core import InputConvention
    backbone.adopt_student_input(InputConvention())
    transform = backbone.engine.teacher_input
    assert transform.swap and torch.allclose(
        transform.scale.flatten(), torch.tensor([57.375, 57.12, 58.395]))
    # teacher.input still settles it explicitly.
    _, explicit = build_teacher(dict(teacher, input=dict(channel_order="RGB")))
    assert explicit.channel_order == "RGB" and explicit.mean == (123.675, 116.28, 103.53)


def test_a_stored_data_preprocessor_that_is_no_convention_names_the_input_key(tmp_path):
    stored = ("model = dict(data_preprocessor=dict(mean=[0, 0], std=[1, 1, 1]), "
              "backbone=dict(type='ResNetV1c', depth=18, dilations=(1, 1, 2, 4), "
              "strides=(1, 2, 1, 1), contract_dilation=True))\n")
    teacher = _hand_written_teacher_file(tmp_path / "t.pth", stored)
    with pytest.raises(TeacherCheckpointError, match=r"unusable data_preprocessor .*mean needs "
                       r"3 numbers.*teacher\.input=dict\(mean="):
        build_teacher(teacher)


def _peak_rss_mib() -> int:
    status = open("/proc/self/status").read()
    return int(status.split("VmHWM:")[1].split()[0]) // 1024


def test_a_stored_config_with_a_giant_network_is_compared_without_allocating_it(tmp_path):
    # Layer 4 of this ResNet would hold 16384 x 16384 x 3 x 3 weights per conv, ~10 GB each.
    stored = ("model = dict(backbone=dict(type='ResNetV1c', depth=18, base_channels=2048, "
              "dilations=(1, 1, 2, 4), strides=(1, 2, 1, 1), contract_dilation=True))\n")
    teacher = _hand_written_teacher_file(tmp_path / "t.pth", stored)
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets the peak RSS (VmHWM) to the current RSS
    before = _peak_rss_mib()
    with pytest.raises(TeacherCheckpointError, match=r"trained as another network .*"
                       r"Its training config sets base_channels=2048"):
        build_teacher(teacher)
    assert _peak_rss_mib() - before < 300
