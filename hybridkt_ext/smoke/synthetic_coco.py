"""mmdet training data with masks, for any class count: the synthetic CityPersons as COCO files.

The synthetic CityPersons (``datasets/synthetic_citypersons``) has boxes only, in CityPersons'
own format; Mask R-CNN and the other mask heads need instance masks, and a config's heads their
own class count. This writes ``annotations/smoke_train.json`` in COCO's format beside the
generated images: every pedestrian box (ignore regions left out) with its rectangle as the
polygon mask, labelled with the classes cycled through in order so every class index occurs.
mmdet's own ``CocoDataset`` reads it (``coco_dataset``).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

from hybridkt_ext.datasets.synthetic_citypersons import ensure_synthetic_citypersons


def write_synthetic_coco(root: str | Path, classes: Sequence[str], num_train: int = 8,
                         seed: int = 0) -> Path:
    """Generates the images (once) and writes ``annotations/smoke_train.json``; returns it."""
    root = ensure_synthetic_citypersons(Path(root), num_train=num_train, num_val=2, seed=seed,
                                        statistics="learnable")
    source = json.loads((root / "annotations" / "train_gt.json").read_text(encoding="utf-8"))
    images = [dict(id=im["id"], width=im["width"], height=im["height"],
                   file_name=f"leftImg8bit/train/{im['im_name'].split('_')[0]}/{im['im_name']}")
              for im in source["images"]]
    annotations = []
    for ann in (a for a in source["annotations"] if not a["ignore"]):
        x, y, w, h = ann["bbox"]
        annotations.append(dict(
            id=len(annotations) + 1, image_id=ann["image_id"], iscrowd=0, bbox=[x, y, w, h],
            area=w * h, category_id=len(annotations) % len(classes) + 1,
            segmentation=[[x, y, x + w, y, x + w, y + h, x, y + h]]))
    categories = [dict(id=i + 1, name=name) for i, name in enumerate(classes)]
    out = root / "annotations" / "smoke_train.json"
    out.write_text(json.dumps(dict(images=images, annotations=annotations,
                                   categories=categories)), encoding="utf-8")
    return out


def coco_dataset(root: str | Path, classes: Sequence[str], short_side: int,
                 annotations: dict | None = None, num_train: int = 8) -> dict:
    """An mmdet ``CocoDataset`` config over ``write_synthetic_coco``'s file, images resized so
    their short side is ``short_side``.

    ``annotations``: the config's own ``LoadAnnotations`` step; masks are loaded as it loads
    them (only when it does: some heads use masks whenever the targets have them, e.g.
    RTMDet's assigner, and expect the form their pipeline makes).
    """
    ann_file = write_synthetic_coco(root, classes, num_train)
    stock = annotations or {}
    masks = dict(with_mask=True, poly2mask=stock.get("poly2mask", True)) \
        if stock.get("with_mask") else {}
    pipeline = [dict(type="LoadImageFromFile"),
                dict(type="LoadAnnotations", with_bbox=True, **masks),
                dict(type="Resize", scale=(4 * short_side, short_side), keep_ratio=True),
                dict(type="PackDetInputs")]
    return dict(type="CocoDataset", data_root=str(Path(ann_file).parents[1]),
                ann_file=str(ann_file), data_prefix=dict(img=""),
                metainfo=dict(classes=tuple(classes)),
                filter_cfg=dict(filter_empty_gt=True, min_size=1), pipeline=pipeline)
