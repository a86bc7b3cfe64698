"""Every backbone type mmseg ships configs for: a student and a teacher, or a one-line refusal.

The configs walked are the installed package's own (``mmseg/.mim/configs``), not ours: they are
what users convert. For each chain-structured type the first shipped config's backbone is
built at a small size (``SMALL`` shrinks widths and depths only, so the structure is the
shipped one), wrapped in ``HybridBackbone`` as the student of a small teacher and as the
teacher of a small student, and run through the three paths and backward at two image sizes,
one not divisible by the total stride. Every path must give exactly the plain backbone's output
shapes, so the decode heads of the original config run unchanged. The other types must be
refused in one line naming the reason.
"""
from __future__ import annotations

import copy
import os
import warnings
from pathlib import Path

import pytest
import torch

pytest.importorskip("mmseg.models", reason="MMSegmentation (with mmcv ops) is not installed")

import mmseg  # noqa: E402
from mmengine.config import Config  # noqa: E402
from mmengine.registry import init_default_scope  # noqa: E402

from hybridkt_ext.core import UnsupportedBackboneError  # noqa: E402
from hybridkt_ext.for_mmseg import NOT_A_CHAIN, HybridBackbone  # noqa: E402

CONFIG_ROOT = Path(mmseg.__file__).parent / ".mim" / "configs"
SIZES = ((64, 64), (70, 90))  # 70 and 90 are not multiples of 32
_T4 = dict(num_heads=[1, 2, 4, 8])
# Smaller widths and depths of the shipped structure, so the whole file runs in about a minute.
SMALL: dict[str, dict] = {
    "ResNet": dict(depth=18, stem_channels=16, base_channels=16),
    "ResNetV1c": dict(depth=18, stem_channels=16, base_channels=16),
    "ResNeSt": dict(depth=50, stem_channels=16, base_channels=8),
    "MobileNetV2": dict(widen_factor=0.5),
    "MobileNetV3": dict(),
    "MixVisionTransformer": dict(embed_dims=16, num_layers=[1, 1, 1, 1], num_heads=[1, 1, 1, 1]),
    "SwinTransformer": dict(embed_dims=16, depths=[2, 2, 2, 2], **_T4),
    "MSCAN": dict(embed_dims=[16, 32, 64, 128], depths=[1, 1, 1, 1]),
    "PCPVT": dict(embed_dims=[16, 32, 64, 128], depths=[1, 1, 1, 1], **_T4),
    "SVT": dict(embed_dims=[16, 32, 64, 128], depths=[1, 1, 1, 1], **_T4),
    "VisionTransformer": dict(embed_dims=32, num_layers=4, num_heads=2, out_indices=(0, 1, 2, 3),
                              img_size=(64, 64)),
    "BEiT": dict(embed_dims=32, num_layers=4, num_heads=2, out_indices=(0, 1, 2, 3),
                 img_size=(64, 64)),
    "MAE": dict(embed_dims=32, num_layers=4, num_heads=2, out_indices=(0, 1, 2, 3),
                img_size=(64, 64)),
    "mmpretrain.ConvNeXt": dict(arch=dict(depths=[1, 1, 1, 1], channels=[16, 32, 64, 128])),
    "mmpretrain.PoolFormer": dict(arch=dict(layers=[1, 1, 1, 1], embed_dims=[16, 32, 64, 128],
                                            mlp_ratios=[4, 4, 4, 4],
                                            layer_scale_init_value=1e-6)),
}
SMALL_RESNET = dict(type="ResNetV1c", depth=18, stem_channels=16, base_channels=16,
                    out_indices=(0, 1, 2, 3))
# MobileNetV3's LR-ASPP head reads its stride-2 feature: its teacher needs a stage there.
SMALL_MOBILENET_V2 = dict(type="MobileNetV2", widen_factor=0.5, out_indices=(0, 1, 2, 4, 6))


@pytest.fixture(scope="module")
def shipped_backbones() -> dict[str, tuple[str, dict]]:
    """Backbone type -> (first config naming it, its backbone dict), over every shipped config."""
    init_default_scope("mmseg")
    found: dict[str, tuple[str, dict]] = {}
    for path in sorted(CONFIG_ROOT.rglob("*.py")):
        if "_base_" in path.parts:
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                cfg = Config.fromfile(str(path))
        except Exception:  # a few configs need optional packages just to be parsed
            continue
        backbone = (cfg.get("model") or {}).get("backbone")
        if backbone and backbone.get("type") not in found:
            found[backbone["type"]] = (str(path.relative_to(CONFIG_ROOT)), backbone.to_dict())
    return found


def _small(kind: str, shipped: dict[str, tuple[str, dict]]) -> dict:
    cfg = copy.deepcopy(shipped[kind][1])
    for key in ("init_cfg", "pretrained", "frozen_stages"):
        cfg.pop(key, None)
    cfg.update(copy.deepcopy(SMALL[kind]))
    return cfg


def _teacher(cfg: dict) -> dict:
    return dict(cfg, allow_random_init=True)


def _shapes(features) -> list:
    """Shapes of a backbone's features; a ViT feature with output_cls_token is [map, cls]."""
    return [tuple(f.shape) if isinstance(f, torch.Tensor) else _shapes(f) for f in features]


def _energy(features) -> torch.Tensor:
    return sum(f.float().square().mean() if isinstance(f, torch.Tensor) else _energy(f)
               for f in features)


def _check_three_paths(backbone: HybridBackbone, size: tuple[int, int]) -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 3, *size)
    with torch.no_grad():
        plain = backbone(x)
    plain = [plain] if isinstance(plain, torch.Tensor) else list(plain)
    paths = backbone.forward_hybrid(x)
    total = 0
    for name in ("student", "student_first", "teacher_first"):
        feats = getattr(paths, name)
        assert _shapes(feats) == _shapes(plain), name
        total = total + _energy(feats)
    total.backward()
    no_grad = [n for n, p in backbone.student.named_parameters()
               if p.requires_grad and p.grad is None]
    assert not no_grad, f"student parameters without a gradient: {no_grad[:5]}"
    adapters = [p for n, p in backbone.engine.named_parameters() if n.startswith("to_")]
    assert adapters and all(p.grad is not None for p in adapters)
    assert all(p.grad is None for p in backbone.teacher.parameters())
    backbone.zero_grad(set_to_none=True)


def _plain_accepts(cfg: dict, size: tuple[int, int]) -> bool:
    """Whether the plain backbone itself runs at ``size`` (BEiT's position bias is fixed)."""
    from mmseg.registry import MODELS

    model = MODELS.build(copy.deepcopy(cfg))
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, 3, *size))
    except Exception:
        return False
    return True


def test_every_shipped_type_is_tested_or_refused(shipped_backbones):
    untested = sorted(set(shipped_backbones) - set(SMALL) - set(NOT_A_CHAIN))
    assert not untested, f"mmseg ships configs for {untested}: add them to SMALL or NOT_A_CHAIN"
    assert len(shipped_backbones) >= 25


@pytest.mark.parametrize("role", ["student", "teacher"])
@pytest.mark.parametrize("kind", sorted(SMALL))
def test_three_paths_with_the_type_as(role, kind, shipped_backbones):
    network = _small(kind, shipped_backbones)
    if role == "student":
        teacher = SMALL_MOBILENET_V2 if kind == "MobileNetV3" else SMALL_RESNET
        backbone = HybridBackbone(student=network, teacher=_teacher(teacher))
    else:
        backbone = HybridBackbone(student=dict(SMALL_RESNET), teacher=_teacher(network))
    backbone.train()
    for size in [s for s in SIZES if s == SIZES[0] or _plain_accepts(network, s)]:
        _check_three_paths(backbone, size)


@pytest.mark.parametrize("kind", sorted(NOT_A_CHAIN))
def test_other_types_are_refused_in_one_line(kind, shipped_backbones):
    cfg = copy.deepcopy(shipped_backbones[kind][1]) if kind in shipped_backbones \
        else dict(type=kind)
    for build in (lambda: HybridBackbone(student=cfg, teacher=_teacher(SMALL_RESNET)),
                  lambda: HybridBackbone(student=dict(SMALL_RESNET), teacher=_teacher(cfg))):
        with pytest.raises(UnsupportedBackboneError) as info:
            build()
        message = str(info.value)
        assert "\n" not in message and kind in message and "not one chain" in message
        assert "SwinTransformer" in message  # it names the types that work


def test_walk_reads_the_installed_configs(shipped_backbones):
    assert os.fspath(CONFIG_ROOT).endswith(os.path.join("mmseg", ".mim", "configs"))
    assert shipped_backbones["MixVisionTransformer"][0].startswith("segformer")


def test_every_shipped_segmentor_type_trains_or_is_refused_in_one_line():
    """EncoderDecoder and CascadeEncoderDecoder train (tests/for_mmseg/test_zoo_conversions.py
    runs OCRNet and PointRend); the others have no backbone to replace and say so."""
    from types import SimpleNamespace

    from hybridkt_ext.for_openmmlab import HybridKTHook
    from hybridkt_ext.for_openmmlab.hybrid_kt_hook import MODELS_WITHOUT_A_BACKBONE

    types_shipped = set()
    for path in sorted(CONFIG_ROOT.rglob("*.py")):
        if "_base_" in path.parts:
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                types_shipped.add(Config.fromfile(str(path)).model.type)
        except Exception:
            continue
    trained = {"EncoderDecoder", "CascadeEncoderDecoder"}
    assert types_shipped - trained == set(MODELS_WITHOUT_A_BACKBONE)
    for kind in MODELS_WITHOUT_A_BACKBONE:
        stand_in = type(kind, (torch.nn.Module,), {})()  # the check reads the type's name
        with pytest.raises(UnsupportedBackboneError) as info:
            HybridKTHook().before_train(SimpleNamespace(model=stand_in))
        assert kind in str(info.value) and "\n" not in str(info.value)
