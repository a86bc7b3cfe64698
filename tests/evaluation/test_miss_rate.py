"""Log-average miss rate: hand-computed cases, then the real CityPersons validation ground truth.

Reading aid for the hand cases: the curve has one point per non-ignored detection in score
order, (FPPI = FP so far / #images, recall = TP so far / #non-ignored gt); each of the nine
reference points r in {0.01, 0.0178, ..., 0.5623, 1} takes the miss rate of the last point with
FPPI <= r (1 if none), and MR^-2 = exp(mean(log(mr))) as the official script computes it (0
once any sampled miss rate is 0); Caltech's floor, max(1e-10, mr), is an option.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

from hybridkt_ext.datasets import load_citypersons_json
from tests.conftest import citypersons_annotations
from hybridkt_ext.evaluation import (
    DEFAULT_SETUPS,
    NO_UPPER_BOUND,
    EvalSetup,
    InvalidAnnotationError,
    evaluate_miss_rate,
    miss_rate_curve,
    pairwise_overlaps,
)

REASONABLE, SMALL, HEAVY, ALL = DEFAULT_SETUPS
# The official script takes log(0) and reports exactly 0, "0.00%", once a sampled miss rate is 0.
PERFECT = 0.0


def _ann(x: float, y: float, w: float, h: float, vis: float = 1.0, ignore: int = 0) -> dict:
    return {"bbox": [x, y, w, h], "height": h, "vis_ratio": vis, "ignore": ignore}


def _images(*annotation_lists: list[dict]) -> list[dict]:
    return [{"image_id": i + 1, "annotations": anns} for i, anns in enumerate(annotation_lists)]


def _mr(records: list[dict], detections, setup: EvalSetup = REASONABLE) -> float:
    return evaluate_miss_rate(records, detections, [setup])[setup.name]


PERSON_A = _ann(100, 100, 40, 100)
PERSON_B = _ann(500, 100, 40, 100)
ELSEWHERE = [1500, 100, 40, 100]


def test_perfect_detections_score_zero() -> None:
    # A 60 px person for Reasonable_small, an occluded one for Reasonable_occ=heavy.
    records = _images([PERSON_A, _ann(700, 100, 24, 60)], [_ann(300, 300, 60, 150, vis=0.4)])
    dets = {r["image_id"]: [a["bbox"] + [1.0] for a in r["annotations"]] for r in records}
    for value in evaluate_miss_rate(records, dets).values():
        assert value == pytest.approx(PERFECT)


def test_no_detections_miss_everything() -> None:
    # Recall 0 at every reference point: exp(mean(log 1)) = 1.
    records = _images([PERSON_A, PERSON_B])
    assert _mr(records, {}) == 1.0
    assert _mr(records, []) == 1.0
    assert _mr(records, {1: np.zeros((0, 5))}) == 1.0


def test_one_hit_then_one_false_positive() -> None:
    # Curve: TP (FPPI 0, recall 1/2), then FP (FPPI 1/1, recall 1/2). Points r < 1 take the first
    # point, r = 1 the second; all nine miss rates are 0.5, so MR = 0.5.
    records = _images([PERSON_A, PERSON_B])
    dets = {1: [PERSON_A["bbox"] + [0.9], ELSEWHERE + [0.5]]}
    fppi, miss = miss_rate_curve(records, dets, REASONABLE)
    np.testing.assert_allclose(fppi, [0.0, 1.0])
    np.testing.assert_allclose(miss, [0.5, 0.5])
    assert _mr(records, dets) == pytest.approx(0.5)


def test_false_positive_ranked_first() -> None:
    # Curve: FP (FPPI 1, recall 0), then TP (FPPI 1, recall 1/2). No point has FPPI <= r for the
    # eight points r < 1 (miss rate 1); r = 1 takes the second point (0.5). MR = 0.5 ** (1/9).
    # The official Python script reads recall[-1] for the eight points instead (MR 0.5); it never
    # does so with 100 or more images, where one FP is at most 0.01 FPPI.
    records = _images([PERSON_A, PERSON_B])
    dets = {1: [PERSON_A["bbox"] + [0.5], ELSEWHERE + [0.9]]}
    assert _mr(records, dets) == pytest.approx(0.5 ** (1 / 9))


def test_curve_crossing_reference_points() -> None:
    # Ten images with one person each (FPPI steps of 0.1). Score order: TPs on images 1-5, one FP,
    # TPs on images 6-8, then nine FPs. Recall is 0.5 until FPPI 0.1, where it reaches 0.8:
    # r in {0.01, 0.0178, 0.0316, 0.0562} -> mr 0.5; r in {0.1, ..., 1} -> mr 0.2.
    # MR = exp((4 log 0.5 + 5 log 0.2) / 9) = 0.5 ** (4/9) * 0.2 ** (5/9) ~= 0.30053.
    records = _images(*[[PERSON_A] for _ in range(10)])
    dets: dict[int, list[list[float]]] = {i: [] for i in range(1, 11)}
    for rank, image in enumerate([1, 2, 3, 4, 5]):
        dets[image].append(PERSON_A["bbox"] + [0.99 - 0.01 * rank])
    dets[10].append(ELSEWHERE + [0.90])
    for rank, image in enumerate([6, 7, 8]):
        dets[image].append(PERSON_A["bbox"] + [0.80 - 0.01 * rank])
    for image in range(1, 10):
        dets[image].append(ELSEWHERE + [0.10])
    expected = 0.5 ** (4 / 9) * 0.2 ** (5 / 9)
    assert _mr(records, dets) == pytest.approx(expected)
    assert expected == pytest.approx(0.30053, abs=1e-5)


def test_detection_on_ignore_region_is_not_a_false_positive() -> None:
    # A 40x100 detection inside a 400x200 ignore region: IoU 0.05, but intersection over the
    # detection's area is 1, so the region absorbs it. Only the TP on A remains: mr 0.5 at every
    # point, MR 0.5. Without the region the same detection is an FP ranked first:
    # MR = 0.5 ** (1/9) as in test_false_positive_ranked_first.
    region = _ann(1000, 50, 400, 200, ignore=1)
    inside = [1100, 80, 40, 100]
    dets = {1: [inside + [0.95], PERSON_A["bbox"] + [0.9]]}
    with_region = _images([PERSON_A, PERSON_B, region])
    assert _mr(with_region, dets) == pytest.approx(0.5)
    assert len(miss_rate_curve(with_region, dets, REASONABLE)[0]) == 1
    assert _mr(_images([PERSON_A, PERSON_B]), dets) == pytest.approx(0.5 ** (1 / 9))


def test_regular_ground_truth_is_preferred_to_an_ignore_region() -> None:
    # The detection is A's box (IoU 1) and lies inside the ignore region listed before A (overlap
    # 1 there too): regular boxes are tried first, so it is a TP and the MR is the floor.
    region = _ann(50, 50, 200, 200, ignore=1)
    records = _images([region, PERSON_A])
    assert _mr(records, {1: [PERSON_A["bbox"] + [0.9]]}) == pytest.approx(PERFECT)


def test_detection_on_too_small_person_is_ignored() -> None:
    # A 45 px person is outside Reasonable's [50, inf) and becomes an ignored box; a detection on
    # it (45 px >= 50 / 1.25 = 40, so kept) matches it and is ignored, not an FP: the TP on A alone
    # gives the floor. In "All" ([20, inf)) the small person counts and the detection is a TP.
    small = _ann(800, 100, 18, 45)
    records = _images([PERSON_A, small])
    dets = {1: [small["bbox"] + [0.95], PERSON_A["bbox"] + [0.9]]}
    assert _mr(records, dets, REASONABLE) == pytest.approx(PERFECT)
    assert _mr(records, dets, ALL) == pytest.approx(PERFECT)
    # Missing the small person costs nothing in Reasonable, half the recall in All.
    assert _mr(records, {1: [PERSON_A["bbox"] + [0.9]]}, REASONABLE) == pytest.approx(PERFECT)
    assert _mr(records, {1: [PERSON_A["bbox"] + [0.9]]}, ALL) == pytest.approx(0.5)


def test_detections_outside_widened_height_range_are_dropped() -> None:
    # Reasonable keeps detections of height >= 50 / 1.25 = 40 px. An unmatched 39 px detection
    # ranked first is dropped (perfect); an unmatched 40 px one is an FP ranked first: eight
    # points at miss rate 1, r = 1 at miss rate 0, which the official arithmetic makes 0.
    records = _images([PERSON_A])
    dropped = {1: [[1500, 100, 16, 39, 0.95], PERSON_A["bbox"] + [0.9]]}
    kept = {1: [[1500, 100, 16, 40, 0.95], PERSON_A["bbox"] + [0.9]]}
    assert _mr(records, dropped) == pytest.approx(PERFECT)
    assert _mr(records, kept) == PERFECT
    # Reasonable_small keeps heights in [40, 75 * 1.25 = 93.75). On a 24x60 person, a 24x93 box
    # (IoU 60/93 ~= 0.65) is kept and a TP; a 24x94 box (IoU 60/94 ~= 0.64) is dropped: a miss.
    small_records = _images([_ann(100, 100, 24, 60)])
    assert _mr(small_records, {1: [[100, 100, 24, 93, 0.9]]}, SMALL) == pytest.approx(PERFECT)
    assert _mr(small_records, {1: [[100, 100, 24, 94, 0.9]]}, SMALL) == 1.0


def test_visibility_moves_an_occluded_person_between_setups() -> None:
    # Occluded (vis 0.4) person detected, visible (vis 0.9) person missed. Reasonable
    # (vis >= 0.65): the occluded one is ignored, its detection too, the visible one is missed ->
    # MR 1. Heavy occlusion (vis in [0.2, 0.65]): only the occluded one counts and is found ->
    # floor. All (vis >= 0.2): one of two found, no FP -> 0.5.
    occluded = _ann(100, 100, 40, 100, vis=0.4)
    visible = _ann(500, 100, 40, 100, vis=0.9)
    records = _images([occluded, visible])
    dets = {1: [occluded["bbox"] + [0.9]]}
    result = evaluate_miss_rate(records, dets)
    assert result[REASONABLE.name] == 1.0
    assert result[HEAVY.name] == pytest.approx(PERFECT)
    assert result[ALL.name] == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("shift", "matched"),
    [
        (19.9, True),  # IoU = 40.1 / 79.9 ~= 0.5019
        (20.0, True),  # IoU = 40 / 80 = 0.5 exactly: the threshold is inclusive
        (20.1, False),  # IoU = 39.9 / 80.1 ~= 0.4981
    ],
)
def test_iou_threshold(shift: float, matched: bool) -> None:
    # 60x100 box shifted sideways by s: intersection (60 - s) * 100, union (60 + s) * 100.
    records = _images([_ann(100, 100, 60, 100)])
    dets = {1: [[100 + shift, 100, 60, 100, 0.9]]}
    # Matched: the only detection is a TP (floor). Unmatched: an FP and a miss (MR 1).
    assert _mr(records, dets) == pytest.approx(PERFECT if matched else 1.0)


def test_duplicate_detection_is_a_false_positive() -> None:
    # Both detections sit on A; the second finds A taken and no other box: FP after the TP.
    # Curve (0, 1/2), (1, 1/2) -> MR 0.5, as in test_one_hit_then_one_false_positive.
    records = _images([PERSON_A, PERSON_B])
    dets = {1: [PERSON_A["bbox"] + [0.9], PERSON_A["bbox"] + [0.8]]}
    assert _mr(records, dets) == pytest.approx(0.5)


def test_only_the_best_1000_detections_per_image_count() -> None:
    # Behind 1000 higher-scored FPs the hit on A ranks 1001st and is cut: A stays missed. Behind
    # 999 it is kept and ends the curve at miss rate 0 (too late for any reference point).
    records = _images([PERSON_A])
    noise = [ELSEWHERE + [0.9]] * 1000
    _, miss = miss_rate_curve(records, {1: noise + [PERSON_A["bbox"] + [0.1]]}, REASONABLE)
    assert len(miss) == 1000 and miss[-1] == 1.0
    _, miss = miss_rate_curve(records, {1: noise[:999] + [PERSON_A["bbox"] + [0.1]]}, REASONABLE)
    assert len(miss) == 1000 and miss[-1] == 0.0


def test_coco_style_list_equals_arrays() -> None:
    records = _images([PERSON_A, PERSON_B], [_ann(300, 300, 60, 150)])
    arrays = {1: [PERSON_A["bbox"] + [0.9], ELSEWHERE + [0.5]], 2: [[300, 310, 60, 150, 0.7]]}
    coco = [
        {"image_id": image_id, "bbox": row[:4], "score": row[4], "category_id": 1}
        for image_id, rows in arrays.items()
        for row in rows
    ]
    # Category 2 results are not scored, as in the official script.
    coco.append({"image_id": 1, "bbox": ELSEWHERE, "score": 0.99, "category_id": 2})
    assert evaluate_miss_rate(records, coco) == evaluate_miss_rate(records, arrays)


def test_invalid_inputs() -> None:
    records = _images([PERSON_A])
    with pytest.raises(InvalidAnnotationError, match="absent from the ground truth"):
        evaluate_miss_rate(records, {7: [[0, 0, 10, 10, 1.0]]})
    with pytest.raises(InvalidAnnotationError, match="duplicate"):
        evaluate_miss_rate(records + records, {})
    # No countable person in the setup: undefined (the official script prints -100%).
    assert math.isnan(_mr(_images([_ann(0, 0, 10, 30)]), {}))
    assert miss_rate_curve(_images([_ann(0, 0, 10, 30)]), {}, REASONABLE) is None


# --- input the evaluator refuses (one line naming the image and the row) ----------------------
TWO_PEOPLE = _images([PERSON_A, PERSON_B])
GOOD_ROWS = [PERSON_A["bbox"] + [0.9], PERSON_B["bbox"] + [0.8]]


def _refused(records: list[dict], detections, message: str) -> None:
    with pytest.raises(InvalidAnnotationError, match=message) as caught:
        evaluate_miss_rate(records, detections)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("empty", [[], np.zeros((0,)), np.zeros((0, 5))])
def test_empty_detection_arrays_are_fine(empty) -> None:
    assert _mr(TWO_PEOPLE, {1: empty}) == 1.0


@pytest.mark.parametrize("shape", [(5, 2), (10,), (2, 4), (0, 4), (1, 2, 5)])
def test_detection_arrays_not_n_by_5_are_refused(shape: tuple[int, ...]) -> None:
    # (5, 2): the two perfect rows transposed; reshape(-1, 5) used to mix their coordinates
    # into two misses (MR 100% instead of 0%).
    rows = np.zeros(shape)
    if shape == (5, 2):
        rows = np.array(GOOD_ROWS).T
    _refused(TWO_PEOPLE, {1: rows}, "^" + re.escape(f"detections[1]: shape {shape}; ") + ".*(N, 5)")
    assert _mr(TWO_PEOPLE, {1: np.array(GOOD_ROWS)}) == PERFECT


@pytest.mark.parametrize(
    ("column", "value", "problem"),
    [
        (4, math.nan, "the score is NaN"),
        (0, math.nan, "a NaN or infinite coordinate"),
        (1, math.inf, "a NaN or infinite coordinate"),
        (2, -40.0, "a negative width or height"),
        (3, -100.0, "a negative width or height"),
    ],
)
def test_bad_detection_rows_are_refused(column: int, value: float, problem: str) -> None:
    rows = np.array(GOOD_ROWS + [ELSEWHERE + [0.5]])
    rows[2, column] = value  # a NaN-scored false positive used to leave the MR at 0.00
    _refused(TWO_PEOPLE, {1: rows}, rf"^detections\[1\] row 2: {problem}")


def test_non_numeric_detection_values_are_refused() -> None:
    # numpy would read None as NaN and "0.5" as 0.5 without a word.
    for value in (None, "0.5"):
        rows = GOOD_ROWS + [ELSEWHERE + [value]]
        _refused(TWO_PEOPLE, {1: rows}, r"^detections\[1\] row 2: .* holds a non-number")


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"bbox": [100, 100, math.nan, 100]}, "a NaN or infinite coordinate"),
        ({"bbox": [-math.inf, 100, 40, 100]}, "a NaN or infinite coordinate"),
        ({"bbox": [100, 100, -40, 100]}, "a negative width or height"),
        ({"bbox": [100, 100, 40, -100]}, "a negative width or height"),
        ({"bbox": [100, 100, 40]}, "is not 4 numbers"),
        ({"height": math.nan}, "height, vis_ratio"),
        ({"vis_ratio": math.inf}, "height, vis_ratio"),
    ],
)
def test_bad_ground_truth_is_refused(change: dict, problem: str) -> None:
    records = _images([PERSON_A], [PERSON_A, {**PERSON_B, **change}])
    _refused(records, {}, rf"^gt_records: image 2, annotation 1: .*{re.escape(problem)}")


def _through_json(tmp_path: Path, rows: list[dict]) -> list[dict]:
    """Results as the official script reads them: a JSON file, loaded back."""
    path = tmp_path / "results.json"
    path.write_text(json.dumps(rows))
    return json.loads(path.read_text())


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"bbox": PERSON_B["bbox"] + [0.99]}, r"bbox \[.*\] is not 4 numbers"),  # was the score
        ({"bbox": PERSON_B["bbox"][:3]}, r"bbox \[.*\] is not 4 numbers"),
        ({"score": None}, "score None is not a number"),  # was NaN, ranked last
        ({"score": "0.8"}, "score '0.8' is not a number"),
        ({"score": math.nan}, "the score is NaN"),
        ({"bbox": [500, 100, -40, 100]}, "a negative width or height"),
        ({"bbox": [500, math.nan, 40, 100]}, "a NaN or infinite coordinate"),
        ({"category_id": None}, "has no category_id"),  # None: the key is dropped below
    ],
)
def test_bad_json_results_are_refused(tmp_path: Path, change: dict, problem: str) -> None:
    rows = [{"image_id": 1, "bbox": row[:4], "score": row[4], "category_id": 1}
            for row in GOOD_ROWS]
    assert evaluate_miss_rate(TWO_PEOPLE, _through_json(tmp_path, rows))[REASONABLE.name] == 0
    rows[1].update(change)
    if change == {"category_id": None}:
        del rows[1]["category_id"]  # was taken as 1; the official loadRes fails on it
    _refused(TWO_PEOPLE, _through_json(tmp_path, rows),
             rf"^detections row 1 \(image 1\).*{problem}")


def test_unbounded_ranges_end_at_the_official_1e10() -> None:
    # A 2e10 px person is outside Reasonable's [50, 1e5 ** 2] (ignored, so missing it costs
    # nothing); a 1.3e10 px false positive is outside [40, 1.25e10) (dropped). With infinity as
    # the bound both would count: MR 0.5 and an FP ranked first.
    assert REASONABLE.height_range == (50, NO_UPPER_BOUND) == (50, 1e10)
    giant = _ann(0, 0, 1e9, 2e10)
    dets = {1: [[0, 0, 1e9, 1.3e10, 0.95], PERSON_A["bbox"] + [0.9]]}
    assert _mr(_images([PERSON_A, giant]), dets) == PERFECT
    assert len(miss_rate_curve(_images([PERSON_A, giant]), dets, REASONABLE)[0]) == 1


def test_an_overlap_with_a_nan_box_is_zero() -> None:
    # The official IoU is NaN there, which its comparisons take as a match; such boxes are
    # refused before matching anyway.
    boxes = np.array([[100.0, 100.0, 40.0, 100.0]])
    nan_box = np.array([[math.nan, 100.0, 40.0, 100.0]])
    assert pairwise_overlaps(nan_box, boxes, np.array([False])).tolist() == [[0.0]]
    assert pairwise_overlaps(boxes, nan_box, np.array([True])).tolist() == [[0.0]]


# --- the real validation ground truth -------------------------------------------------------


@pytest.fixture(scope="module")
def val_records() -> list[dict]:
    path = citypersons_annotations() / "val_gt.json"
    if not path.is_file():
        pytest.skip(
            f"CityPersons annotations not found at {path} (set HYBRIDKT_CITYPERSONS_ANNOTATIONS)"
        )
    return load_citypersons_json(path)


def _deterministic_detections(records: list[dict]) -> list[dict]:
    """Perturbed ground truth plus false positives from index arithmetic, no random generator."""
    dets, k = [], 0
    for record in records:
        i = record["image_id"]
        for ann in record["annotations"]:
            k += 1
            if k % 9 == 0:
                continue
            x, y, w, h = ann["bbox"]
            box = [x + (k % 7 - 3) * 0.06 * w, y, w, h * (1 + (k % 5 - 2) * 0.05)]
            dets.append({"image_id": i, "bbox": box, "score": (k * 37 % 100) / 100,
                         "category_id": 1})
        for j in range(i % 4):
            h = 30 + (i * 7 + j * 13) % 150
            box = [(i * 131 + j * 517) % 1900, 350 + j * 97 % 200, 0.41 * h, h]
            dets.append({"image_id": i, "bbox": box, "score": ((i * 53 + j * 29) % 100) / 100,
                         "category_id": 1})
    return dets


def test_ground_truth_as_detections_is_perfect(val_records: list[dict]) -> None:
    # Every box (ignore regions and other classes too) as a score-1 detection; the official
    # script reports 0.00% on all four setups for this input.
    dets = {r["image_id"]: [a["bbox"] + [1.0] for a in r["annotations"]] for r in val_records}
    for name, value in evaluate_miss_rate(val_records, dets).items():
        assert value == pytest.approx(PERFECT), name


def test_matches_official_script(val_records: list[dict]) -> None:
    # Reference values: the official eval_MR_multisetup.py + coco.py of the CityPersons repository
    # (cvgroup-njust/CityPersons, evaluation/eval_script), run on val_gt.json and these 5902
    # detections (category 1), the ground truth reloaded per setup as its eval_demo.py does.
    # Ours agreed bit for bit.
    expected = {
        "Reasonable": 0.8003658162090243,
        "Reasonable_small": 0.518712556216135,
        "Reasonable_occ=heavy": 0.7591497993925788,
        "All": 0.816946814366753,
    }
    result = evaluate_miss_rate(val_records, _deterministic_detections(val_records))
    for name, value in expected.items():
        assert result[name] == pytest.approx(value, rel=1e-12), name


def _perturbed_detections(
    records: list[dict], rng: np.random.Generator, jitter: float, drop: float, fp_per_image: float
) -> dict[int, np.ndarray]:
    dets = {}
    for record in records:
        rows = []
        for ann in record["annotations"]:
            if ann["ignore"] or rng.random() < drop:
                continue
            x, y, w, h = ann["bbox"]
            noise = rng.normal(0.0, jitter, size=4)
            box = [x + noise[0] * w, y + noise[1] * h, w * (1 + noise[2]), h * (1 + noise[3])]
            rows.append(box + [float(rng.uniform(0.3, 1.0))])
        for _ in range(rng.poisson(fp_per_image)):
            h = rng.uniform(20, 300)
            x, y = rng.uniform(0, 2048 - 0.41 * h), rng.uniform(300, 700)
            rows.append([x, y, 0.41 * h, h, float(rng.uniform(0.0, 1.0))])
        dets[record["image_id"]] = np.array(rows).reshape(-1, 5)
    return dets


def test_miss_rate_grows_with_perturbation(val_records: list[dict]) -> None:
    levels = [(0.02, 0.05, 0.2), (0.06, 0.15, 1.0), (0.12, 0.3, 3.0)]  # jitter, drop, FPs/image
    results = [
        evaluate_miss_rate(
            val_records, _perturbed_detections(val_records, np.random.default_rng(0), *lv)
        )
        for lv in levels
    ]
    for setup in DEFAULT_SETUPS:
        values = [r[setup.name] for r in results]
        assert 0.0 < values[0] < values[1] < values[2] < 1.0, (setup.name, values)


# ----------------------------------------------------------------------------- zero miss rates
def test_a_zero_sampled_miss_rate_follows_the_official_script_unless_floored(caplog) -> None:
    """100 top-scored false positives on 100 images, then every pedestrian found: the first
    eight reference points see miss rate 1, the last (FPPI 1) sees 0. The official script takes
    log(0) and reports 0.00%; Caltech's floor gives (1e-10) ** (1/9) = 7.74%."""
    records = _images(*[[_ann(100, 100, 40, 100)] for _ in range(100)])
    dets = {i: [[1500, 100, 40, 100, 0.9], [100, 100, 40, 100, 0.5]] for i in range(1, 101)}
    with caplog.at_level("WARNING", logger="hybridkt_ext.evaluation.miss_rate"):
        official = evaluate_miss_rate(records, dets, [REASONABLE])[REASONABLE.name]
    floored = evaluate_miss_rate(records, dets, [REASONABLE],
                                 zero_miss_rate="caltech_floor")[REASONABLE.name]
    assert official == 0.0
    assert floored == pytest.approx(1e-10 ** (1 / 9)) and 100 * floored == pytest.approx(7.74, 1e-3)
    assert "1 of the 9 sampled miss rates are 0" in caplog.text and "7.74%" in caplog.text


def test_without_a_zero_miss_rate_both_rules_agree() -> None:
    records = _images([PERSON_A, PERSON_B])
    dets = {1: [PERSON_A["bbox"] + [0.9]]}  # half the recall: every miss rate is 0.5
    official = evaluate_miss_rate(records, dets, [REASONABLE])[REASONABLE.name]
    floored = evaluate_miss_rate(records, dets, [REASONABLE], zero_miss_rate="caltech_floor")
    assert official == floored[REASONABLE.name] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="zero_miss_rate"):
        evaluate_miss_rate(records, dets, [REASONABLE], zero_miss_rate="floor")
