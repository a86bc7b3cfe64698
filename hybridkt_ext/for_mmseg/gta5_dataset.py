"""``GTA5Dataset``: Richter et al.'s GTA5 in its distributed layout, as Cityscapes' 19 classes.

Layout: ``<data_root>/images/<name>.png`` and ``<data_root>/labels/<name>.png`` holding
Cityscapes *label ids* (0-33). Label ids are mapped to the 19 Cityscapes train ids (others
to 255, ignored) through mmseg's own ``label_map`` mechanism, which ``LoadAnnotations``
applies, so the paper's Table 3 (a Cityscapes student evaluated on GTA5) uses the same
classes, palette and IoUMetric as Cityscapes. A split is chosen with ``ann_file`` (a text
file of names without suffix, e.g. ``train.txt``); without it every image is used.

``SegmentationFileChecks`` (shared with the synthetic datasets) makes a broken dataset fail
while it is built, before any training step: a missing folder or split file, no images, or
images without labels raise ``FileNotFoundError`` naming the paths. Label values outside the
classes are checked as each sample is loaded (reading every label file up front would cost a
minute on real Cityscapes); mmseg's loss would otherwise fail with an index error that names
no file.
"""
from __future__ import annotations

import os.path as osp
from typing import Any, Sequence

import numpy as np
import torch
from mmseg.datasets import CityscapesDataset
from mmseg.datasets.basesegdataset import BaseSegDataset
from mmseg.registry import DATASETS

from hybridkt_ext.datasets.synthetic_segmentation import CITYSCAPES_ID_TO_TRAINID

IGNORE_INDEX = 255
NUM_LABEL_IDS = 34  # Cityscapes label ids 0..33 (GTA5 annotations use the same ids)
_LISTED = 3


class SegmentationFileChecks:
    """Mixin for ``BaseSegDataset`` subclasses: fail early and clearly on a broken dataset.

    Class attributes:
        layout_hint: the expected folder layout, quoted in errors.
        label_fix_hint: what to do about out-of-range label values, quoted in errors.
        out_of_range_labels: "ignore" turns label values that are neither a class index nor
            255 into 255; "error" raises ``ValueError`` naming the label file.
    """

    layout_hint = "images under data_prefix.img_path, labels under data_prefix.seg_map_path"
    label_fix_hint = "labels must hold class indices or 255 (ignore)."
    out_of_range_labels = "error"
    # Set by BaseSegDataset (annotations only: nothing here shadows them).
    data_prefix: dict
    ann_file: str
    backend_args: dict | None
    img_suffix: str
    metainfo: dict

    def load_data_list(self) -> list[dict]:
        name = type(self).__name__
        img_dir = self.data_prefix.get("img_path", "")
        ann_file = self.ann_file
        local = self.backend_args is None
        if local and ann_file and not osp.isdir(ann_file) and not osp.isfile(ann_file):
            raise FileNotFoundError(
                f"{name}: ann_file {ann_file} does not exist; give the split file (one name "
                "per line, relative to data_root) or leave ann_file unset to use every image.")
        if local and not ann_file and not osp.isdir(img_dir):
            raise FileNotFoundError(
                f"{name}: image folder {img_dir} does not exist; check data_root and "
                f"data_prefix (expected layout: {self.layout_hint}).")
        data_list = super().load_data_list()  # type: ignore[misc]
        if not data_list:
            listed = f" listed in {ann_file}" if ann_file else ""
            raise FileNotFoundError(
                f"{name}: no images ending in {self.img_suffix!r}{listed} under "
                f"{img_dir}: the dataset is empty and training would have nothing to learn "
                f"from. Check data_root, data_prefix and img_suffix (expected layout: "
                f"{self.layout_hint}).")
        if local:
            _check_files_exist(name, data_list, ann_file)
        return data_list

    def prepare_data(self, idx: int) -> Any:
        results = super().prepare_data(idx)  # type: ignore[misc]
        if results is not None:
            self._check_label_values(results, idx)
        return results

    def _check_label_values(self, results: dict, idx: int) -> None:
        labels = _labels_of(results)
        if labels is None:
            return
        num_classes = len(self.metainfo["classes"])
        bad = (labels >= num_classes) & (labels != IGNORE_INDEX)
        if not bad.any():
            return
        if self.out_of_range_labels == "ignore":
            labels[bad] = IGNORE_INDEX  # in place: the arrays are this sample's own copies
            return
        values = sorted({int(v) for v in labels[bad].reshape(-1)[:100_000].tolist()})
        path = self.get_data_info(idx).get("seg_map_path")  # type: ignore[attr-defined]
        raise ValueError(
            f"{type(self).__name__}: label file {path} holds values {values[:8]} outside the "
            f"{num_classes} classes (valid: 0..{num_classes - 1} and {IGNORE_INDEX} = "
            f"ignore); the loss would fail on them with an index error. {self.label_fix_hint}")


def _labels_of(results: dict) -> np.ndarray | torch.Tensor | None:
    """The sample's label map after the pipeline (packed or not), or None without labels."""
    sample = results.get("data_samples")
    seg = getattr(sample, "gt_sem_seg", None) if sample is not None else None
    if seg is not None:
        return seg.data
    return results.get("gt_seg_map")


def _check_files_exist(name: str, data_list: list[dict], ann_file: str) -> None:
    # One stat per file: milliseconds for Cityscapes' 2975 images, under a second for GTA5's
    # 24966; a missing label otherwise surfaces hours into training.
    missing_images = [d["img_path"] for d in data_list if not osp.isfile(d["img_path"])]
    if missing_images:
        raise FileNotFoundError(
            f"{name}: {len(missing_images)} of {len(data_list)} images listed in {ann_file} "
            f"do not exist, e.g. {missing_images[:_LISTED]}; restore them or remove their "
            "names from the split file.")
    missing_labels = [d["seg_map_path"] for d in data_list
                      if "seg_map_path" in d and not osp.isfile(d["seg_map_path"])]
    if missing_labels:
        raise FileNotFoundError(
            f"{name}: {len(missing_labels)} of {len(data_list)} images have no label file, "
            f"e.g. {missing_labels[:_LISTED]}; every image needs its label (check "
            "seg_map_suffix and data_prefix.seg_map_path, restore the labels, or drop those "
            "images from the split).")


@DATASETS.register_module()
class GTA5Dataset(SegmentationFileChecks, BaseSegDataset):
    """GTA5 with the Cityscapes label-id -> train-id mapping.

    Label values that are not Cityscapes label ids (34..254) become 255 (ignored), like the
    label ids that have no train id.

    Args:
        img_suffix: image file suffix.
        seg_map_suffix: label file suffix.
        reduce_zero_label: must stay False (ids are mapped explicitly).
        **kwargs: BaseSegDataset's (data_root, data_prefix, ann_file, pipeline, ...).
    """

    METAINFO = CityscapesDataset.METAINFO
    layout_hint = "<data_root>/images/<name>.png and <data_root>/labels/<name>.png"
    # Ids 34..254 are not Cityscapes label ids; the label_map (ids 0..33) leaves them as they
    # are, and mapping all 256 values in LoadAnnotations would cost ~70% more per image.
    out_of_range_labels = "ignore"

    def __init__(self, img_suffix: str = ".png", seg_map_suffix: str = ".png",
                 reduce_zero_label: bool = False, **kwargs) -> None:
        if reduce_zero_label:
            raise ValueError("GTA5Dataset: reduce_zero_label must be False; label ids are "
                             "mapped to train ids by the built-in label_map.")
        kwargs.setdefault("data_prefix", dict(img_path="images", seg_map_path="labels"))
        super().__init__(img_suffix=img_suffix, seg_map_suffix=seg_map_suffix,
                         reduce_zero_label=False, **kwargs)

    @classmethod
    def get_label_map(cls, new_classes: Sequence[str] | None = None) -> dict[int, int]:
        """Label id -> train id for ids 0..33; a class subset re-indexes the train ids."""
        classes = list(cls.METAINFO["classes"])
        if new_classes is not None and list(new_classes) != classes:
            unknown = set(new_classes) - set(classes)
            if unknown:
                raise ValueError(f"GTA5Dataset: classes {sorted(unknown)} are not Cityscapes "
                                 "classes; pick a subset of CityscapesDataset.METAINFO.")
            subset = {classes.index(c): i for i, c in enumerate(new_classes)}
        else:
            subset = {i: i for i in range(len(classes))}
        return {label_id: subset.get(CITYSCAPES_ID_TO_TRAINID.get(label_id, -1), IGNORE_INDEX)
                for label_id in range(NUM_LABEL_IDS)}
