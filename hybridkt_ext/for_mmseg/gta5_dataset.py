"""``GTA5Dataset``: Richter et al.'s GTA5 in its distributed layout, as Cityscapes' 19 classes.

Layout: ``<data_root>/images/<name>.png`` and ``<data_root>/labels/<name>.png`` holding
Cityscapes *label ids* (0-33). Label ids are mapped to the 19 Cityscapes train ids (others
to 255, ignored) through mmseg's own ``label_map`` mechanism, which ``LoadAnnotations``
applies, so the paper's Table 3 (a Cityscapes student evaluated on GTA5) uses the same
classes, palette and IoUMetric as Cityscapes. A split is chosen with ``ann_file`` (a text
file of names without suffix, e.g. ``train.txt``); without it every image is used.

``SegmentationFileChecks`` (segmentation_file_checks.py, shared with the Cityscapes and
synthetic datasets) makes a broken dataset fail while it is built, before any training step:
a missing folder or split file, no images, or images without labels raise
``FileNotFoundError`` naming the paths.
"""
from __future__ import annotations

from typing import Sequence

from mmseg.datasets import CityscapesDataset
from mmseg.datasets.basesegdataset import BaseSegDataset
from mmseg.registry import DATASETS

from hybridkt_ext.datasets.synthetic_segmentation import CITYSCAPES_ID_TO_TRAINID

from .segmentation_file_checks import IGNORE_INDEX, SegmentationFileChecks

# Re-exported: they were defined here first, and imports from this module keep working.
__all__ = ["GTA5Dataset", "IGNORE_INDEX", "SegmentationFileChecks"]

NUM_LABEL_IDS = 34  # Cityscapes label ids 0..33 (GTA5 annotations use the same ids)


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
