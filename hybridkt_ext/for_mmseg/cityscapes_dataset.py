"""``CheckedCityscapesDataset``: mmseg's CityscapesDataset that fails early on a broken folder.

mmseg's own class lists whatever ``leftImg8bit/<split>`` holds: a missing folder fails deep
inside mmengine's file listing, an empty one with "need at least one array to concatenate"
while the dataset is serialised, and an image without its ``*_labelTrainIds.png`` only when
a worker loads it, hours into training. The official download has no train-id labels at
all (only ``*_gtFine_labelIds.png``, ids 0-33), so forgetting to convert them is the usual
cause. This class adds ``SegmentationFileChecks`` and nothing else: the same files, classes,
palette and metric as ``CityscapesDataset``, so configs switch by ``type`` alone.
"""
from __future__ import annotations

from mmseg.datasets import CityscapesDataset
from mmseg.registry import DATASETS

from .segmentation_file_checks import SegmentationFileChecks

CITYSCAPES_LAYOUT = ("<data_root>/leftImg8bit/<split>/<city>/<name>_leftImg8bit.png and "
                     "<data_root>/gtFine/<split>/<city>/<name>_gtFine_labelTrainIds.png")
_MAKE_TRAIN_IDS = (
    "the *_gtFine_labelTrainIds.png are not in the download: make them from the "
    "*_gtFine_labelIds.png with cityscapesscripts' createTrainIdLabelImgs "
    "(CITYSCAPES_DATASET=<data_root> csCreateTrainIdLabelImgs) or mmseg's "
    "tools/dataset_converters/cityscapes.py <data_root>")
CITYSCAPES_LABEL_FIX = (
    "Cityscapes-layout labels must be train ids (*_gtFine_labelTrainIds.png, written by "
    "cityscapesscripts' createTrainIdLabelImgs or mmseg's tools/dataset_converters/"
    "cityscapes.py), not label ids (*_gtFine_labelIds.png, 0-33); check seg_map_suffix.")


@DATASETS.register_module()
class CheckedCityscapesDataset(SegmentationFileChecks, CityscapesDataset):
    """CityscapesDataset with build-time file checks (see module doc).

    Raises ``FileNotFoundError`` while built when the image or label folder is missing, no
    ``*_leftImg8bit.png`` is found, or an image has no ``*_gtFine_labelTrainIds.png``; label
    values outside the 19 train ids (and not 255) raise ``ValueError`` naming the file when
    the sample is loaded.

    Args:
        **kwargs: CityscapesDataset's (data_root, data_prefix, pipeline, ...).
    """

    layout_hint = f"{CITYSCAPES_LAYOUT}; {_MAKE_TRAIN_IDS}"
    label_fix_hint = CITYSCAPES_LABEL_FIX
    missing_label_hint = _MAKE_TRAIN_IDS
    out_of_range_labels = "error"
