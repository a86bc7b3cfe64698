"""CityPersons in mmdet: the dataset from the official annotation files, ignore boxes as
ignored instances, and the MR^-2 metric equal to the project's evaluator."""
from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from .conftest import SMALL  # noqa: F401  (skips without mmdet)


def _dataset(root, split="val", **kwargs):
    import hybridkt_ext.for_mmdet  # noqa: F401
    from mmdet.registry import DATASETS

    kwargs.setdefault("pipeline", [])
    return DATASETS.build(dict(type="CityPersonsDataset", data_root=str(root),
                               ann_file=f"annotations/anno_{split}.mat", **kwargs))


def test_dataset_keeps_every_box_and_marks_the_ignored_ones(citypersons_root):
    from hybridkt_ext.datasets.citypersons import load_citypersons_mat

    records = load_citypersons_mat(citypersons_root / "annotations" / "anno_val.mat",
                                   image_root=citypersons_root)
    dataset = _dataset(citypersons_root, test_mode=True)
    assert len(dataset) == len(records) == SMALL["num_val"]
    for i, record in enumerate(records):
        info = dataset.get_data_info(i)
        assert info["img_id"] == record["image_id"] and info["img_path"] == record["file_name"]
        kept = [a for a in record["annotations"] if a["bbox"][2] > 0 and a["bbox"][3] > 0]
        assert [x["ignore_flag"] for x in info["instances"]] == [a["ignore"] for a in kept]
        for inst, ann in zip(info["instances"], kept):
            x, y, w, h = ann["bbox"]
            assert inst["bbox"] == [x, y, x + w, y + h] and inst["bbox_label"] == 0
    assert any(x["ignore_flag"] for d in dataset for x in d["instances"])
    assert dataset.metainfo["classes"] == ("person",)


def test_ignored_boxes_never_become_training_targets(citypersons_root):
    """mmdet's own loading and packing put ignore boxes into ``ignored_instances``."""
    from mmengine.registry import DefaultScope

    with DefaultScope.overwrite_default_scope("mmdet"):  # the transforms are mmdet's
        dataset = _dataset(citypersons_root, split="train", pipeline=[
            dict(type="LoadImageFromFile"), dict(type="LoadAnnotations", with_bbox=True),
            dict(type="PackDetInputs")])
    seen_ignored = 0
    for i in range(len(dataset)):
        flags = [x["ignore_flag"] for x in dataset.get_data_info(i)["instances"]]
        packed = dataset[i]["data_samples"]
        assert len(packed.gt_instances) == flags.count(0)
        assert len(packed.ignored_instances) == flags.count(1)
        assert (packed.gt_instances.labels == 0).all()
        seen_ignored += flags.count(1)
    assert seen_ignored > 0


def test_missing_annotations_or_images_are_named(tmp_path, citypersons_root):
    with pytest.raises(FileNotFoundError, match=r"no annotation file .*anno_val.mat; expected"):
        _dataset(tmp_path, test_mode=True)
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(citypersons_root, copy)
    victim = next((copy / "leftImg8bit" / "val").rglob("*.png"))
    victim.unlink()
    with pytest.raises(FileNotFoundError, match=rf"image .*{victim.name} .*does not exist"):
        _dataset(copy, test_mode=True)


def test_metric_equals_the_project_evaluator(citypersons_root):
    """Detections near the ground truth with noise and false positives, through the metric's
    own process/compute_metrics, score exactly what evaluate_miss_rate gives."""
    from hybridkt_ext.datasets.citypersons import load_citypersons_mat
    from hybridkt_ext.evaluation import evaluate_miss_rate
    from hybridkt_ext.for_mmdet import CityPersonsMetric

    records = load_citypersons_mat(citypersons_root / "annotations" / "anno_val.mat",
                                   image_root=citypersons_root)
    rng = np.random.default_rng(0)
    samples, detections = [], {}
    for record in records:
        rows = []
        for ann in record["annotations"]:
            if rng.random() < 0.8:
                x, y, w, h = np.asarray(ann["bbox"]) + rng.normal(0, 2, 4)
                rows.append([x, y, w, h, rng.random()])
        rows += [[rng.uniform(0, 1900), rng.uniform(0, 900), 40, 100, rng.random() * 0.5]
                 for _ in range(3)]
        rows = np.asarray(rows, dtype=np.float64)
        detections[record["image_id"]] = rows
        boxes = np.concatenate([rows[:, :2], rows[:, :2] + rows[:, 2:4]], axis=1)
        labels = np.zeros(len(rows), dtype=np.int64)
        labels[-1] = 3  # another class: not a person, never scored
        samples.append({"img_id": record["image_id"], "pred_instances": {
            "bboxes": torch.from_numpy(boxes), "scores": torch.from_numpy(rows[:, 4]),
            "labels": torch.from_numpy(labels)}})
        detections[record["image_id"]] = rows[:-1]
    metric = CityPersonsMetric(ann_file="annotations/anno_val.mat",
                               data_root=str(citypersons_root))
    metric.process({}, samples)
    got = metric.compute_metrics(metric.results)
    expected = evaluate_miss_rate(records, detections)
    assert set(got) == {f"MR2_{k}" for k in expected}
    for name, value in expected.items():
        assert got[f"MR2_{name}"] == pytest.approx(100 * value, abs=1e-9)
    assert 0 < got["MR2_Reasonable"] < 100


def test_metric_refuses_detections_for_images_its_file_does_not_hold(citypersons_root):
    from hybridkt_ext.for_mmdet import CityPersonsMetric

    metric = CityPersonsMetric(ann_file=str(citypersons_root / "annotations" / "anno_val.mat"))
    metric.process({}, [{"img_id": 999, "pred_instances": {
        "bboxes": torch.zeros(0, 4), "scores": torch.zeros(0),
        "labels": torch.zeros(0, dtype=torch.long)}}])
    with pytest.raises(ValueError, match=r"image ids \[999\]"):
        metric.compute_metrics(metric.results)


def test_metric_counts_every_ground_truth_image(citypersons_root):
    """Perfect detections score 0.00; dropping an image with pedestrians turns them into misses
    (the official denominator), instead of evaluating one image fewer."""
    from hybridkt_ext.datasets.citypersons import load_citypersons_mat
    from hybridkt_ext.evaluation import evaluate_miss_rate
    from hybridkt_ext.for_mmdet import CityPersonsMetric
    from mmengine.logging import MMLogger

    records = load_citypersons_mat(citypersons_root / "annotations" / "anno_val.mat")
    perfect = {r["image_id"]: np.array([a["bbox"] + [1.0] for a in r["annotations"]],
                                       dtype=np.float64).reshape(-1, 5) for r in records}
    dropped = next(r["image_id"] for r in records if any(not a["ignore"] and a["height"] >= 50
                                                         for a in r["annotations"]))

    def metric_on(image_ids):
        metric = CityPersonsMetric(ann_file=str(citypersons_root / "annotations" / "anno_val.mat"))
        metric.process({}, [{"img_id": i, "pred_instances": {
            "bboxes": torch.from_numpy(np.concatenate(
                [perfect[i][:, :2], perfect[i][:, :2] + perfect[i][:, 2:4]], axis=1)),
            "scores": torch.from_numpy(perfect[i][:, 4]),
            "labels": torch.zeros(len(perfect[i]), dtype=torch.long)}} for i in image_ids])
        return metric.compute_metrics(metric.results)

    assert metric_on(perfect)["MR2_Reasonable"] == 0.0
    kept = [i for i in perfect if i != dropped]
    # mmengine's logger writes to the stream it was created with, out of capsys' reach.
    messages: list[str] = []
    seen = logging.Handler()
    seen.emit = lambda record: messages.append(record.getMessage())
    logger = MMLogger.get_current_instance()
    logger.addHandler(seen)
    try:
        got = metric_on(kept)
    finally:
        logger.removeHandler(seen)
    expected = evaluate_miss_rate(records, {i: perfect[i] for i in kept})
    assert got["MR2_Reasonable"] == pytest.approx(100 * expected["Reasonable"], abs=1e-9)
    assert got["MR2_Reasonable"] > 0
    assert any(f"1 of the {len(records)} images" in m for m in messages)
