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

Both readers refuse what the evaluator could not score, with one ``InvalidAnnotationError`` line
naming the file, the image and the row: NaN/inf values, negative widths or heights (zero sizes
pass, as the groups' visible boxes are), a ``.mat`` ``bbs`` that is not (N, 10), a ``.mat``
image without ``im_name`` or ``bbs``. The real release passes every check.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import scipy.io

from hybridkt_ext.evaluation.validation import (InvalidAnnotationError, box_problem,
                                                is_number_row)

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
# The struct fields of one image as released (cityname is not read: im_name starts with it).
MAT_FIELDS = ("cityname", "im_name", "bbs")
BBS_ROW = ("[label, x1, y1, w, h, instance_id, x1_vis, y1_vis, w_vis, h_vis], finite, "
           "w, h >= 0")


def _image_path(split: str, im_name: str, image_root: str | Path | None) -> str:
    """Cityscapes layout ``leftImg8bit/<split>/<city>/<im_name>``, optionally under a root."""
    # Cityscapes names start with the city: "frankfurt_000000_000294_leftImg8bit.png".
    city = im_name.split("_")[0]
    relative = Path("leftImg8bit") / split / city / im_name
    return str(Path(image_root) / relative) if image_root is not None else relative.as_posix()


def _visible_ratio(bbox: list[float], vis_bbox: list[float]) -> float:
    area = bbox[2] * bbox[3]
    return vis_bbox[2] * vis_bbox[3] / area if area > 0 else 0.0


def _bbs_rows(bbs: Any, where: str) -> np.ndarray:
    """One image's ``bbs`` as (N, 10) float rows, refused when a row cannot be scored."""
    rows = np.asarray(bbs)
    # Images without any person come as 0x10 (or empty) arrays; dtypes vary per image
    # (uint16 or signed, since full boxes can start left of the image).
    if rows.size == 0:
        return np.zeros((0, 10))
    if rows.ndim != 2 or rows.shape[1] != 10 or rows.dtype.kind not in "iuf":
        # No reshape: a transposed or flattened bbs would mix the values of different boxes.
        raise InvalidAnnotationError(f"{where}: bbs is {rows.dtype} of shape {rows.shape}; "
                                     f"give numeric rows {BBS_ROW}.")
    rows = rows.astype(np.float64)
    nonfinite = np.flatnonzero(~np.isfinite(rows).all(axis=1))
    if nonfinite.size:
        row = int(nonfinite[0])
        raise InvalidAnnotationError(f"{where}, bbs row {row}: a NaN or infinite value in "
                                     f"{rows[row].tolist()}; rows are {BBS_ROW}.")
    for columns in (slice(1, 5), slice(6, 10)):  # full box, visible box
        bad = box_problem(rows[:, columns])
        if bad is not None:
            raise InvalidAnnotationError(f"{where}, bbs row {bad[0]}: {bad[1]}; rows are "
                                         f"{BBS_ROW}.")
    return rows


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
        InvalidAnnotationError: (a ValueError) the file holds no single
            ``anno_<split>_aligned`` variable, an image lacks the ``im_name`` or ``bbs`` field,
            or a ``bbs`` is not (N, 10) finite rows with non-negative sizes; one line naming the
            file, the image and the row.
    """
    content = scipy.io.loadmat(str(path))
    names = [name for name in content if _MAT_VARIABLE.fullmatch(name)]
    if len(names) != 1:
        raise InvalidAnnotationError(f"{path}: expected one anno_<split>_aligned variable, "
                                     f"found {names}; give anno_train.mat or anno_val.mat as "
                                     "released.")
    split = _MAT_VARIABLE.fullmatch(names[0]).group(1)
    cells = content[names[0]]

    records = []
    for index in range(cells.shape[1]):
        entry = cells[0, index]
        entry = entry[0, 0] if getattr(entry, "size", 0) == 1 else entry
        fields = getattr(getattr(entry, "dtype", None), "names", None) or ()
        missing = [name for name in ("im_name", "bbs") if name not in fields]
        if missing:
            raise InvalidAnnotationError(
                f"{path}: image {index + 1} (cell {index} of {names[0]}) has no field "
                f"{' or '.join(missing)} (fields: {list(fields)}); each image must be a struct "
                f"with fields {', '.join(MAT_FIELDS)}, as in the CityPersons release.")
        im_name = str(entry["im_name"][0])
        rows = _bbs_rows(entry["bbs"], f"{path}: image {index + 1} ({im_name})")
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

    Raises:
        InvalidAnnotationError: (a ValueError) a ``bbox`` or ``vis_bbox`` that is not 4 finite
            numbers with non-negative sizes, in one line naming the file, annotation and image.
    """
    with open(path, encoding="utf-8") as handle:
        content: dict[str, Any] = json.load(handle)

    annotations_by_image: dict[int, list[dict]] = defaultdict(list)
    for row, ann in enumerate(content["annotations"]):
        where = f"{path}: annotation {row} (image {ann.get('image_id')!r})"
        for key in ("bbox", "vis_bbox"):
            if not is_number_row(ann.get(key), 4):
                raise InvalidAnnotationError(f"{where}: {key} {ann.get(key)!r} is not 4 numbers; "
                                             "give [x1, y1, w, h].")
            bad = box_problem(np.array([ann[key]], dtype=np.float64))
            if bad is not None:
                raise InvalidAnnotationError(f"{where}: {key} has {bad[1]}; boxes are "
                                             "[x1, y1, w, h], finite, with w, h >= 0.")
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
