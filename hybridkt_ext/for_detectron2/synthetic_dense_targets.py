"""The synthetic CityPersons with the targets other architectures train on: masks, keypoints and
semantic labels, so Mask, Cascade-Mask, Keypoint R-CNN, Panoptic FPN and the semantic segmentor
run on it too.

CityPersons annotates boxes only. These targets are derived from each pedestrian's full-body
box, deterministically: its mask is the box, its 17 COCO keypoints sit at fixed fractions of the
box (a standing person), and the semantic label marks box pixels "person" over "background".
They make the heads learn something consistent; they are not a benchmark.

Registered names: ``citypersons_synthetic_mini_dense_{train,val}`` (tests, smoke runs) and
``citypersons_synthetic_dense_{train,val}``; the label PNGs are written once beside the
generated images (``<root>/dense_labels/``).
"""
from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.datasets.builtin_meta import (COCO_PERSON_KEYPOINT_FLIP_MAP,
                                                   COCO_PERSON_KEYPOINT_NAMES,
                                                   KEYPOINT_CONNECTION_RULES)
from PIL import Image

from .citypersons import SYNTHETIC_SIZES, THING_CLASSES, synthetic_root

STUFF_CLASSES = ["background", "person"]
# (x, y) of the 17 COCO keypoints as fractions of a standing person's box, in COCO's order.
_KEYPOINTS = (
    (0.50, 0.07), (0.54, 0.05), (0.46, 0.05), (0.58, 0.07), (0.42, 0.07),  # face
    (0.68, 0.20), (0.32, 0.20), (0.76, 0.36), (0.24, 0.36), (0.78, 0.50), (0.22, 0.50),  # arms
    (0.62, 0.52), (0.38, 0.52), (0.62, 0.74), (0.38, 0.74), (0.62, 0.96), (0.38, 0.96),  # legs
)


def _dense(record: dict, labels: Path) -> dict:
    record = copy.deepcopy(record)
    height, width = record["height"], record["width"]
    semantic = np.zeros((height, width), dtype=np.uint8)
    for ann in record["annotations"]:
        x, y, w, h = ann["bbox"]
        ann["segmentation"] = [[x, y, x + w, y, x + w, y + h, x, y + h]]
        ann["keypoints"] = [v for fx, fy in _KEYPOINTS for v in (x + fx * w, y + fy * h, 2)]
        if not ann["iscrowd"]:
            x0, y0 = max(int(x), 0), max(int(y), 0)
            semantic[y0:min(int(y + h), height), x0:min(int(x + w), width)] = 1
    path = labels / f"{Path(record['file_name']).stem}_semantic.png"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.png")
        Image.fromarray(semantic).save(tmp)
        tmp.replace(path)  # concurrent launch workers never read a half-written label
    record["sem_seg_file_name"] = str(path)
    return record


def register_dense_synthetic() -> None:
    """Registers the dense twins of the synthetic CityPersons splits (idempotent)."""
    for suffix in SYNTHETIC_SIZES:
        for split in ("train", "val"):
            name = f"citypersons_synthetic{suffix}_dense_{split}"
            if name in DatasetCatalog.list():
                continue

            def load(base=f"citypersons_synthetic{suffix}_{split}", s=suffix) -> list[dict]:
                labels = synthetic_root(s) / "dense_labels"
                return [_dense(r, labels) for r in DatasetCatalog.get(base)]

            DatasetCatalog.register(name, load)
            MetadataCatalog.get(name).set(
                thing_classes=THING_CLASSES, stuff_classes=STUFF_CLASSES, ignore_label=255,
                keypoint_names=COCO_PERSON_KEYPOINT_NAMES,
                keypoint_flip_map=COCO_PERSON_KEYPOINT_FLIP_MAP,
                keypoint_connection_rules=KEYPOINT_CONNECTION_RULES,
                evaluator_type="citypersons")
