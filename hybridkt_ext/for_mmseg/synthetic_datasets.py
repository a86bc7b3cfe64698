"""Datasets that generate their synthetic data on first use, then read it like the real ones.

``SyntheticCityscapesDataset`` is our ``CheckedCityscapesDataset`` and ``SyntheticGTA5Dataset``
our ``GTA5Dataset``; each only adds one step before loading: if ``data_root`` holds no
complete synthetic dataset, ``generate_synthetic_segmentation`` writes one (seeded,
atomically). The configs whose names contain ``synthetic`` use them, so a fresh clone trains
with no download. Both check their files (``SegmentationFileChecks``): a damaged synthetic
folder (files deleted after generation) fails while the dataset is built.
"""
from __future__ import annotations

from mmseg.registry import DATASETS

from hybridkt_ext.datasets.synthetic_segmentation import generate_synthetic_segmentation

from .cityscapes_dataset import CITYSCAPES_LAYOUT, CheckedCityscapesDataset
from .gta5_dataset import GTA5Dataset

_GENERATOR_KEYS = ("style", "num_train", "num_val", "size", "seed")
_REGENERATE = "; delete data_root to regenerate a damaged synthetic dataset"


def _ensure(data_root: str, layout: str, synthetic: dict | None) -> None:
    synthetic = dict(synthetic or {})
    unknown = set(synthetic) - set(_GENERATOR_KEYS)
    if unknown:
        raise ValueError(f"synthetic: unknown keys {sorted(unknown)}; allowed "
                         f"{list(_GENERATOR_KEYS)}.")
    if not data_root:
        raise ValueError("a synthetic dataset needs data_root (where to generate it).")
    generate_synthetic_segmentation(data_root, layout=layout, **synthetic)


@DATASETS.register_module()
class SyntheticCityscapesDataset(CheckedCityscapesDataset):
    """CheckedCityscapesDataset over generated data (see module doc).

    Label values outside the 19 train ids (and not 255) raise ``ValueError`` when the
    sample is loaded, naming the file.

    Args:
        synthetic: generator arguments (style, num_train, num_val, size, seed).
        **kwargs: CityscapesDataset's.
    """

    layout_hint = CITYSCAPES_LAYOUT + _REGENERATE
    # The generator writes the train ids itself: a missing one means a damaged folder.
    missing_label_hint = _REGENERATE[2:]

    def __init__(self, synthetic: dict | None = None, **kwargs) -> None:
        _ensure(kwargs.get("data_root", ""), "cityscapes", synthetic)
        super().__init__(**kwargs)


@DATASETS.register_module()
class SyntheticGTA5Dataset(GTA5Dataset):
    """GTA5Dataset over generated data (see module doc).

    Args:
        synthetic: generator arguments (style, num_train, num_val, size, seed).
        **kwargs: GTA5Dataset's.
    """

    layout_hint = GTA5Dataset.layout_hint + _REGENERATE

    def __init__(self, synthetic: dict | None = None, **kwargs) -> None:
        _ensure(kwargs.get("data_root", ""), "gta5", synthetic)
        super().__init__(**kwargs)
