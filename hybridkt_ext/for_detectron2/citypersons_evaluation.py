"""``CityPersonsEvaluator``: the benchmark's log-average miss rate MR^-2 (the paper's Table 4)."""
from __future__ import annotations

import itertools
import json
import logging
import os
from collections import OrderedDict
from typing import Any

import numpy as np
from detectron2.data import DatasetCatalog
from detectron2.evaluation import DatasetEvaluator
from detectron2.utils import comm

from ..core import write_text_atomically
from ..evaluation.miss_rate import (DEFAULT_SETUPS, ZERO_MISS_RATE_RULES, EvalSetup,
                                   evaluate_miss_rate)

logger = logging.getLogger(__name__)

# Contiguous id of "person" in the registered CityPersons datasets.
PERSON_CLASS = 0


class CityPersonsEvaluator(DatasetEvaluator):
    """Collects person detections and scores them with ``evaluate_miss_rate``.

    Detections are in the original image size (detectron2's postprocess rescales them to the
    record's height/width), ground truth is the registered dataset's records, ignore regions and
    the setups' height/visibility filters included. Every record counts in the FPPI denominator
    (the official one), processed or not. Results are percent, lower is better.

    Args:
        dataset_name: a registered CityPersons dataset.
        output_dir: where to write ``citypersons_detections.json`` (optional).
        distributed: gather detections from all processes.
        setups: the subsets to score (the benchmark's four by default).
        zero_miss_rate: "official" (the CityPersons script's arithmetic, comparable with
            published numbers) or "caltech_floor"; see ``evaluation.miss_rate``.
    """

    def __init__(self, dataset_name: str, output_dir: str | None = None,
                 distributed: bool = True,
                 setups: tuple[EvalSetup, ...] = DEFAULT_SETUPS,
                 zero_miss_rate: str = "official") -> None:
        if zero_miss_rate not in ZERO_MISS_RATE_RULES:
            raise ValueError(f"zero_miss_rate={zero_miss_rate!r} must be one of "
                             f"{ZERO_MISS_RATE_RULES}.")
        self.zero_miss_rate = zero_miss_rate
        self.dataset_name = dataset_name
        self.output_dir = output_dir
        self.distributed = distributed
        self.setups = setups
        self._detections: dict[Any, np.ndarray] = {}

    def reset(self) -> None:
        self._detections = {}

    def process(self, inputs: list[dict], outputs: list[dict]) -> None:
        for inp, out in zip(inputs, outputs):
            inst = out["instances"].to("cpu")
            keep = inst.pred_classes == PERSON_CLASS
            boxes = inst.pred_boxes.tensor[keep].numpy().astype(np.float64)
            scores = inst.scores[keep].numpy().astype(np.float64)
            xywh = np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1)
            self._detections[inp["image_id"]] = np.concatenate([xywh, scores[:, None]], axis=1)

    def evaluate(self) -> OrderedDict:
        detections = self._detections
        if self.distributed:
            comm.synchronize()
            parts = comm.gather(detections, dst=0)
            if not comm.is_main_process():
                return OrderedDict()
            detections = dict(itertools.chain.from_iterable(p.items() for p in parts))
        gt_records = DatasetCatalog.get(self.dataset_name)
        # Every registered image counts in FPPI and recall, as in the official script; one the
        # loader never produced is an image without detections.
        absent = sum(r["image_id"] not in detections for r in gt_records)
        if absent:
            logger.warning("CityPersons: %d of the %d images of %s have no result; they count "
                           "as images without detections.", absent, len(gt_records),
                           self.dataset_name)
        if self.output_dir:
            os.makedirs(self.output_dir, exist_ok=True)
            rows = [{"image_id": k, "bbox": d[:4].tolist(), "score": float(d[4]),
                     "category_id": 1} for k, v in detections.items() for d in v]
            write_text_atomically(os.path.join(self.output_dir, "citypersons_detections.json"),
                                  json.dumps(rows), overwrite=True)
        miss_rates = evaluate_miss_rate(gt_records, detections, self.setups,
                                        zero_miss_rate=self.zero_miss_rate)
        results = {f"MR2_{name}": 100.0 * mr for name, mr in miss_rates.items()}
        logger.info("CityPersons MR^-2 (%%, lower is better) on %s: %s", self.dataset_name,
                    ", ".join(f"{k} {v:.2f}" for k, v in results.items()))
        return OrderedDict(citypersons=results)
