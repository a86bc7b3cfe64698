"""The synthetic CityPersons generator (no detectron2 needed)."""
from pathlib import Path

import numpy as np
import pytest

from hybridkt_ext.datasets import load_citypersons_json, load_citypersons_mat
from hybridkt_ext.datasets.synthetic_citypersons import (
    BUILTIN_STATISTICS,
    annotation_statistics,
    ensure_synthetic_citypersons,
    generate_synthetic_citypersons,
    learnable_statistics,
)
from hybridkt_ext.evaluation import DEFAULT_SETUPS
from tests.conftest import citypersons_annotations

REAL = citypersons_annotations()


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return ensure_synthetic_citypersons(tmp_path_factory.mktemp("d") / "synthetic", 3, 3, seed=1)


def test_layout_and_readers_agree(dataset: Path) -> None:
    mat = load_citypersons_mat(dataset / "annotations/anno_val.mat", image_root=dataset)
    js = load_citypersons_json(dataset / "annotations/val_gt.json", image_root=dataset)
    assert len(mat) == len(js) == 3
    for a, b in zip(mat, js):
        assert a["file_name"] == b["file_name"] and Path(a["file_name"]).exists()
        assert "leftImg8bit/val/" in a["file_name"]
        assert [x["bbox"] for x in a["annotations"]] == [x["bbox"] for x in b["annotations"]]
        assert [x["ignore"] for x in a["annotations"]] == [x["ignore"] for x in b["annotations"]]
    labels = {x["category_id"] for r in mat for x in r["annotations"]}
    assert 1 in labels and labels - {1}, "pedestrians and ignore boxes both present"


def test_every_setup_has_members(dataset: Path) -> None:
    records = load_citypersons_mat(dataset / "annotations/anno_val.mat")
    for setup in DEFAULT_SETUPS:
        (h0, h1), (v0, v1) = setup.height_range, setup.visibility_range
        members = [a for r in records for a in r["annotations"] if not a["ignore"]
                   and h0 <= a["height"] <= h1 and v0 <= a["vis_ratio"] <= v1]
        assert members, setup.name


def test_seeded_and_idempotent(dataset: Path, tmp_path: Path) -> None:
    again = generate_synthetic_citypersons(tmp_path / "again", 3, 3, seed=1)
    for name in ("anno_train.mat", "val_gt.json"):
        a = load_citypersons_mat if name.endswith(".mat") else load_citypersons_json
        assert a(again / "annotations" / name) == a(dataset / "annotations" / name)
    assert ensure_synthetic_citypersons(dataset, 3, 3, seed=1) == dataset  # no regeneration
    with pytest.raises(FileExistsError, match="other parameters"):
        ensure_synthetic_citypersons(dataset, 3, 3, seed=2)


def test_heights_follow_the_real_statistics(tmp_path: Path) -> None:
    root = generate_synthetic_citypersons(tmp_path / "big", 20, 1, seed=0)
    peds = [a for r in load_citypersons_mat(root / "annotations/anno_train.mat")
            for a in r["annotations"] if a["category_id"] == 1]
    median = np.median([a["height"] for a in peds])
    assert abs(median - BUILTIN_STATISTICS.height_q[10]) < 25


@pytest.mark.skipif(not (REAL / "anno_train.mat").exists(), reason="real CityPersons absent")
def test_builtin_statistics_are_the_real_ones() -> None:
    assert annotation_statistics(REAL / "anno_train.mat") == BUILTIN_STATISTICS


def test_learnable_variant_zooms_and_keeps_every_setup(tmp_path: Path) -> None:
    root = ensure_synthetic_citypersons(tmp_path / "learnable", 6, 3, seed=0,
                                        statistics="learnable")
    stats = learnable_statistics(BUILTIN_STATISTICS)
    assert stats.height_q[10] == 2 * BUILTIN_STATISTICS.height_q[10]
    assert stats.pedestrians_per_image > BUILTIN_STATISTICS.pedestrians_per_image
    assert stats.visibility_q[:4] == BUILTIN_STATISTICS.visibility_q[:4]  # heavy occlusion kept
    assert min(stats.visibility_q[4:]) >= 0.9
    records = load_citypersons_mat(root / "annotations/anno_val.mat")
    for setup in DEFAULT_SETUPS:
        (h0, h1), (v0, v1) = setup.height_range, setup.visibility_range
        assert [a for r in records for a in r["annotations"] if not a["ignore"]
                and h0 <= a["height"] <= h1 and v0 <= a["vis_ratio"] <= v1], setup.name
    with pytest.raises(FileExistsError, match="variant"):  # never silently reused as the other
        ensure_synthetic_citypersons(root, 6, 3, seed=0, statistics="real")
    with pytest.raises(ValueError, match="statistics"):
        generate_synthetic_citypersons(tmp_path / "x", 1, 1, statistics="easy")
