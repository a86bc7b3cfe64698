"""Every mmdet backbone type the adapter splits gives the plain backbone's features outside a
step and the same shapes on all three paths; the others are refused with one line."""
from __future__ import annotations

import pytest
import torch


# Small variants of each type (CPU seconds), as their mmdet constructors take them.
STUDENTS = {
    "MobileNetV1": dict(type="MobileNetV1", width_mult=0.5),
    "ResNet": dict(type="ResNet", depth=18, out_indices=(0, 1, 2, 3)),
    "ResNet-caffe-frozen": dict(type="ResNet", depth=18, style="caffe", frozen_stages=1,
                                norm_eval=True, out_indices=(1, 2, 3)),
    "ResNetV1d": dict(type="ResNetV1d", depth=18),
    "ResNeXt": dict(type="ResNeXt", depth=50, groups=4, base_width=4, out_indices=(0, 1, 2, 3)),
    "Res2Net": dict(type="Res2Net", depth=50, scales=4, base_width=8),
    "RegNet": dict(type="RegNet", arch="regnetx_400mf", out_indices=(0, 1, 2, 3)),
    "MobileNetV2": dict(type="MobileNetV2", widen_factor=0.5),  # out_indices (1, 2, 4, 7)
    "SwinTransformer": dict(type="SwinTransformer", embed_dims=32, depths=(1, 1, 2, 1),
                            num_heads=(1, 2, 4, 8), window_size=4, out_indices=(0, 1, 2, 3)),
    "PVTv2": dict(type="PyramidVisionTransformerV2", embed_dims=16, num_layers=(1, 1, 1, 1)),
    "CSPDarknet": dict(type="CSPDarknet", deepen_factor=0.33, widen_factor=0.125),
    "CSPNeXt": dict(type="CSPNeXt", deepen_factor=0.167, widen_factor=0.125),
    "EfficientNet": dict(type="EfficientNet", arch="b0", out_indices=(2, 3, 4, 5)),
    # Another package's types: mmpretrain's from this table, mmseg's through mmseg's table.
    "mmpretrain.ConvNeXt": dict(type="mmpretrain.ConvNeXt", gap_before_final_norm=False,
                                arch=dict(depths=[1, 1, 1, 1], channels=[16, 32, 64, 128]),
                                out_indices=(0, 1, 2, 3)),
    "mmseg.MixVisionTransformer": dict(type="mmseg.MixVisionTransformer", embed_dims=16,
                                       num_layers=[1, 1, 1, 1], num_heads=[1, 1, 1, 1]),
}


@pytest.mark.parametrize("name", list(STUDENTS))
def test_stage_split_matches_the_plain_backbone(name):
    import hybridkt_ext.for_mmdet  # noqa: F401
    from mmdet.registry import MODELS

    cfg = STUDENTS[name]
    torch.manual_seed(0)
    hybrid = MODELS.build(dict(type="HybridBackbone", student=cfg,
                               teacher=dict(type="ResNet", depth=18, allow_random_init=True)))
    plain = MODELS.build(cfg)
    plain.load_state_dict(hybrid.student.state_dict())
    hybrid.eval(), plain.eval()
    x = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        expected = plain(x)
        got = hybrid(x)
        paths = hybrid.forward_hybrid(x)
    assert len(got) == len(expected)
    for a, b in zip(got, expected):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    for path in (paths.student_first, paths.teacher_first, paths.student):
        assert [t.shape for t in path] == [t.shape for t in expected]
    for a, b in zip(paths.student, expected):  # the student path is the plain student
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kind", ["HRNet", "TridentResNet", "DetectoRS_ResNet", "HourglassNet"])
def test_backbones_that_are_not_a_chain_are_refused_in_one_line(kind):
    import hybridkt_ext.for_mmdet  # noqa: F401
    from mmdet.registry import MODELS

    from hybridkt_ext.core import UnsupportedBackboneError

    with pytest.raises(UnsupportedBackboneError, match=rf"^{kind} cannot take part") as err:
        MODELS.build(dict(type="HybridBackbone", student=dict(type=kind),
                          teacher=dict(type="ResNet", depth=18, allow_random_init=True)))
    assert "\n" not in str(err.value) and "ResNet" in str(err.value)


def test_an_mmseg_type_mmseg_refuses_is_refused_with_mmsegs_reason():
    import hybridkt_ext.for_mmdet  # noqa: F401
    from mmdet.registry import MODELS

    from hybridkt_ext.core import UnsupportedBackboneError

    with pytest.raises(UnsupportedBackboneError, match=r"^BiSeNetV1 cannot take part in hybrid "
                                                       r"forward: it runs a spatial path"):
        MODELS.build(dict(type="HybridBackbone", student=dict(type="mmseg.BiSeNetV1"),
                          teacher=dict(type="ResNet", depth=18, allow_random_init=True)))


def test_a_registered_splitter_makes_a_users_backbone_a_student(monkeypatch):
    import hybridkt_ext.for_mmdet
    from mmdet.registry import MODELS
    from mmengine.model import BaseModule

    from hybridkt_ext.core import SubmoduleChain, UnsupportedBackboneError
    from hybridkt_ext.core.stage_cutting import cut_into_stages
    from hybridkt_ext.for_mmdet import backbone_stages

    monkeypatch.setattr(backbone_stages.SPLITTERS, "_registered", [])  # no trace in other tests

    class TwoConvs(BaseModule):  # a user's chain-structured backbone
        def __init__(self):
            super().__init__()
            self.a = torch.nn.Conv2d(3, 8, 3, stride=4, padding=1)
            self.b = torch.nn.Conv2d(8, 16, 3, stride=2, padding=1)

        def forward(self, x):
            x = self.a(x)
            return (x, self.b(x))

    MODELS.register_module(module=TwoConvs, force=True)
    spec = dict(type="HybridBackbone", student=dict(type="TwoConvs"),
                teacher=dict(type="ResNet", depth=18, allow_random_init=True,
                             out_indices=(0, 1)))
    with pytest.raises(UnsupportedBackboneError,
                       match=r"no stage splitter for .*TwoConvs.*hybridkt_ext\.for_mmdet\."
                             r"register_stage_splitter\(BackboneClass\)"):
        MODELS.build(spec)

    @hybridkt_ext.for_mmdet.register_stage_splitter(TwoConvs)
    def split_two_convs(model):
        return cut_into_stages(model, [SubmoduleChain(model, ["a"]), SubmoduleChain(model, ["b"])],
                               ["a", "b"], (0, 1))

    hybrid = MODELS.build(spec).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        paths = hybrid.forward_hybrid(x)
    assert [t.shape[1:] for t in paths.teacher_first] == [(8, 16, 16), (16, 8, 8)]
    assert "TwoConvs" in hybridkt_ext.for_mmdet.supported_types()


def test_an_unknown_student_type_names_the_close_ones():
    import hybridkt_ext.for_mmdet  # noqa: F401
    from mmdet.registry import MODELS

    with pytest.raises(ValueError, match=r"not a registered mmdet backbone.*'ResNet'"):
        MODELS.build(dict(type="HybridBackbone", student=dict(type="ResNett", depth=18),
                          transfer="none"))


def test_an_unscoped_teacher_type_is_an_mmdet_backbone_and_loads_its_checkpoint(
        teacher_checkpoint):
    import hybridkt_ext.for_mmdet  # noqa: F401
    from mmdet.models.backbones import ResNet
    from mmdet.registry import MODELS

    hybrid = MODELS.build(dict(
        type="HybridBackbone", student=dict(type="MobileNetV2"),
        teacher=dict(type="ResNet", depth=18, checkpoint=str(teacher_checkpoint),
                     prefix="backbone.")))
    assert isinstance(hybrid.teacher.model, ResNet)
    saved = torch.load(teacher_checkpoint, weights_only=True)["state_dict"]
    for key, value in hybrid.teacher.model.state_dict().items():
        torch.testing.assert_close(value, saved[f"backbone.{key}"], rtol=0, atol=0)
