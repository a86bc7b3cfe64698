"""HybridBackbone in the stock EncoderDecoder: plain-student equivalence, BN stats, bad inputs."""
from __future__ import annotations

import copy
import warnings

import pytest
import torch

pytest.importorskip("mmseg.models", reason="MMSegmentation is not installed")

from hybridkt_ext.core import (  # noqa: E402
    StageMismatchError, TeacherCheckpointError, check_stage_contract)
from hybridkt_ext.for_mmseg import HybridBackbone, split_mmseg_backbone  # noqa: E402
from hybridkt_ext.for_openmmlab import install_transfer_step  # noqa: E402
from mmengine.config import ConfigDict  # noqa: E402
from mmseg.models.segmentors import EncoderDecoder  # noqa: E402
from mmseg.registry import MODELS  # noqa: E402

warnings.filterwarnings("ignore", message="the teacher keeps its random")


def resnet(width: int = 8, dilated: bool = True, **kw) -> dict:
    d = dict(type="ResNetV1c", depth=18, stem_channels=2 * width, base_channels=width,
             norm_cfg=dict(type="BN"), contract_dilation=True)
    if dilated:
        d.update(dilations=(1, 1, 2, 4), strides=(1, 2, 1, 1))
    d.update(kw)
    return d


def teacher(**kw) -> dict:
    d = resnet(16)
    d.update(allow_random_init=True)
    d.update(kw)
    return d


def build(**kw) -> HybridBackbone:
    return MODELS.build(dict(type="HybridBackbone", student=resnet(), **kw))


X = torch.randn(2, 3, 64, 96)


def test_splitters_keep_their_contract():
    for cfg in (resnet(), resnet(dilated=False), dict(type="ResNet", depth=18, base_channels=8,
                                                      stem_channels=8),
                dict(type="VGG16", output_stride=8), dict(type="VGG16", output_stride=32)):
        staged = split_mmseg_backbone(MODELS.build(cfg))
        check_stage_contract(staged, (64, 96))
    reductions = [s.reduction for s in split_mmseg_backbone(MODELS.build(resnet())).stage_specs]
    assert reductions == [4, 8, 8, 8]


def test_forward_is_the_plain_student_and_state_dict_keeps_its_layout():
    hybrid, plain = build(teacher=teacher()), MODELS.build(resnet())
    hybrid.eval()
    plain.eval()  # mmseg's ResNet.train() returns None: no chaining
    plain.load_state_dict({k[len("engine.student.model."):]: v for k, v in
                           hybrid.state_dict().items() if k.startswith("engine.student.model.")})
    with torch.no_grad():
        for a, b in zip(hybrid(X), plain(X)):
            assert torch.equal(a, b)


def wired_segmentor(cfg) -> EncoderDecoder:
    """The config's model: mmseg's own EncoderDecoder, its loss wired as HybridKTHook wires it
    before the run."""
    model = MODELS.build(cfg.model)
    assert type(model) is EncoderDecoder  # the stock class, no subclass of this package
    assert install_transfer_step(model)
    return model


def _batch(model):
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample

    torch.manual_seed(0)
    samples = []
    for _ in range(2):
        s = SegDataSample()
        s.gt_sem_seg = PixelData(data=torch.randint(0, 19, (1, 64, 128)))
        s.set_metainfo(dict(img_shape=(64, 128), pad_shape=(64, 128), ori_shape=(64, 128)))
        samples.append(s)
    data = {"inputs": [torch.randint(0, 255, (3, 64, 128), dtype=torch.uint8) for _ in range(2)],
            "data_samples": samples}
    return model.data_preprocessor(data, True)


def _heads_loss(model, feats, samples):
    """The segmentor's heads on one path's features, summed as mmengine sums them."""
    losses = model._decode_head_forward_train(list(feats), samples)
    losses.update(model._auxiliary_head_forward_train(list(feats), samples))
    return model.parse_losses(losses)[0]


def test_hybrid_paths_leave_student_and_head_bn_stats_to_the_student_path():
    from mmengine.config import Config

    from .conftest import HYBRID_CONFIG

    cfg = Config.fromfile(str(HYBRID_CONFIG))
    model = wired_segmentor(cfg).train()
    reference = copy.deepcopy(model)
    batch = _batch(model)
    losses = model.loss(**batch)
    assert [k for k in losses if "loss" in k] == ["loss_hkt"]
    assert {"hkt_alpha", "hkt_L1", "hkt_L2", "hkt_L3", "decode.acc_seg"} <= set(losses)
    # A student-path-only step: the plain student backbone and the heads, nothing else.
    _heads_loss(reference, reference.backbone.student(batch["inputs"]), batch["data_samples"])
    ref_state, state = reference.state_dict(), model.state_dict()
    stats = [k for k in state if "running_mean" in k and "teacher" not in k]
    assert any("decode_head" in k for k in stats) and any("student" in k for k in stats)
    for key in stats:
        assert torch.allclose(state[key], ref_state[key]), key


def test_the_wired_loss_equals_the_three_paths_computed_by_hand():
    """The wired EncoderDecoder.loss gives each path's features through the heads, L1..L3,
    alpha = 2 L3 / (L1 + L2), the paper's hybrid-forward loss."""
    from mmengine.config import Config

    from hybridkt_ext.core import LossBalancer

    from .conftest import HYBRID_CONFIG

    cfg = Config.fromfile(str(HYBRID_CONFIG))
    torch.manual_seed(0)
    model = wired_segmentor(cfg).train()
    reference = copy.deepcopy(model)
    batch = _batch(model)
    torch.manual_seed(1)  # the heads' dropout draws the same masks in both computations
    losses = model.loss(**batch)
    torch.manual_seed(1)
    paths = reference.backbone.forward_hybrid(batch["inputs"])
    l1, l2, l3 = (_heads_loss(reference, getattr(paths, p), batch["data_samples"])
                  for p in ("student_first", "teacher_first", "student"))
    expected = LossBalancer("dynamic")(l1, l2, l3)
    for key, value in expected.log_values().items():
        assert torch.allclose(losses[key], value, rtol=1e-6), key
    assert torch.allclose(losses["loss_hkt"], expected.total, rtol=1e-6)
    # and the same gradients: the wiring adds nothing of its own
    losses["loss_hkt"].backward()
    expected.total.backward()
    for (name, p), q in zip(model.named_parameters(), reference.parameters()):
        if p.grad is not None or q.grad is not None:
            assert torch.allclose(p.grad, q.grad, rtol=1e-5, atol=1e-7), name


def test_training_outside_the_transfer_step_is_refused():
    from hybridkt_ext.core import HybridTrainingError

    backbone = build(teacher=teacher()).train()
    with pytest.raises(HybridTrainingError, match="HybridKTHook"):
        backbone(X)
    backbone.eval()
    assert len(backbone(X)) == 4  # evaluation is the plain student


def test_channel_and_stride_mismatches_are_adapted():
    # teacher twice as wide (1x1 adapters) and not dilated (/32 vs /8: interpolation)
    hybrid = build(teacher=teacher(dilations=(1, 1, 1, 1), strides=(1, 2, 2, 2)))
    paths = hybrid.forward_hybrid(X)
    for feats in (paths.student_first, paths.teacher_first):
        assert [f.shape for f in feats] == [f.shape for f in paths.student]


def test_teacher_with_fewer_stages_fails_clearly_or_pairs_with_stage_groups():
    few = teacher(num_stages=3, dilations=(1, 1, 2), strides=(1, 2, 1), out_indices=(0, 1, 2))
    with pytest.raises(StageMismatchError, match="stage_groups"):
        build(teacher=few)
    groups = dict(student=[[0], [1], [2, 3]])
    hybrid = MODELS.build(dict(type="HybridBackbone", student=resnet(out_indices=(0, 1, 3)),
                               teacher=few, stage_groups=groups))
    assert len(hybrid.forward_hybrid(X).teacher_first) == 3  # one per student out index
    with pytest.raises(StageMismatchError, match="inside merged stages"):
        build(teacher=few, stage_groups=groups)  # out index 2 ends no group


def test_bad_teacher_specs_fail_with_clear_messages(tmp_path):
    with pytest.raises(ValueError, match="teacher.checkpoint is not set"):
        build(teacher=resnet(16))
    with pytest.raises(TeacherCheckpointError, match="no such file"):
        build(teacher=teacher(checkpoint=str(tmp_path / "missing.pth")))
    wrong = MODELS.build(resnet(4))  # narrower than the teacher spec: shape mismatches
    torch.save({"state_dict": {f"backbone.{k}": v for k, v in wrong.state_dict().items()}},
               tmp_path / "wrong.pth")
    with pytest.raises(TeacherCheckpointError, match="shape mismatches"):
        build(teacher=teacher(checkpoint=str(tmp_path / "wrong.pth"), prefix="backbone."))
    with pytest.raises(TeacherCheckpointError, match="prefix"):
        build(teacher=teacher(checkpoint=str(tmp_path / "wrong.pth"), prefix="model."))
    with pytest.raises(ValueError, match="transfer='x'"):
        build(teacher=teacher(), transfer="x")
    with pytest.raises(ValueError, match="needs a teacher"):
        build(transfer="hybrid")


def test_teacher_loads_from_an_mmseg_checkpoint(tmp_path):
    source = MODELS.build(resnet(16))
    torch.save({"meta": {}, "state_dict": {f"backbone.{k}": v for k, v in
                                           source.state_dict().items()}}, tmp_path / "t.pth")
    hybrid = build(teacher=teacher(checkpoint=str(tmp_path / "t.pth"), prefix="backbone.",
                                   allow_random_init=False))
    loaded = hybrid.teacher.model.state_dict()
    assert all(torch.equal(v, loaded[k]) for k, v in source.state_dict().items())
    assert not any(p.requires_grad for p in hybrid.teacher.parameters())


def test_recompute_teacher_switch_gives_identical_paths_and_gradients():
    torch.manual_seed(0)
    plain = build(teacher=teacher())
    recomputing = build(teacher=teacher(), recompute_teacher=True)
    recomputing.load_state_dict(plain.state_dict())
    assert recomputing.engine.recompute_teacher and not plain.engine.recompute_teacher
    grads = []
    for model in (plain, recomputing):
        model.train()
        paths = model.forward_hybrid(X)
        loss = sum(f.square().mean() for path in (paths.student_first, paths.teacher_first,
                                                  paths.student) for f in path)
        loss.backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters()
                      if p.grad is not None})
    assert grads[0].keys() == grads[1].keys() and grads[0]
    for name in grads[0]:
        torch.testing.assert_close(grads[1][name], grads[0][name], msg=name)
    with pytest.raises(ValueError, match="recompute_teacher must be True or False"):
        build(teacher=teacher(), recompute_teacher="yes")


def test_a_segmentors_pretrained_becomes_the_students_and_is_never_set_twice():
    # mmseg's stock ResNet/MobileNet configs set model.pretrained; EncoderDecoder hands it to
    # its backbone, which is the HybridBackbone after the README's conversion.
    decode = dict(type="FCNHead", in_channels=64, channels=8, num_convs=1, num_classes=3,
                  in_index=3)
    segmentor = MODELS.build(ConfigDict(  # a config's dicts: EncoderDecoder sets attributes
        type="EncoderDecoder", pretrained="weights/r18_imagenet.pth", decode_head=decode,
        backbone=dict(type="HybridBackbone", student=resnet(), teacher=teacher())))
    assert segmentor.backbone.student.init_cfg == dict(type="Pretrained",
                                                       checkpoint="weights/r18_imagenet.pth")
    with pytest.raises(ValueError, match="set the student's weights in one place"):
        MODELS.build(dict(type="HybridBackbone", teacher=teacher(), pretrained="a.pth",
                          student=resnet(init_cfg=dict(type="Pretrained", checkpoint="b.pth"))))
