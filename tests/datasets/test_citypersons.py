"""CityPersons readers: small synthetic files, then the real annotation release."""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from hybridkt_ext.datasets import load_citypersons_json, load_citypersons_mat
from hybridkt_ext.evaluation import InvalidAnnotationError
from tests.conftest import citypersons_annotations

# Boxes per class label in the release (0 ignore region, 1 pedestrian, 2 rider, 3 sitting,
# 4 other posture, 5 group), counted once from the files and pinned here.
VAL_CLASS_COUNTS = {0: 1631, 1: 3157, 2: 509, 3: 185, 4: 87, 5: 226}
TRAIN_CLASS_COUNTS = {0: 6768, 1: 16526, 2: 1680, 3: 1032, 4: 417, 5: 1347}


def _write_mat(path: Path, variable: str, second: dict | None = None) -> None:
    """Two images as released; ``second`` replaces the second image's struct (a hostile one)."""
    cells = np.empty((1, 2), dtype=object)
    cells[0, 0] = {
        "cityname": "bonn",
        "im_name": "bonn_000000_000019_leftImg8bit.png",
        "bbs": np.array(
            [[1, -5, 20, 30, 60, 24000, 0, 20, 15, 60], [0, 100, 20, 40, 80, 0, 100, 20, 40, 80]],
            dtype=np.int16,
        ),
    }
    cells[0, 1] = second or {
        "cityname": "bonn",
        "im_name": "bonn_000001_000019_leftImg8bit.png",
        "bbs": np.zeros((0, 10), dtype=np.uint16),
    }
    scipy.io.savemat(path, {variable: cells})


def test_mat_reader_on_synthetic_file(tmp_path: Path) -> None:
    _write_mat(tmp_path / "anno_test.mat", "anno_test_aligned")
    records = load_citypersons_mat(tmp_path / "anno_test.mat", image_root="/data/cityscapes")
    assert [r["image_id"] for r in records] == [1, 2]
    assert records[0]["file_name"] == (
        "/data/cityscapes/leftImg8bit/test/bonn/bonn_000000_000019_leftImg8bit.png"
    )
    assert (records[0]["height"], records[0]["width"]) == (1024, 2048)
    pedestrian, region = records[0]["annotations"]
    assert pedestrian == {
        "bbox": [-5.0, 20.0, 30.0, 60.0],
        "vis_bbox": [0.0, 20.0, 15.0, 60.0],
        "category_id": 1,
        "instance_id": 24000,
        "height": 60.0,
        "vis_ratio": 0.5,  # 15 * 60 / (30 * 60)
        "ignore": 0,
    }
    assert (region["category_id"], region["ignore"], region["vis_ratio"]) == (0, 1, 1.0)
    assert records[1]["annotations"] == []
    relative = load_citypersons_mat(tmp_path / "anno_test.mat")
    assert relative[1]["file_name"] == "leftImg8bit/test/bonn/bonn_000001_000019_leftImg8bit.png"


def test_mat_reader_rejects_other_variables(tmp_path: Path) -> None:
    _write_mat(tmp_path / "other.mat", "boxes")
    with pytest.raises(InvalidAnnotationError, match="anno_<split>_aligned"):
        load_citypersons_mat(tmp_path / "other.mat")


def test_mat_without_bbs_names_the_file_the_image_and_the_field(tmp_path: Path) -> None:
    path = tmp_path / "anno_val.mat"
    _write_mat(path, "anno_val_aligned", {"cityname": "bonn", "im_name": "bonn_x.png"})
    with pytest.raises(InvalidAnnotationError) as caught:
        load_citypersons_mat(path)
    assert str(caught.value).startswith(f"{path}: image 2 (cell 1 of anno_val_aligned) has no "
                                        "field bbs (fields: ['cityname', 'im_name']); ")
    assert "cityname, im_name, bbs" in str(caught.value) and "\n" not in str(caught.value)


PEDESTRIAN_ROW = [1, 10, 20, 30, 60, 24001, 10, 20, 30, 60]


@pytest.mark.parametrize(
    ("column", "value", "problem"),
    [
        (3, np.nan, "a NaN or infinite value"),  # full-box width
        (2, np.inf, "a NaN or infinite value"),
        (0, np.nan, "a NaN or infinite value"),  # the label
        (3, -30, "a negative width or height"),  # full box
        (4, -60, "a negative width or height"),
        (9, -60, "a negative width or height"),  # visible box
    ],
)
def test_mat_rows_that_cannot_be_scored_are_refused(tmp_path: Path, column: int, value: float,
                                                   problem: str) -> None:
    bad = list(PEDESTRIAN_ROW)
    bad[column] = value
    path = tmp_path / "anno_val.mat"
    second = {"cityname": "bonn", "im_name": "bonn_000001_000019_leftImg8bit.png",
              "bbs": np.array([PEDESTRIAN_ROW, bad], dtype=np.float64)}
    _write_mat(path, "anno_val_aligned", second)
    with pytest.raises(InvalidAnnotationError,
                       match=rf"^{re.escape(str(path))}: image 2 \(bonn_000001_000019_leftImg8bit"
                             rf"\.png\), bbs row 1: {problem}"):
        load_citypersons_mat(path)


def test_mat_bbs_of_another_shape_is_refused_not_reshaped(tmp_path: Path) -> None:
    path = tmp_path / "anno_val.mat"
    second = {"cityname": "bonn", "im_name": "bonn_000001_000019_leftImg8bit.png",
              "bbs": np.array([PEDESTRIAN_ROW, PEDESTRIAN_ROW], dtype=np.int16).T}
    _write_mat(path, "anno_val_aligned", second)
    with pytest.raises(InvalidAnnotationError,
                       match=r"image 2 .*: bbs is int16 of shape \(10, 2\)"):
        load_citypersons_mat(path)


def test_json_reader_keeps_file_flags(tmp_path: Path) -> None:
    content = {
        "images": [
            {
                "id": 3,
                "im_name": "lindau_000001_000019_leftImg8bit.png",
                "height": 1024,
                "width": 2048,
            },
            {
                "id": 4,
                "im_name": "lindau_000002_000019_leftImg8bit.png",
                "height": 1024,
                "width": 2048,
            },
        ],
        "annotations": [
            {
                "id": 1,
                "image_id": 3,
                "category_id": 1,
                "ignore": 1,
                "bbox": [1, 2, 3, 4],
                "vis_bbox": [1, 2, 3, 2],
                "height": 4,
                "vis_ratio": 0.5,
            }
        ],
    }
    (tmp_path / "gt.json").write_text(json.dumps(content))
    records = load_citypersons_json(tmp_path / "gt.json")
    assert records[0]["file_name"] == "leftImg8bit/val/lindau/lindau_000001_000019_leftImg8bit.png"
    assert records[0]["annotations"] == [
        {
            "bbox": [1.0, 2.0, 3.0, 4.0],
            "vis_bbox": [1.0, 2.0, 3.0, 2.0],
            "category_id": 1,
            "instance_id": None,
            "height": 4.0,
            "vis_ratio": 0.5,
            "ignore": 1,
        }
    ]
    assert records[1]["image_id"] == 4 and records[1]["annotations"] == []
    for key, box, problem in [("bbox", [1, 2, math.nan, 4], "a NaN or infinite coordinate"),
                              ("vis_bbox", [1, 2, 3, -2], "a negative width or height"),
                              ("bbox", [1, 2, 3], "is not 4 numbers")]:
        content["annotations"][0][key] = box
        (tmp_path / "bad.json").write_text(json.dumps(content))
        with pytest.raises(InvalidAnnotationError,
                           match=rf"bad.json: annotation 0 \(image 3\): {key} .*{problem}"):
            load_citypersons_json(tmp_path / "bad.json")
        content["annotations"][0][key] = [1, 2, 3, 4]


# --- the real annotation release -------------------------------------------------------------


def _load(name: str, reader: Callable[[Path], list[dict]]) -> list[dict]:
    path = citypersons_annotations() / name
    if not path.is_file():
        pytest.skip(
            f"CityPersons annotations not found at {path} (set HYBRIDKT_CITYPERSONS_ANNOTATIONS)"
        )
    return reader(path)


@pytest.fixture(scope="module")
def val_mat() -> list[dict]:
    return _load("anno_val.mat", load_citypersons_mat)


@pytest.fixture(scope="module")
def val_json() -> list[dict]:
    return _load("val_gt.json", load_citypersons_json)


@pytest.fixture(scope="module")
def train_mat() -> list[dict]:
    return _load("anno_train.mat", load_citypersons_mat)


def _class_counts(records: list[dict]) -> dict[int, int]:
    return dict(Counter(a["category_id"] for r in records for a in r["annotations"]))


def test_val_json_counts(val_json: list[dict]) -> None:
    assert len(val_json) == 500
    anns = [a for r in val_json for a in r["annotations"]]
    assert len(anns) == 5795
    # The official JSON files every box under category 1; the class lives on in ``ignore``.
    assert Counter(a["category_id"] for a in anns) == {1: 5795}
    assert Counter(a["ignore"] for a in anns) == {0: 3157, 1: 2638}


def test_val_mat_agrees_with_json(val_mat: list[dict], val_json: list[dict]) -> None:
    assert [r["file_name"] for r in val_mat] == [r["file_name"] for r in val_json]
    assert [r["image_id"] for r in val_mat] == [r["image_id"] for r in val_json]
    assert _class_counts(val_mat) == VAL_CLASS_COUNTS
    # Pedestrians in the .mat are exactly the non-ignored boxes of the JSON, and both list the
    # same boxes in the same order, image by image.
    for mat_record, json_record in zip(val_mat, val_json):
        mat_anns, json_anns = mat_record["annotations"], json_record["annotations"]
        assert len(mat_anns) == len(json_anns)
        for m, j in zip(mat_anns, json_anns):
            assert m["bbox"] == j["bbox"] and m["vis_bbox"] == j["vis_bbox"]
            assert m["height"] == j["height"] and m["ignore"] == j["ignore"]
            assert m["vis_ratio"] == pytest.approx(j["vis_ratio"], abs=1e-9)
    assert sum(not r["annotations"] for r in val_mat) == 13  # images without any person


def test_train_mat_counts(train_mat: list[dict]) -> None:
    assert len(train_mat) == 2975
    assert _class_counts(train_mat) == TRAIN_CLASS_COUNTS
    assert train_mat[0]["file_name"].startswith("leftImg8bit/train/aachen/aachen_")
    assert {r["image_id"] for r in train_mat} == set(range(1, 2976))


@pytest.mark.parametrize("records_fixture", ["val_mat", "train_mat"])
def test_box_geometry(records_fixture: str, request: pytest.FixtureRequest) -> None:
    anns = [a for r in request.getfixturevalue(records_fixture) for a in r["annotations"]]
    full = np.array([a["bbox"] for a in anns])
    vis = np.array([a["vis_bbox"] for a in anns])
    labels = np.array([a["category_id"] for a in anns])
    ratio = np.array([a["vis_ratio"] for a in anns])
    assert (ratio >= 0).all() and (ratio <= 1).all()
    assert (full[:, 2:] > 0).all()
    # Groups (5) come with an all-zero visible box as distributed; every other visible box lies
    # inside its full box (pixel tolerance, none needed in the release).
    assert (vis[labels == 5] == 0).all()
    others = labels != 5
    f, v = full[others], vis[others]
    assert (v[:, 0] >= f[:, 0] - 1).all() and (v[:, 1] >= f[:, 1] - 1).all()
    assert (v[:, 0] + v[:, 2] <= f[:, 0] + f[:, 2] + 1).all()
    assert (v[:, 1] + v[:, 3] <= f[:, 1] + f[:, 3] + 1).all()
    # Only pedestrians and riders have a full-body box distinct from the visible one.
    same = (full == vis).all(axis=1)
    assert same[np.isin(labels, [0, 3, 4])].all()
    # Ignore regions carry no instance id; everything else does.
    instance = np.array([a["instance_id"] for a in anns])
    assert ((instance == 0) == (labels == 0)).all()
    assert (np.array([a["ignore"] for a in anns]) == (labels != 1)).all()
