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

Differences from the official Python script. On input both accept, exactly one case gives
another number, and no printed result on the 500 validation images changes:

* Before the first non-ignored detection recall is 0 (Caltech's ``compRoc`` prepends the point
  (-inf, 0)). The Python script indexes ``recall[-1]`` there, i.e. the *final* recall; that only
  happens when the top-scoring detection is a false positive and there are fewer than 100 images
  (with 100 or more images that detection's FPPI, 1 / #images, is at most the first point, 0.01).

A setup without any non-ignored ground truth is NaN here; the official script stores -1 and
prints -100%.

Input the official script scores into meaningless numbers, or fails on with a traceback, is
refused here with a one-line ``InvalidAnnotationError`` naming the image and the row:

* a per-image detection array that is not (N, 5) (a (5, N) array would be read column-wise);
* NaN or infinite coordinates, negative widths or heights (detections and ground truth), NaN
  scores, NaN/inf ground-truth ``height``/``vis_ratio``. For a box with a NaN coordinate the
  official overlap is NaN, which its ``<`` comparisons take as a *match*; ``pairwise_overlaps``
  here gives 0 (no overlap), but no such box reaches it;
* COCO-style results whose ``bbox`` has other than 4 numbers, whose ``score`` is missing, null
  or not a number, or without ``category_id`` (the official ``loadRes`` fails on the last);
* detections for images the ground truth does not list (``loadRes`` asserts), ground truth
  listing an image twice.

The setups' "no upper bound" is the official ``1e5 ** 2`` (``NO_UPPER_BOUND``), not infinity, so
boxes taller than 1e10 px (or visibility ratios above 1e10) are ignored and detections of
height >= 1.25e10 dropped, as there. Caltech's MATLAB ``dbEval`` floors each miss rate at 1e-10
instead of the Python script's log(0); that is the option ``zero_miss_rate="caltech_floor"``.
The two differ by up to several points whenever one sampled miss rate is 0 but the others are
not (300 top-scored false positives, then every pedestrian found: 0.00% officially, 7.74%
floored), so published CityPersons numbers, which come from the official script, compare with
the default. The official case is logged.

Each setup starts from the ground truth as given, as the official ``eval_demo.py`` ensures by
reloading it per setup (the script's ``_prepare`` writes each setup's ignore flags into it).

Results are fractions in [0, 1]; the paper and the official script print 100x that (percent).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .validation import InvalidAnnotationError, box_problem, is_number, is_number_row

__all__ = [
    "DEFAULT_SETUPS",
    "EvalSetup",
    "FPPI_REFERENCE_POINTS",
    "InvalidAnnotationError",
    "NO_UPPER_BOUND",
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
# The official script's "no upper bound" (its HtRng and VisRng), kept rather than infinity so
# that absurd boxes taller than 1e10 px are ignored, and detections dropped, as there.
NO_UPPER_BOUND = 1e5**2
DETECTION_ROW = "[x1, y1, w, h, score] with finite coordinates, w, h >= 0 and a numeric score"


@dataclass(frozen=True)
class EvalSetup:
    """One evaluation subset of the benchmark.

    Attributes:
        name: label of the subset, the key of the result (the official ``SetupLbl``).
        height_range: closed range of full-box heights in pixels that count; boxes outside are
            ignored, detections outside the range widened by ``HEIGHT_EXPANSION`` are dropped.
            ``NO_UPPER_BOUND`` is the official script's upper end for "unbounded".
        visibility_range: closed range of visible-area / full-area ratios that count.
    """

    name: str
    height_range: tuple[float, float]
    visibility_range: tuple[float, float]


DEFAULT_SETUPS: tuple[EvalSetup, ...] = (
    EvalSetup("Reasonable", (50, NO_UPPER_BOUND), (0.65, NO_UPPER_BOUND)),
    EvalSetup("Reasonable_small", (50, 75), (0.65, NO_UPPER_BOUND)),
    EvalSetup("Reasonable_occ=heavy", (50, NO_UPPER_BOUND), (0.2, 0.65)),
    EvalSetup("All", (20, NO_UPPER_BOUND), (0.2, NO_UPPER_BOUND)),
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


@dataclass(frozen=True)
class _ImageTruth:
    """One image's ground truth as arrays, checked once for all setups."""

    image_id: Any
    boxes: np.ndarray  # (G, 4) [x1, y1, w, h]
    height: np.ndarray  # (G,)
    visibility: np.ndarray  # (G,)
    ignore: np.ndarray  # (G,) bool, the given flags before any setup's filter


def _image_truth(record: Mapping[str, Any]) -> _ImageTruth:
    """One record's annotations as arrays; refuses boxes and values that cannot be scored."""
    image_id, anns = record["image_id"], record["annotations"]
    where = f"gt_records: image {image_id!r}, annotation"
    for row, ann in enumerate(anns):
        bbox, values = ann["bbox"], (ann["height"], ann["vis_ratio"])
        if not is_number_row(bbox, 4):
            raise InvalidAnnotationError(f"{where} {row}: bbox {bbox!r} is not 4 numbers; give "
                                         "[x1, y1, w, h].")
        if not all(is_number(v) and math.isfinite(v) for v in values):
            raise InvalidAnnotationError(f"{where} {row}: height, vis_ratio = {values!r}; give "
                                         "finite numbers (the box height and visible fraction).")
    boxes = np.array([a["bbox"] for a in anns], dtype=np.float64).reshape(-1, 4)
    bad = box_problem(boxes)
    if bad is not None:
        raise InvalidAnnotationError(f"{where} {bad[0]}: {bad[1]}; boxes are [x1, y1, w, h] "
                                     "with finite coordinates and w, h >= 0.")
    return _ImageTruth(
        image_id,
        boxes,
        np.array([a["height"] for a in anns], dtype=np.float64),
        np.array([a["vis_ratio"] for a in anns], dtype=np.float64),
        np.array([bool(a.get("ignore", 0)) for a in anns], dtype=bool),
    )


def _check_detection_rows(dets: np.ndarray, name: Callable[[int], str]) -> None:
    """Refuses non-finite or negative-size boxes and NaN scores; ``name(i)`` names row i."""
    bad = box_problem(dets[:, :4])
    if bad is not None:
        raise InvalidAnnotationError(f"{name(bad[0])}: {bad[1]}; rows are {DETECTION_ROW}.")
    nan_score = np.flatnonzero(np.isnan(dets[:, 4]))
    if nan_score.size:
        # A NaN score sorts last, so a NaN-scored false positive would cost nothing.
        raise InvalidAnnotationError(f"{name(nan_score[0])}: the score is NaN; rows are "
                                     f"{DETECTION_ROW}.")


def _detection_array(image_id: Any, boxes: Any) -> np.ndarray:
    """One image's ``(N, 5)`` array of the mapping form, checked (no reshape: a (5, N) array
    reshaped to (N, 5) would pair coordinates of different detections)."""
    where = f"detections[{image_id!r}]"
    try:
        array = np.asarray(boxes)
    except ValueError:  # ragged rows
        array = None
    if array is not None and array.shape == (0,):
        return np.zeros((0, 5))
    if array is None or array.ndim != 2 or array.shape[1] != 5:
        shape = "rows of unequal length" if array is None else f"shape {array.shape}"
        raise InvalidAnnotationError(f"{where}: {shape}; give one row per detection, shape (N, "
                                     f"5), rows {DETECTION_ROW} (transpose a (5, N) array).")
    if array.dtype.kind not in "iuf":
        # The given rows, not the array: one string turns every value of the array into one.
        given = array if isinstance(boxes, np.ndarray) else boxes
        row = next(i for i, r in enumerate(given) if not all(map(is_number, r)))
        raise InvalidAnnotationError(f"{where} row {row}: {list(given[row])!r} holds a "
                                     f"non-number; rows are {DETECTION_ROW}.")
    array = array.astype(np.float64)
    _check_detection_rows(array, lambda row: f"{where} row {row}")
    return array


def _coco_detection_rows(detections: Sequence[Any]) -> dict[Any, np.ndarray]:
    """COCO-style result dicts as per-image arrays of pedestrian detections, checked."""
    detections = list(detections)  # read twice below (an iterator would be empty the second time)

    def name(k: int) -> str:
        return f"detections row {k} (image {detections[k]['image_id']!r})"

    for k, det in enumerate(detections):
        if not isinstance(det, Mapping) or "image_id" not in det:
            problem = "has no image_id" if isinstance(det, Mapping) else "is not a dict"
            raise InvalidAnnotationError(
                f"detections row {k}: {det!r} {problem}; give COCO-style results "
                "{image_id, bbox: [x1, y1, w, h], score, category_id}.")
        if "category_id" not in det:
            raise InvalidAnnotationError(f"{name(k)} has no category_id; give 1 for pedestrians "
                                         "(the official script fails without it).")
        if not is_number_row(det.get("bbox"), 4):
            raise InvalidAnnotationError(f"{name(k)}: bbox {det.get('bbox')!r} is not 4 numbers; "
                                         "give [x1, y1, w, h] and the score as 'score'.")
        if not is_number(det.get("score")):
            raise InvalidAnnotationError(f"{name(k)}: score {det.get('score')!r} is not a "
                                         "number; give each result a numeric score.")
    # Every row is checked, scored category or not: a broken row means a broken file.
    table = np.array([[*det["bbox"], det["score"]] for det in detections],
                     dtype=np.float64).reshape(-1, 5)
    _check_detection_rows(table, name)
    rows: dict[Any, list[int]] = {}
    for k, det in enumerate(detections):
        if det["category_id"] == PEDESTRIAN_CATEGORY:
            rows.setdefault(det["image_id"], []).append(k)
    return {key: table[ks] for key, ks in rows.items()}


def _validated_inputs(
    gt_records: Sequence[Mapping[str, Any]], detections: Detections
) -> tuple[list[_ImageTruth], dict[Any, np.ndarray]]:
    """Ground truth by ascending image id and detections as ``{image_id: (N, 5) float64
    [x1, y1, w, h, score]}``, both checked (see the module docstring for what is refused)."""
    image_ids = [record["image_id"] for record in gt_records]
    if len(set(image_ids)) != len(image_ids):
        raise InvalidAnnotationError("gt_records: duplicate image_id; list each image once.")
    truths = [_image_truth(r) for r in sorted(gt_records, key=lambda r: r["image_id"])]
    if isinstance(detections, Mapping):
        arrays = {key: _detection_array(key, boxes) for key, boxes in detections.items()}
    else:
        arrays = _coco_detection_rows(detections)
    unknown = set(arrays) - set(image_ids)
    if unknown:
        # pycocotools' loadRes refuses such results too; a silent drop would hide an id mismatch.
        raise InvalidAnnotationError(
            f"detections for images absent from the ground truth: {sorted(unknown)[:5]}; "
            "detections and ground truth must use the same image ids.")
    return truths, arrays


def _curve(
    truths: Sequence[_ImageTruth],
    dets_by_image: Mapping[Any, np.ndarray],
    setup: EvalSetup,
) -> tuple[np.ndarray, np.ndarray] | None:
    """``(fppi, miss_rate)`` of one setup, or None when it has no non-ignored ground truth."""
    h_min, h_max = setup.height_range
    v_min, v_max = setup.visibility_range
    scores, matched, ignored = [], [], []
    num_positive = 0
    for truth in truths:
        height, visibility = truth.height, truth.visibility
        gt_ignore = truth.ignore | (
            (height < h_min) | (height > h_max) | (visibility < v_min) | (visibility > v_max)
        )
        num_positive += int((~gt_ignore).sum())

        dets = dets_by_image.get(truth.image_id, np.zeros((0, 5)))
        dets = dets[np.argsort(-dets[:, 4], kind="stable")[:MAX_DETECTIONS_PER_IMAGE]]
        det_height = dets[:, 3]
        keep = (det_height >= h_min / HEIGHT_EXPANSION) & (det_height < h_max * HEIGHT_EXPANSION)
        dets = dets[keep]

        overlaps = pairwise_overlaps(dets[:, :4], truth.boxes, gt_ignore)
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
    fppi = np.cumsum(~matched_counted) / len(truths)
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
        InvalidAnnotationError: (a ValueError) on input that cannot be scored, one line naming
            the image and the row: duplicate ground-truth image ids, detections for unknown
            images, and the refusals listed in the module docstring.
    """
    return _curve(*_validated_inputs(gt_records, detections), setup)


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
            pedestrians; absent images have no detections; an empty image may be ``[]``), or
            COCO-style result dicts with ``image_id``, ``bbox`` (4 numbers ``[x1, y1, w, h]``),
            a numeric ``score`` and ``category_id`` (only category 1 is scored, as in the
            official script). Boxes need finite coordinates and ``w, h >= 0``.
        setups: the subsets to score, the benchmark's four by default.
        zero_miss_rate: how a sampled miss rate of 0 counts (see ``log_average_miss_rate``);
            the official rule is logged when it decides a result.

    Returns:
        ``{setup.name: MR^-2}`` as fractions in [0, 1] (the paper prints percent); NaN for a
        setup without any non-ignored ground truth (the official script prints -100%).

    Raises:
        InvalidAnnotationError: (a ValueError) on input that cannot be scored, one line naming
            the image and the row: duplicate ground-truth image ids, detections for unknown
            images, and the refusals listed in the module docstring.
    """
    truths, dets_by_image = _validated_inputs(gt_records, detections)
    results = {}
    for setup in setups:
        curve = _curve(truths, dets_by_image, setup)
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
