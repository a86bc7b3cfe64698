"""ViTDet's ViT as a detectron2 student (issue 25, item 5): the stock ViTDet LazyConfig,
converted by one line on ``model.backbone.net``, trains 2 iterations hybrid.

detectron2's ``projects/`` folder is not installed with the package: the config is read from a
detectron2 checkout, ``$HYBRIDKT_DETECTRON2_SOURCE``, by default the repository of an editable
detectron2 install. Shrunk for CPU (4 blocks of 32 channels, 64-pixel images); the model is the
stock one otherwise (SimpleFeaturePyramid, LN heads).
"""
import json
import os
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.for_detectron2 import d2_helpers  # noqa: F401  (skips without detectron2)

import detectron2  # noqa: E402


def _vitdet_config() -> Path:
    source = os.environ.get("HYBRIDKT_DETECTRON2_SOURCE") or \
        Path(detectron2.__file__).resolve().parent.parent
    path = Path(source) / "projects" / "ViTDet" / "configs" / "COCO" / "mask_rcnn_vitdet_b_100ep.py"
    if not path.is_file():
        pytest.skip(f"no ViTDet config at {path}: detectron2's projects/ ship only with its "
                    "source; set HYBRIDKT_DETECTRON2_SOURCE to a detectron2 checkout")
    return path


@pytest.mark.parametrize("teacher", [
    dict(framework="torchvision", arch="resnet18", allow_random_init=True),
    dict(framework="timm", arch="vit_tiny_patch16_224", allow_random_init=True)],
    ids=["cnn_teacher", "vit_teacher"])
def test_the_stock_vitdet_config_trains_hybrid_two_iterations(teacher, tmp_path, monkeypatch,
                                                              tmp_path_factory):
    import detectron2.data.transforms as T
    from detectron2.config import LazyCall as L
    from detectron2.config import LazyConfig

    from hybridkt_ext.for_detectron2 import lazy_training
    from hybridkt_ext.for_detectron2.lazy import hybrid_bottom_up

    # The generated dataset once per session, as the other detectron2 tests share it.
    monkeypatch.setenv("HYBRIDKT_DATA", str(tmp_path_factory.getbasetemp() / "hkt_data"))
    cfg = LazyConfig.load(str(_vitdet_config()))
    # The conversion: one line.
    cfg.model.backbone.net = L(hybrid_bottom_up)(student=cfg.model.backbone.net, teacher=teacher,
                                                 out_feature="${.student.out_feature}")
    # CPU scale: a 4-block ViT of 32 channels on 64-pixel images (no download, no AMP).
    net = cfg.model.backbone.net.student
    net.update(img_size=64, embed_dim=32, depth=4, num_heads=2, window_size=2,
               window_block_indexes=[0, 2], drop_path_rate=0.0)
    cfg.model.backbone.square_pad = 64
    cfg.model.roi_heads.num_classes = 1
    cfg.dataloader.train.dataset.names = "citypersons_synthetic_mini_dense_train"
    cfg.dataloader.train.mapper.augmentations = [
        L(T.ResizeShortestEdge)(short_edge_length=(64,), max_size=64, sample_style="choice")]
    cfg.dataloader.train.total_batch_size = 2
    cfg.dataloader.train.num_workers = 0
    cfg.dataloader.pop("evaluator")
    cfg.train.update(device="cpu", init_checkpoint="", max_iter=2, eval_period=0,
                     output_dir=str(tmp_path / "out"), log_period=1)
    cfg.train.amp.enabled = False
    cfg.train.ddp.fp16_compression = False
    cfg.optimizer.params.lr_factor_func = None  # the stock per-layer decay names 12 blocks
    args = SimpleNamespace(config_file="", opts=[], eval_only=False, resume=False,
                           trust_checkpoint=False, num_gpus=1)
    lazy_training.run(cfg, args)
    rows = [json.loads(r) for r in (tmp_path / "out" / "metrics.json").read_text().splitlines()]
    assert [r["iteration"] for r in rows if "hkt_alpha" in r] == [0, 1]


def test_an_unsplittable_lazy_student_is_named_by_its_lazyconfig_field():
    from detectron2.modeling.backbone import Backbone

    from hybridkt_ext.for_detectron2.lazy import hybrid_bottom_up

    class Custom(Backbone):  # a user's own bottom-up, declaring no stages
        def forward(self, x):
            return {"out": x}

    with pytest.raises(ValueError, match=r"hybrid_bottom_up\(student=...\) got a Custom.*"
                                         r"model.backbone.net of ViTDet") as error:
        hybrid_bottom_up(Custom(), teacher=dict(arch="resnet18", allow_random_init=True),
                         out_features=["out"])
    assert "MODEL.HYBRIDKT" not in str(error.value)
