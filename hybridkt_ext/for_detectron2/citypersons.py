"""CityPersons in detectron2's DatasetCatalog / MetadataCatalog.

Records come from the framework-neutral readers (``hybridkt_ext.datasets.citypersons``) and keep
their fields (``vis_bbox``, ``height``, ``vis_ratio``, ``ignore``; the evaluator reads them).
Boxes are full-body ``XYWH_ABS``; one class, "person" (contiguous id 0).

Ignore rule. Pedestrians (label 1) are the training targets. Ignore regions (0), riders (2),
sitting (3) and other persons (4) and people groups (5), i.e. every box with ``ignore = 1``, are
marked ``iscrowd = 1``: detectron2's DatasetMapper drops crowd boxes from the targets, so they
are neither positives nor used to match anchors, exactly as it treats COCO crowds; the miss-rate
evaluator then treats them as ignore regions, as the official evaluation does.

Names registered on import (lazy: nothing is read until a dataset is used):

* ``citypersons_{train,val}`` from ``$DETECTRON2_DATASETS/citypersons`` (default
  ``datasets/citypersons``): ``annotations/anno_{train,val}.mat`` as distributed, Cityscapes
  images under ``leftImg8bit/``; ``citypersons_val_json`` reads ``annotations/val_gt.json``.
* ``citypersons_synthetic_{train,val,val_json}``: the seeded synthetic dataset in the same layout
  (``SYNTHETIC_SIZES``, ``SYNTHETIC_STATISTICS``), generated on first use under
  ``$HYBRIDKT_DATA/synthetic_citypersons`` (default ``data/``); ``citypersons_synthetic_mini_*``
  is its small twin (tests, smoke runs) under ``$HYBRIDKT_DATA/synthetic_citypersons_mini``.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.structures import BoxMode

from ..datasets.citypersons import load_citypersons_json, load_citypersons_mat
from ..datasets.synthetic_citypersons import ensure_synthetic_citypersons

THING_CLASSES = ["person"]
# (train, val) images of the registered synthetic sets, by name suffix. Eight training images are
# memorised, not learnt (after 900 iterations a detector scored MR^-2 20% on them and 96% on the
# validation images); 64 generalise. 32 validation images hold about 150 Reasonable pedestrians,
# so MR^-2 moves by points, not tens of points, from one found pedestrian to the next (16 gave
# swings of 10 points between checkpoints). "_mini" only has to run (tests, smoke runs).
SYNTHETIC_SIZES = {"": (64, 32), "_mini": (8, 4)}
# Drawn from learnable_statistics (2x zoom, denser, fewer heavy occlusions): with the real
# statistics at the configs' 1/4 resolution, minutes of CPU training stay at MR^-2 92-98%.
SYNTHETIC_STATISTICS = "learnable"


def citypersons_root() -> Path:
    """Real CityPersons root, following detectron2's DETECTRON2_DATASETS convention."""
    return Path(os.getenv("DETECTRON2_DATASETS", "datasets")) / "citypersons"


def synthetic_root(suffix: str = "") -> Path:
    """Where a synthetic dataset is generated (git-ignored ``data/`` by default)."""
    return Path(os.getenv("HYBRIDKT_DATA", "data")) / f"synthetic_citypersons{suffix}"


def to_detectron2_records(records: list[dict]) -> list[dict]:
    """Reader records -> detectron2 dataset dicts (see the module docstring for the ignore rule)."""
    out = []
    for record in records:
        annotations = []
        for ann in record["annotations"]:
            annotations.append({
                **ann,
                "citypersons_label": ann["category_id"],  # the label as distributed
                "category_id": 0,
                "bbox_mode": BoxMode.XYWH_ABS,
                "iscrowd": int(bool(ann["ignore"])),
            })
        out.append({**record, "annotations": annotations})
    return out


def register_citypersons(name: str, annotation_file: Callable[[], Path], image_root: Callable[[],
                         Path]) -> None:
    """Registers a CityPersons split read from a ``.mat`` or COCO-style ``.json`` file.

    Args:
        name: the dataset name (``DATASETS.TRAIN`` / ``DATASETS.TEST``).
        annotation_file: returns the annotation file when the dataset is first used.
        image_root: returns the folder holding ``leftImg8bit/`` at that time.
    """

    def load() -> list[dict]:
        path, root = annotation_file(), image_root()
        if not path.exists():
            raise FileNotFoundError(
                f"dataset {name!r}: {path} does not exist. Put the CityPersons annotations "
                f"there and the Cityscapes images under {root / 'leftImg8bit'} (or set "
                "DETECTRON2_DATASETS)"
            )
        if path.suffix == ".json":
            return to_detectron2_records(load_citypersons_json(path, image_root=root))
        return to_detectron2_records(load_citypersons_mat(path, image_root=root))

    DatasetCatalog.register(name, load)
    MetadataCatalog.get(name).set(thing_classes=THING_CLASSES, evaluator_type="citypersons")


def _synthetic(suffix: str, file_name: str) -> Callable[[], Path]:
    def path() -> Path:
        num_train, num_val = SYNTHETIC_SIZES[suffix]
        root = ensure_synthetic_citypersons(synthetic_root(suffix), num_train, num_val,
                                            statistics=SYNTHETIC_STATISTICS)
        return root / "annotations" / file_name
    return path


def register_all_citypersons() -> None:
    """Registers the real and synthetic splits (idempotent)."""
    splits = {"train": "anno_train.mat", "val": "anno_val.mat", "val_json": "val_gt.json"}
    for split, file_name in splits.items():
        sources = [(f"citypersons_{split}",
                    lambda f=file_name: citypersons_root() / "annotations" / f, citypersons_root)]
        sources += [(f"citypersons_synthetic{suffix}_{split}", _synthetic(suffix, file_name),
                     lambda s=suffix: synthetic_root(s)) for suffix in SYNTHETIC_SIZES]
        for name, ann, root in sources:
            if name not in DatasetCatalog.list():
                register_citypersons(name, ann, root)
