"""CityPersons annotation readers (Zhang, Benenson, Schiele, CVPR 2017), framework-neutral.

Both readers return one plain dict per image, so a framework adapter (e.g. a detectron2
``DatasetCatalog`` registration) converts them without this module importing the framework::

    {
        "file_name": "leftImg8bit/val/frankfurt/frankfurt_000000_000294_leftImg8bit.png",
        "image_id": 1,
        "height": 1024,
        "width": 2048,
        "annotations": [
            {
                "bbox": [x1, y1, w, h],      # full-body box in pixels, may leave the image
                "vis_bbox": [x1, y1, w, h],  # visible part
                "category_id": 1,
                "instance_id": 24000,        # None when the source has none (the JSON)
                "height": 40.0,              # full-box height, what the setups filter on
                "vis_ratio": 0.80,           # visible area / full area
                "ignore": 0,                 # 1: never a true positive nor a missed person
            },
            ...
        ],
    }

Ignore rule. The official evaluation (``eval_MR_multisetup.py``) scores category 1 only, and the
official ground-truth JSON (``val_gt.json``) stores *every* box as category 1 with ``ignore = 1``
for each box whose class label is not 1 (pedestrian): ignore regions (0), riders (2), sitting
persons (3), other persons (4) and groups (5). Checked box by box against ``anno_val.mat``:
5795 of 5795 boxes agree on ``ignore == (label != 1)``, box, visible box, height and vis_ratio.
The ``.mat`` reader applies that rule; the JSON reader keeps the file's flags.

As distributed, people groups (class 5) carry an all-zero visible box (so vis_ratio 0), the other
non-rider classes repeat the full box, and full boxes of pedestrians/riders may extend beyond the
image (they are aligned to the full body).
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import scipy.io

__all__ = [
    "CITYSCAPES_HEIGHT",
    "CITYSCAPES_WIDTH",
    "PEDESTRIAN_LABEL",
    "load_citypersons_json",
    "load_citypersons_mat",
]

# Every Cityscapes image has this size; the .mat files do not store it.
CITYSCAPES_HEIGHT = 1024
CITYSCAPES_WIDTH = 2048
# The only class the official evaluation scores; every other label becomes an ignore box.
PEDESTRIAN_LABEL = 1

_MAT_VARIABLE = re.compile(r"anno_(\w+)_aligned")


def _image_path(split: str, im_name: str, image_root: str | Path | None) -> str:
    """Cityscapes layout ``leftImg8bit/<split>/<city>/<im_name>``, optionally under a root."""
    # Cityscapes names start with the city: "frankfurt_000000_000294_leftImg8bit.png".
    city = im_name.split("_")[0]
    relative = Path("leftImg8bit") / split / city / im_name
    return str(Path(image_root) / relative) if image_root is not None else relative.as_posix()


def _visible_ratio(bbox: list[float], vis_bbox: list[float]) -> float:
    area = bbox[2] * bbox[3]
    return vis_bbox[2] * vis_bbox[3] / area if area > 0 else 0.0


def load_citypersons_mat(path: str | Path, image_root: str | Path | None = None) -> list[dict]:
    """Reads ``anno_train.mat`` / ``anno_val.mat`` as released by the CityPersons authors.

    The split is taken from the MATLAB variable (``anno_<split>_aligned``). Image ids are
    1-based positions in the cell array, the ids the official ``val_gt.json`` uses for the same
    images in the same order, so detections keyed by these ids evaluate against either reader.

    Args:
        path: the ``.mat`` file.
        image_root: Cityscapes root holding ``leftImg8bit/``; ``file_name`` stays relative
            (``leftImg8bit/<split>/<city>/<im_name>``) when None.

    Returns:
        One record per image in file order, in the layout of the module docstring.

    Raises:
        ValueError: if the file holds no single ``anno_<split>_aligned`` variable.
    """
    content = scipy.io.loadmat(str(path))
    names = [name for name in content if _MAT_VARIABLE.fullmatch(name)]
    if len(names) != 1:
        raise ValueError(f"{path}: expected one anno_<split>_aligned variable, found {names}")
    split = _MAT_VARIABLE.fullmatch(names[0]).group(1)
    cells = content[names[0]]

    records = []
    for index in range(cells.shape[1]):
        entry = cells[0, index][0, 0]
        im_name = str(entry["im_name"][0])
        # Images without any person come as 0x10 (or empty) arrays; dtypes vary per image
        # (uint16 or signed, since full boxes can start left of the image).
        rows = np.asarray(entry["bbs"], dtype=np.float64).reshape(-1, 10)
        annotations = []
        for row in rows:
            label = int(row[0])
            bbox = [float(v) for v in row[1:5]]
            vis_bbox = [float(v) for v in row[6:10]]
            annotations.append(
                {
                    "bbox": bbox,
                    "vis_bbox": vis_bbox,
                    "category_id": label,
                    "instance_id": int(row[5]),
                    "height": bbox[3],
                    "vis_ratio": _visible_ratio(bbox, vis_bbox),
                    "ignore": int(label != PEDESTRIAN_LABEL),
                }
            )
        records.append(
            {
                "file_name": _image_path(split, im_name, image_root),
                "image_id": index + 1,
                "height": CITYSCAPES_HEIGHT,
                "width": CITYSCAPES_WIDTH,
                "annotations": annotations,
            }
        )
    return records


def load_citypersons_json(
    path: str | Path, image_root: str | Path | None = None, split: str = "val"
) -> list[dict]:
    """Reads the COCO-style ground truth the official evaluation consumes (``val_gt.json``).

    ``category_id``, ``height``, ``vis_ratio`` and ``ignore`` are kept as the file gives them;
    in the official ``val_gt.json`` every box is category 1 and the class survives only through
    ``ignore`` (see the module docstring). The file has no instance ids (``instance_id`` is None).

    Args:
        path: the JSON file.
        image_root: Cityscapes root holding ``leftImg8bit/``; ``file_name`` stays relative
            when None.
        split: Cityscapes split of the images, which the JSON does not record; the only public
            ground truth in this format is the validation set.

    Returns:
        One record per image, in the order of the file's ``images`` list.
    """
    with open(path, encoding="utf-8") as handle:
        content: dict[str, Any] = json.load(handle)

    annotations_by_image: dict[int, list[dict]] = defaultdict(list)
    for ann in content["annotations"]:
        bbox = [float(v) for v in ann["bbox"]]
        annotations_by_image[ann["image_id"]].append(
            {
                "bbox": bbox,
                "vis_bbox": [float(v) for v in ann["vis_bbox"]],
                "category_id": int(ann["category_id"]),
                "instance_id": None,
                "height": float(ann["height"]),
                "vis_ratio": float(ann["vis_ratio"]),
                "ignore": int(ann.get("ignore", 0)),
            }
        )

    return [
        {
            "file_name": _image_path(split, image["im_name"], image_root),
            "image_id": image["id"],
            "height": int(image["height"]),
            "width": int(image["width"]),
            "annotations": annotations_by_image.get(image["id"], []),
        }
        for image in content["images"]
    ]
