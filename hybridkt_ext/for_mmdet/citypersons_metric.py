"""``CityPersonsMetric``: the benchmark's log-average miss rate MR^-2 as an mmdet metric.

The detections of the evaluated images (mmdet rescales them to the original image) are scored
by the project's evaluator, ``hybridkt_ext.evaluation.evaluate_miss_rate``, the same function
the detectron2 adapter uses, against the annotation file itself: the setups filter on the
full-box height and the visibility ratio, which mmdet's data samples do not carry. Every image
of the file counts, as in the official script; one without a result has no detections. Results are
percent, lower is better, one key per setup (``citypersons/MR2_Reasonable``...).
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from mmengine.evaluator import BaseMetric
from mmengine.logging import MMLogger
from mmdet.registry import METRICS

from hybridkt_ext.core import write_text_atomically
from hybridkt_ext.evaluation.miss_rate import (DEFAULT_SETUPS, ZERO_MISS_RATE_RULES, EvalSetup,
                                               evaluate_miss_rate)

from .citypersons_dataset import read_citypersons

PERSON_LABEL = 0  # the only class of CityPersonsDataset


@METRICS.register_module()
class CityPersonsMetric(BaseMetric):
    """MR^-2 over the setups (the benchmark's Reasonable, Reasonable-small, Heavy, All).

    Args:
        ann_file: the split's annotation file (``.mat`` or ``val_gt.json``), as the dataset's.
        data_root: prepended to a relative ``ann_file`` (as mmengine does for datasets).
        setups: the subsets to score, the benchmark's four by default.
        zero_miss_rate: "official" (the CityPersons script's arithmetic, comparable with
            published numbers) or "caltech_floor"; see ``evaluation.miss_rate``.
        outfile: also write the detections there, as COCO-style JSON (category 1), the input
            of the official script.
        collect_device, prefix: BaseMetric's (default prefix ``citypersons``).
    """

    default_prefix = "citypersons"

    def __init__(self, ann_file: str, data_root: str = "",
                 setups: Sequence[EvalSetup] = DEFAULT_SETUPS, zero_miss_rate: str = "official",
                 outfile: str | None = None, collect_device: str = "cpu",
                 prefix: str | None = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        if zero_miss_rate not in ZERO_MISS_RATE_RULES:
            raise ValueError(f"CityPersonsMetric: zero_miss_rate={zero_miss_rate!r} must be one "
                             f"of {ZERO_MISS_RATE_RULES}.")
        path = Path(ann_file)
        self.ann_file = path if path.is_absolute() or not data_root else Path(data_root) / path
        self.image_root = Path(data_root) if data_root else self.ann_file.parent.parent
        self.setups = tuple(setups)
        self.zero_miss_rate = zero_miss_rate
        self.outfile = outfile

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        for sample in data_samples:
            pred = sample["pred_instances"]
            keep = (pred["labels"] == PERSON_LABEL).cpu().numpy()
            boxes = pred["bboxes"].cpu().numpy().astype(np.float64)[keep]
            scores = pred["scores"].cpu().numpy().astype(np.float64)[keep]
            xywh = np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1)
            self.results.append((sample["img_id"], np.concatenate([xywh, scores[:, None]], 1)))

    def compute_metrics(self, results: list) -> dict[str, float]:
        detections = dict(results)
        records = read_citypersons(self.ann_file, self.image_root)
        unknown = sorted(set(detections) - {r["image_id"] for r in records})[:5]
        if unknown:
            raise ValueError(f"CityPersonsMetric: detections for image ids {unknown} that "
                             f"{self.ann_file} does not hold; ann_file must be the evaluated "
                             "dataset's.")
        # Every ground-truth image counts in FPPI and recall, as in the official script: an
        # image the loader dropped is an image without detections, never one fewer image.
        absent = sum(r["image_id"] not in detections for r in records)
        if absent:
            MMLogger.get_current_instance().warning(
                "CityPersonsMetric: %d of the %d images of %s have no result; they count as "
                "images without detections.", absent, len(records), self.ann_file)
        if self.outfile:
            rows = [{"image_id": k, "bbox": d[:4].tolist(), "score": float(d[4]),
                     "category_id": 1} for k, v in detections.items() for d in v]
            write_text_atomically(self.outfile, json.dumps(rows), overwrite=True)
        miss_rates = evaluate_miss_rate(records, detections, self.setups,
                                        zero_miss_rate=self.zero_miss_rate)
        metrics = {f"MR2_{name}": 100.0 * mr for name, mr in miss_rates.items()}
        MMLogger.get_current_instance().info(
            "CityPersons MR^-2 (%%, lower is better) on %d images: %s", len(records),
            ", ".join(f"{k} {v:.2f}" for k, v in metrics.items()))
        return metrics
