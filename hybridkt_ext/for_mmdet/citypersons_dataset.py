"""CityPersons for MMDetection, from the annotation files as distributed.

``CityPersonsDataset`` reads ``anno_{train,val}.mat`` (or the official ``val_gt.json``) with the
framework-neutral readers of ``hybridkt_ext.datasets.citypersons`` and gives mmdet's data list:
full-body boxes as ``[x1, y1, x2, y2]``, one class ("person", label 0). Every box the benchmark
ignores (ignore regions, riders, sitting and other persons, people groups) is an instance with
``ignore_flag=1``: mmdet's ``PackDetInputs`` moves those to ``ignored_instances``, so they are
never training targets, as COCO crowds are; the MR^-2 metric (``CityPersonsMetric``) treats them
as ignore regions, as the official evaluation does. This is the detectron2 adapter's ``iscrowd``
rule in mmdet's terms.

``SyntheticCityPersonsDataset`` generates the project's seeded synthetic CityPersons (same
layout, same files) into ``data_root`` on first use, then reads it like the real one.
"""
from __future__ import annotations

import os.path as osp
from pathlib import Path

from mmdet.datasets import BaseDetDataset
from mmdet.registry import DATASETS

from hybridkt_ext.datasets.citypersons import load_citypersons_json, load_citypersons_mat
from hybridkt_ext.datasets.synthetic_citypersons import (STATISTICS_VARIANTS,
                                                         ensure_synthetic_citypersons)

LAYOUT = ("data_root/annotations/anno_{train,val}.mat (or val_gt.json) and "
          "data_root/leftImg8bit/{train,val}/<city>/*_leftImg8bit.png")


def read_citypersons(ann_file: str | Path, image_root: str | Path) -> list[dict]:
    """The reader records of a ``.mat`` or ``.json`` annotation file, images under ``image_root``.

    Raises:
        FileNotFoundError: the annotation file is missing (the message gives the layout).
    """
    ann_file = Path(ann_file)
    if not ann_file.is_file():
        raise FileNotFoundError(f"CityPersons: no annotation file {ann_file}; expected {LAYOUT}.")
    if ann_file.suffix == ".json":
        return load_citypersons_json(ann_file, image_root=image_root)
    return load_citypersons_mat(ann_file, image_root=image_root)


def to_mmdet_data_info(record: dict) -> dict:
    """One reader record -> mmdet's data info (the ignore rule of the module docstring)."""
    instances = []
    for ann in record["annotations"]:
        x, y, w, h = ann["bbox"]
        if w <= 0 or h <= 0:
            continue  # groups with empty boxes: nothing to learn or to ignore
        instances.append({"bbox": [x, y, x + w, y + h], "bbox_label": 0,
                          "ignore_flag": int(bool(ann["ignore"]))})
    return {"img_path": record["file_name"], "img_id": record["image_id"],
            "height": record["height"], "width": record["width"], "instances": instances}


@DATASETS.register_module()
class CityPersonsDataset(BaseDetDataset):
    """CityPersons pedestrians (see the module docstring).

    Args:
        ann_file: ``annotations/anno_train.mat`` / ``anno_val.mat`` / ``val_gt.json``, relative
            to ``data_root``.
        data_root: the folder holding ``annotations/`` and ``leftImg8bit/``.
        **kwargs: BaseDetDataset's (pipeline, filter_cfg, test_mode, ...).
    """

    METAINFO = {"classes": ("person",), "palette": [(220, 20, 60)]}

    def load_data_list(self) -> list[dict]:
        image_root = self.data_root or osp.dirname(osp.dirname(self.ann_file))
        data_list = [to_mmdet_data_info(r) for r in read_citypersons(self.ann_file, image_root)]
        missing = next((d["img_path"] for d in data_list if not osp.isfile(d["img_path"])), None)
        if missing is not None:
            raise FileNotFoundError(f"CityPersons: image {missing} of {self.ann_file} does not "
                                    f"exist; expected {LAYOUT}.")
        return data_list

    def filter_data(self) -> list[dict]:
        """mmdet's ``filter_cfg``: ``filter_empty_gt`` drops images without a pedestrian to learn.

        An image holding only ignored boxes has nothing to learn either, so it counts as empty.
        """
        if self.test_mode or not (self.filter_cfg or {}).get("filter_empty_gt", False):
            return self.data_list
        min_size = (self.filter_cfg or {}).get("min_size", 0)
        return [d for d in self.data_list
                if any(not i["ignore_flag"] and min(i["bbox"][2] - i["bbox"][0],
                                                    i["bbox"][3] - i["bbox"][1]) >= min_size
                       for i in d["instances"])]


@DATASETS.register_module()
class SyntheticCityPersonsDataset(CityPersonsDataset):
    """CityPersonsDataset over the generated synthetic CityPersons (see the module docstring).

    Args:
        synthetic: ``dict(num_train=8, num_val=4, seed=0, statistics='learnable')``, the
            generator's arguments; ``data_root`` holding another generation is refused.
        **kwargs: CityPersonsDataset's.
    """

    _GENERATOR_KEYS = ("num_train", "num_val", "seed", "statistics")

    def __init__(self, synthetic: dict | None = None, **kwargs) -> None:
        synthetic = {"statistics": "learnable", **dict(synthetic or {})}
        unknown = sorted(set(synthetic) - set(self._GENERATOR_KEYS))
        if unknown:
            raise ValueError(f"SyntheticCityPersonsDataset: unknown synthetic keys {unknown}; "
                             f"allowed {list(self._GENERATOR_KEYS)}.")
        if synthetic["statistics"] not in STATISTICS_VARIANTS:
            raise ValueError(f"SyntheticCityPersonsDataset: synthetic.statistics must be one of "
                             f"{STATISTICS_VARIANTS}, got {synthetic['statistics']!r}.")
        if not kwargs.get("data_root"):
            raise ValueError("SyntheticCityPersonsDataset needs data_root (where to generate).")
        ensure_synthetic_citypersons(kwargs["data_root"], **synthetic)
        super().__init__(**kwargs)
