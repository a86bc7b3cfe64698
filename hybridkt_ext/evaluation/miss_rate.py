"""Log-average miss rate MR^-2 of the CityPersons benchmark (Zhang et al., CVPR 2017), in numpy.

Reproduces the official evaluation, ``eval_MR_multisetup.py`` of the CityPersons repository (a
pycocotools ``COCOeval`` adapted to the Caltech protocol of Dollar et al., TPAMI 2012, whose
``bbGt.m``/``dbEval.m`` it follows), step by step:

1. Ground truth: a box is ignored when flagged ``ignore`` or when its full-box height or its
   visibility ratio lies outside the setup's closed ranges.
2. Detections, per image: stable sort by descending score, keep the best 1000, then drop those
   whose height lies outside ``[h_min / 1.25, h_max * 1.25)``; dropped ones never count.
3. Greedy matching at IoU 0.5 in score order. A detection takes the unmatched non-ignored box of
   highest IoU (ties: the later box). Failing that, it takes the first ignored box whose overlap,
   measured as intersection over *detection* area, reaches 0.5; ignored boxes can absorb any
   number of detections, and a detection on an ignored box is itself ignored.
4. All images pooled: stable sort by descending score (images in ascending id order, as the
   official code concatenates them); over non-ignored detections, recall = TP / #non-ignored gt
   and FPPI = FP / #images (every ground-truth image, with or without people).
5. Recall is read at nine FPPI reference points: the last detection whose FPPI does not exceed
   the point. MR^-2 = exp(mean(log(1 - recall))), as the official script computes it: once
   any of the nine miss rates is 0, log(0) makes the result exactly 0 ("0.00%").

Deliberate differences from the official Python script, none of which changes a printed result
on the 500 validation images:

* Before the first non-ignored detection recall is 0 (Caltech's ``compRoc`` prepends the point
  (-inf, 0)). The Python script indexes ``recall[-1]`` there, i.e. the *final* recall; that only
  happens when the top-scoring detection is a false positive and there are fewer than 100 images
  (with 100 or more images that detection's FPPI, 1 / #images, is at most the first point, 0.01).
* Caltech's MATLAB ``dbEval`` floors each miss rate at 1e-10 instead; that is the option
  ``zero_miss_rate="caltech_floor"``. The two differ by up to several points whenever one
  sampled miss rate is 0 but the others are not (300 top-scored false positives, then every
  pedestrian found: 0.00% officially, 7.74% floored), so published CityPersons numbers, which
  come from the official script, compare with the default. The official case is logged.

Each setup starts from the ground truth as given, as the official ``eval_demo.py`` ensures by
reloading it per setup (the script's ``_prepare`` writes each setup's ignore flags into it).

Results are fractions in [0, 1]; the paper and the official script print 100x that (percent).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "DEFAULT_SETUPS",
    "EvalSetup",
    "FPPI_REFERENCE_POINTS",
    "evaluate_miss_rate",
    "log_average_miss_rate",
    "miss_rate_curve",
    "pairwise_overlaps",
]

IOU_THRESHOLD = 0.5
# Detections are kept when their height is within the setup's range widened by this factor, so
# that a box slightly smaller than the smallest counted person can still match it (``expFilter``).
HEIGHT_EXPANSION = 1.25
MAX_DETECTIONS_PER_IMAGE = 1000
# logspace(-2, 0, 9) rounded to four decimals, the exact constants of the official script.
FPPI_REFERENCE_POINTS = np.array(
    [0.0100, 0.0178, 0.0316, 0.0562, 0.1000, 0.1778, 0.3162, 0.5623, 1.0000]
)
logger = logging.getLogger(__name__)
MIN_MISS_RATE = 1e-10  # Caltech's floor (zero_miss_rate="caltech_floor")
ZERO_MISS_RATE_RULES = ("official", "caltech_floor")
# Detections given as COCO-style dicts are scored for this category only, like the official
# script (whose ground truth stores every box, ignored or not, as category 1).
PEDESTRIAN_CATEGORY = 1


@dataclass(frozen=True)
class EvalSetup:
    """One evaluation subset of the benchmark.

    Attributes:
        name: label of the subset, the key of the result (the official ``SetupLbl``).
        height_range: closed range of full-box heights in pixels that count; boxes outside are
            ignored, detections outside the range widened by ``HEIGHT_EXPANSION`` are dropped.
        visibility_range: closed range of visible-area / full-area ratios that count.
    """

    name: str
    height_range: tuple[float, float]
    visibility_range: tuple[float, float]


DEFAULT_SETUPS: tuple[EvalSetup, ...] = (
    EvalSetup("Reasonable", (50, math.inf), (0.65, math.inf)),
    EvalSetup("Reasonable_small", (50, 75), (0.65, math.inf)),
    EvalSetup("Reasonable_occ=heavy", (50, math.inf), (0.2, 0.65)),
    EvalSetup("All", (20, math.inf), (0.2, math.inf)),
)

Detections = Mapping[Any, Any] | Sequence[Mapping[str, Any]]


def pairwise_overlaps(
    det_boxes: np.ndarray, gt_boxes: np.ndarray, gt_ignore: np.ndarray
) -> np.ndarray:
    """Overlap of each detection with each ground-truth box, boxes as ``[x1, y1, w, h]``.

    IoU for regular boxes; intersection over detection area for ignored ones, so a detection
    inside a large ignore region (a crowd, a group) is absorbed by it.

    Args:
        det_boxes: (D, 4) detections.
        gt_boxes: (G, 4) ground truth.
        gt_ignore: (G,) bool, True where the box is ignored.

    Returns:
        (D, G) overlaps; 0 where the boxes do not intersect.
    """
    dx1, dy1, dw, dh = (det_boxes[:, i : i + 1] for i in range(4))
    gx1, gy1, gw, gh = (gt_boxes[None, :, i] for i in range(4))
    inter_w = np.minimum(dx1 + dw, gx1 + gw) - np.maximum(dx1, gx1)
    inter_h = np.minimum(dy1 + dh, gy1 + gh) - np.maximum(dy1, gy1)
    inter = inter_w * inter_h
    det_area = dw * dh
    # Same operation order as the reference, (det + gt) - inter, to keep the comparisons with
    # 0.5 bit-identical on boundary cases.
    union = np.where(gt_ignore[None, :], det_area, det_area + gw * gh - inter)
    hit = (inter_w > 0) & (inter_h > 0)
    return np.where(hit, inter / np.where(hit, union, 1.0), 0.0)


def _match_image(overlaps: np.ndarray, gt_ignore: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Greedy matching of score-sorted detections (rows) to ground truth (columns).

    Returns:
        ``matched`` and ``ignored`` (D,) bool flags: a detection is a true positive when matched
        and not ignored, a false positive when neither.
    """
    num_dets = overlaps.shape[0]
    matched = np.zeros(num_dets, dtype=bool)
    ignored = np.zeros(num_dets, dtype=bool)
    gt_taken = np.zeros(overlaps.shape[1], dtype=bool)
    reaches = overlaps >= IOU_THRESHOLD
    # Detections that reach no box at all are false positives; only the others need the loop.
    for d in np.flatnonzero(reaches.any(axis=1)):
        candidates = reaches[d] & ~gt_ignore & ~gt_taken
        if candidates.any():
            row = np.where(candidates, overlaps[d], -1.0)
            # The reference replaces its best match on ">=", so among equal overlaps the last wins.
            best = np.flatnonzero(row == row.max())[-1]
            gt_taken[best] = True
            matched[d] = True
        elif (reaches[d] & gt_ignore).any():
            matched[d] = ignored[d] = True
    return matched, ignored


def _as_detection_arrays(detections: Detections, image_ids: set) -> dict[Any, np.ndarray]:
    """Detections as ``{image_id: (N, 5) float64 [x1, y1, w, h, score]}``."""
    if isinstance(detections, Mapping):
        arrays = {
            image_id: np.asarray(boxes, dtype=np.float64).reshape(-1, 5)
            for image_id, boxes in detections.items()
        }
    else:
        rows: dict[Any, list[list[float]]] = {}
        for det in detections:
            if det.get("category_id", PEDESTRIAN_CATEGORY) == PEDESTRIAN_CATEGORY:
                rows.setdefault(det["image_id"], []).append([*det["bbox"], det["score"]])
        arrays = {key: np.asarray(value, dtype=np.float64) for key, value in rows.items()}
    unknown = set(arrays) - image_ids
    if unknown:
        # pycocotools' loadRes refuses such results too; a silent drop would hide an id mismatch.
        raise ValueError(
            f"detections for images absent from the ground truth: {sorted(unknown)[:5]}"
        )
    return arrays


def _validated_detections(
    gt_records: Sequence[Mapping[str, Any]], detections: Detections
) -> dict[Any, np.ndarray]:
    """Detections as arrays, after checking the ground truth's image ids are unique."""
    image_ids = [record["image_id"] for record in gt_records]
    if len(set(image_ids)) != len(image_ids):
        raise ValueError("duplicate image_id in gt_records")
    return _as_detection_arrays(detections, set(image_ids))


def _curve(
    gt_records: Sequence[Mapping[str, Any]],
    dets_by_image: Mapping[Any, np.ndarray],
    setup: EvalSetup,
) -> tuple[np.ndarray, np.ndarray] | None:
    """``(fppi, miss_rate)`` of one setup, or None when it has no non-ignored ground truth."""
    h_min, h_max = setup.height_range
    v_min, v_max = setup.visibility_range
    scores, matched, ignored = [], [], []
    num_positive = 0
    for record in sorted(gt_records, key=lambda r: r["image_id"]):
        anns = record["annotations"]
        gt_boxes = np.array([a["bbox"] for a in anns], dtype=np.float64).reshape(-1, 4)
        height = np.array([a["height"] for a in anns], dtype=np.float64)
        visibility = np.array([a["vis_ratio"] for a in anns], dtype=np.float64)
        gt_ignore = np.array([bool(a.get("ignore", 0)) for a in anns], dtype=bool)
        gt_ignore |= (
            (height < h_min) | (height > h_max) | (visibility < v_min) | (visibility > v_max)
        )
        num_positive += int((~gt_ignore).sum())

        dets = dets_by_image.get(record["image_id"], np.zeros((0, 5)))
        dets = dets[np.argsort(-dets[:, 4], kind="stable")[:MAX_DETECTIONS_PER_IMAGE]]
        det_height = dets[:, 3]
        keep = (det_height >= h_min / HEIGHT_EXPANSION) & (det_height < h_max * HEIGHT_EXPANSION)
        dets = dets[keep]

        overlaps = pairwise_overlaps(dets[:, :4], gt_boxes, gt_ignore)
        image_matched, image_ignored = _match_image(overlaps, gt_ignore)
        scores.append(dets[:, 4])
        matched.append(image_matched)
        ignored.append(image_ignored)

    if num_positive == 0:
        return None
    # Pooled in the official order: images by ascending id, then a stable sort by score.
    order = np.argsort(-np.concatenate(scores), kind="stable")
    counted = ~np.concatenate(ignored)[order]
    matched_counted = np.concatenate(matched)[order][counted]
    fppi = np.cumsum(~matched_counted) / len(gt_records)
    return fppi, 1.0 - np.cumsum(matched_counted) / num_positive


def miss_rate_curve(
    gt_records: Sequence[Mapping[str, Any]], detections: Detections, setup: EvalSetup
) -> tuple[np.ndarray, np.ndarray] | None:
    """Miss rate against FPPI of one setup, one point per non-ignored detection in score order.

    Args:
        gt_records: records as produced by ``hybridkt_ext.datasets.citypersons`` (each needs
            ``image_id`` and ``annotations`` with ``bbox``, ``height``, ``vis_ratio``, ``ignore``).
        detections: see ``evaluate_miss_rate``.
        setup: the subset to score.

    Returns:
        ``(fppi, miss_rate)``, two (K,) arrays, or None when the setup has no non-ignored
        ground truth (the miss rate is undefined).

    Raises:
        ValueError: on duplicate ground-truth image ids or detections for unknown images.
    """
    return _curve(gt_records, _validated_detections(gt_records, detections), setup)


def sampled_miss_rates(fppi: np.ndarray, miss_rate: np.ndarray) -> np.ndarray:
    """The miss rate at each of ``FPPI_REFERENCE_POINTS``: that of the last curve point whose
    FPPI does not exceed it, or 1 (nothing found yet) when there is none."""
    index = np.searchsorted(fppi, FPPI_REFERENCE_POINTS, side="right") - 1
    padded = np.concatenate([[1.0], miss_rate])
    return padded[index + 1]


def log_average_miss_rate(fppi: np.ndarray, miss_rate: np.ndarray,
                          zero_miss_rate: str = "official") -> float:
    """MR^-2: geometric mean of the miss rate sampled at ``FPPI_REFERENCE_POINTS``.

    Args:
        fppi: (K,) non-decreasing false positives per image.
        miss_rate: (K,) miss rate at the same curve points.
        zero_miss_rate: "official" (the CityPersons script: a sampled miss rate of 0 makes
            the result 0) or "caltech_floor" (Caltech's dbEval: miss rates floored at 1e-10).

    Returns:
        The log-average miss rate as a fraction.

    Raises:
        ValueError: an unknown ``zero_miss_rate`` rule.
    """
    if zero_miss_rate not in ZERO_MISS_RATE_RULES:
        raise ValueError(f"zero_miss_rate={zero_miss_rate!r} must be one of "
                         f"{ZERO_MISS_RATE_RULES}.")
    sampled = sampled_miss_rates(fppi, miss_rate)
    if zero_miss_rate == "caltech_floor":
        sampled = np.maximum(MIN_MISS_RATE, sampled)
    elif not sampled.all():
        return 0.0  # exp(mean(log(...))) with a log(0) term, without numpy's warning
    return float(np.exp(np.mean(np.log(sampled))))


def evaluate_miss_rate(
    gt_records: Sequence[Mapping[str, Any]],
    detections: Detections,
    setups: Iterable[EvalSetup] = DEFAULT_SETUPS,
    zero_miss_rate: str = "official",
) -> dict[str, float]:
    """Log-average miss rate MR^-2 of pedestrian detections, per setup, as the benchmark defines it.

    Args:
        gt_records: one record per evaluated image (``hybridkt_ext.datasets.citypersons``
            layout); every listed image counts in the FPPI denominator, with or without people.
        detections: either ``{image_id: array-like (N, 5) [x1, y1, w, h, score]}`` (all taken as
            pedestrians; absent images have no detections), or COCO-style result dicts with
            ``image_id``, ``bbox`` ``[x1, y1, w, h]``, ``score`` and optionally ``category_id``
            (only category 1 is scored, as in the official script).
        setups: the subsets to score, the benchmark's four by default.
        zero_miss_rate: how a sampled miss rate of 0 counts (see ``log_average_miss_rate``);
            the official rule is logged when it decides a result.

    Returns:
        ``{setup.name: MR^-2}`` as fractions in [0, 1] (the paper prints percent); NaN for a
        setup without any non-ignored ground truth (the official script prints -100%).

    Raises:
        ValueError: on duplicate ground-truth image ids or detections for unknown images.
    """
    dets_by_image = _validated_detections(gt_records, detections)
    results = {}
    for setup in setups:
        curve = _curve(gt_records, dets_by_image, setup)
        if curve is None:
            results[setup.name] = math.nan
            continue
        results[setup.name] = log_average_miss_rate(*curve, zero_miss_rate=zero_miss_rate)
        zeros = int((sampled_miss_rates(*curve) == 0).sum())
        if zero_miss_rate == "official" and 0 < zeros:
            logger.warning(
                "MR^-2 %s: %d of the 9 sampled miss rates are 0, so the official arithmetic "
                "(log 0) gives 0.00%%; Caltech's floor would give %.2f%% "
                "(zero_miss_rate='caltech_floor').", setup.name, zeros,
                100 * log_average_miss_rate(*curve, zero_miss_rate="caltech_floor"))
    return results
