"""Every config under configs/mmseg builds; synthetic data and the GTA5 id mapping."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

pytest.importorskip("mmseg.models", reason="MMSegmentation is not installed")

from hybridkt_ext.datasets.synthetic_segmentation import (  # noqa: E402
    CITYSCAPES_ID_TO_TRAINID, generate_synthetic_segmentation)

from .conftest import CONFIGS  # noqa: E402

ALL_CONFIGS = sorted(p for p in CONFIGS.glob("*.py"))


@pytest.mark.parametrize("config", ALL_CONFIGS, ids=lambda p: p.stem)
def test_config_builds(config):
    import hybridkt_ext.for_mmseg  # noqa: F401
    from mmengine.config import Config
    from mmseg.registry import MODELS

    cfg = Config.fromfile(str(config))
    assert cfg.custom_imports.imports == ["hybridkt_ext.for_mmseg"]
    backbone = cfg.model.backbone
    if backbone.type == "HybridBackbone" and backbone.get("teacher"):
        # real-scale teachers name user-provided files: build without loading them
        listed = backbone.teacher if isinstance(backbone.teacher, list) else [backbone.teacher]
        for teacher in listed:
            teacher.checkpoint = None
            teacher.allow_random_init = True
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = MODELS.build(cfg.model)
    if "vgg16" in config.name:  # the paper's student: run its hybrid paths once
        with torch.no_grad():
            paths = model.backbone.forward_hybrid(torch.randn(1, 3, 64, 64))
        assert [f.shape[1] for f in paths.teacher_first] == [512, 512]


def test_generator_is_seeded_and_uses_the_real_layouts(tmp_path):
    import cv2

    a = generate_synthetic_segmentation(tmp_path / "a", "cityscapes", num_train=2, num_val=1)
    b = generate_synthetic_segmentation(tmp_path / "b", "cityscapes", num_train=2, num_val=1)
    imgs = sorted(a.glob("leftImg8bit/train/*/*_leftImg8bit.png"))
    assert len(imgs) == 2
    for img in imgs:
        twin = b / img.relative_to(a)
        assert np.array_equal(cv2.imread(str(img)), cv2.imread(str(twin)))
    labels = sorted(a.glob("gtFine/val/*/*_gtFine_labelTrainIds.png"))
    assert len(labels) == 1 and cv2.imread(str(labels[0]), 0).max() <= 18
    # The distributed label ids sit beside the train ids and map onto them pixel by pixel.
    label_ids = cv2.imread(str(labels[0]).replace("labelTrainIds", "labelIds"), 0)
    to_train = np.full(256, 255, dtype=np.uint8)
    to_train[list(CITYSCAPES_ID_TO_TRAINID)] = list(CITYSCAPES_ID_TO_TRAINID.values())
    assert np.array_equal(to_train[label_ids], cv2.imread(str(labels[0]), 0))
    g = generate_synthetic_segmentation(tmp_path / "g", "gta5", num_train=2, num_val=1)
    assert (g / "train.txt").read_text().split() == ["train_00000", "train_00001"]
    assert cv2.imread(str(g / "labels" / "train_00000.png"), 0).max() > 18  # label ids


def test_gta5_dataset_maps_label_ids_to_train_ids(tmp_path):
    import hybridkt_ext.for_mmseg  # noqa: F401
    from mmengine.registry import init_default_scope
    from mmseg.registry import DATASETS

    init_default_scope("mmseg")  # the pipeline's LoadAnnotations is mmseg's, as in a Runner
    root = generate_synthetic_segmentation(tmp_path / "g", "gta5", num_train=2, num_val=1)
    ds = DATASETS.build(dict(type="GTA5Dataset", data_root=str(root), ann_file="train.txt",
                             pipeline=[dict(type="LoadImageFromFile"),
                                       dict(type="LoadAnnotations")]))
    assert len(ds) == 2
    seg = ds[0]["gt_seg_map"]
    values = set(np.unique(seg).tolist())
    assert values <= {0, 1, 2, 5, 8, 10, 11, 13, 255} and {0, 10} <= values
