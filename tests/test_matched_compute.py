"""The matched-compute experiment (issue 24): its plan from measured costs, its table and
verdict, and a real tiny digits run through tools/reproduce.py's runner (no mmseg needed)."""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import pytest

from hybridkt_ext.reproduction.matched_compute import (CostedRun, Trained, matched_table, plan,
                                                       plot_matched_compute,
                                                       run_matched_compute, stretched_lengths)
from hybridkt_ext.run_logs import mmengine_training_seconds


@dataclass
class CountedSetting:
    """A setting whose runs cost a known number of seconds per unit of length: the driver's
    arithmetic is checked against numbers written here, not against another run's timing."""

    seconds_per_unit: dict
    metric_of: object  # (method, length, seed) -> metric
    name: str = "counted"
    title: str = "counted"
    metric: str = "acc"
    lower_is_better: bool = False
    unit: str = "epochs"
    base_length: int = 10
    methods: tuple = ("fitnet",)
    parallel: bool = False

    def __post_init__(self):
        self.trained = []

    def prepare(self, progress):
        return "counted setting."

    def train(self, method, length, seed):
        self.trained.append((method, length, seed))
        return Trained(self.metric_of(method, length, seed),
                       self.seconds_per_unit[method] * length)

    def flops_per_step(self, method):
        return 1e9 * self.seconds_per_unit[method]

    def steps(self, length):
        return 2 * length


def _plain_run_keeps_improving(method, length, seed):
    return {"none": 50.0 + length, "hybrid": 55.0, "hybrid_alternate": 54.0,
            "fitnet": 51.0}[method] + 0.1 * seed


def test_stretched_lengths_are_the_measured_cost_ratios():
    assert stretched_lengths(10, {"none": 2.0, "hybrid": 5.2, "hybrid_alternate": 3.1}) == {
        "hybrid": 26, "hybrid_alternate": 16}
    # A mode cheaper than the plain run (noise) still gets a longer plain run to compare with.
    assert stretched_lengths(10, {"none": 2.0, "hybrid": 1.9}) == {"hybrid": 11}


def test_the_experiment_trains_the_plain_student_at_each_hybrid_modes_cost():
    setting = CountedSetting({"none": 1.0, "hybrid": 3.0, "hybrid_alternate": 2.0,
                              "fitnet": 1.5}, _plain_run_keeps_improving)
    table, runs, settings = run_matched_compute(setting, [0, 1], progress=lambda _: None)
    assert settings["lengths"] == {"hybrid": 30, "hybrid_alternate": 20}
    # Seed 0's cost runs first, then whole seeds; nothing trained twice.
    assert setting.trained[:3] == [("none", 10, 0), ("hybrid", 10, 0),
                                   ("hybrid_alternate", 10, 0)]
    assert len(set(setting.trained)) == len(setting.trained) == 2 * 6
    assert set(setting.trained) == {(m, n, s) for s in (0, 1) for m, n in (
        ("none", 10), ("none", 20), ("none", 30), ("hybrid", 10), ("hybrid_alternate", 10),
        ("fitnet", 10))}
    summary = table.summary()
    assert list(table.rows)[:3] == ["none, 10 epochs", "none, 20 epochs", "none, 30 epochs"]
    assert summary["hybrid, 10 epochs"]["cost (x no teacher)"]["mean"] == pytest.approx(3.0)
    assert summary["none, 30 epochs"]["training s"]["values"] == [30.0, 30.0]
    # FLOPs: per-step count x steps (2 per epoch here).
    assert summary["fitnet, 10 epochs"]["training GFLOPs"]["mean"] == pytest.approx(1.5 * 20)
    assert "hybrid (55.05 +- 0.07) does not beat the student without a teacher trained at " \
           "its cost (30 epochs: 80.05 +- 0.07)" in table.notes


def test_the_verdict_names_a_win_and_a_tie_and_reads_lower_as_better():
    def runs_of(values):
        return [CostedRun(m, n, s, v, 1.0, 1.0) for (m, n), vs in values.items()
                for s, v in enumerate(vs)]

    setting = CountedSetting({}, None, lower_is_better=True)
    lengths = {"hybrid": 30, "hybrid_alternate": 20}
    runs = runs_of({("none", 10): [90, 90], ("none", 30): [80, 82], ("none", 20): [70, 90],
                    ("hybrid", 10): [60, 62], ("hybrid_alternate", 10): [75, 85]})
    notes = matched_table(setting, runs, lengths).notes
    assert "hybrid (61.00 +- 1.41) beats" in notes  # a lower miss rate than 81
    assert "hybrid_alternate (80.00 +- 7.07) is within the seed spread of" in notes


def test_the_plan_skips_seed_zeros_cost_runs_only():
    setting = CountedSetting({}, None, methods=("fitnet", "hybrid"))
    todo = plan(setting, [0, 1], {"hybrid": 30, "hybrid_alternate": 30})
    assert ("none", 30, 0) in todo and ("none", 10, 1) in todo and ("hybrid", 10, 1) in todo
    assert ("hybrid", 10, 0) not in todo and todo.count(("none", 30, 1)) == 1


def test_the_plot_is_written(tmp_path):
    setting = CountedSetting({}, None)
    runs = [CostedRun("none", n, s, 50.0 + n + s, n * 1.0, n * 1e12) for n in (10, 30)
            for s in (0, 1)] + [CostedRun("hybrid", 10, s, 55.0, 30.0, 3e13) for s in (0, 1)]
    path = plot_matched_compute(setting, runs, tmp_path / "m.png")
    assert path.stat().st_size > 10_000


def _scalars(work: Path, rows: list[dict]) -> None:
    folder = work / "20260101_000000" / "vis_data"
    folder.mkdir(parents=True)
    (folder / "scalars.json").write_text("\n".join(json.dumps(r) for r in rows))


def test_training_seconds_add_each_logged_iteration_time_over_its_interval(tmp_path):
    _scalars(tmp_path, [{"step": 4, "time": 0.5, "loss": 1.0}, {"step": 8, "time": 0.25},
                        {"step": 8, "mIoU": 10.0}])
    assert mmengine_training_seconds(tmp_path, 8) == pytest.approx(4 * 0.5 + 4 * 0.25)
    # The last iterations not logged: the logged rate stands for them.
    assert mmengine_training_seconds(tmp_path, 16) == pytest.approx(6.0)
    with pytest.raises(ValueError, match="no scalars.json rows with an iteration time"):
        mmengine_training_seconds(tmp_path / "empty", 8)


def test_digits_through_the_reproduce_runner(tmp_path):
    """Real students and teacher (1 epoch of 2 steps each), real FLOP counts and seconds."""
    import torch

    from hybridkt_ext.reproduction.runner import run_experiments

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        summary = run_experiments(["matched_compute_digits"], tmp_path / "out", tmp_path / "w",
                                  seeds=[0], quick=True, progress=lambda _: None,
                                  train_limit=128)
    finally:
        torch.set_num_threads(threads)
    settings = summary["matched_compute_digits"]["settings"]
    flops = settings["gflops_per_step"]
    # The three paths cost more than one path plus a hybrid path, which costs more than the
    # student alone; the hybrid path's teacher stages make it more than twice a student step.
    assert flops["hybrid"] > flops["hybrid_alternate"] > 2 * flops["none"] > 0
    data = json.loads((tmp_path / "out" / "matched_compute_digits.json").read_text())
    rows = data["summary"]
    for method in ("hybrid", "hybrid_alternate", "fitnet", "at", "ft", "ab", "cwd"):
        cell = rows[f"{method}, 1 epochs"]
        assert math.isfinite(cell["top-1 (%)"]["mean"]) and cell["training s"]["mean"] > 0
    longer = [r for r in rows if r.startswith("none, ") and r != "none, 1 epochs"]
    assert longer and all(int(r.split()[1]) > 1 for r in longer)
    assert (tmp_path / "out" / "matched_compute_digits.png").exists()
    assert "Verdict at matched training seconds" in (
        tmp_path / "out" / "matched_compute_digits.md").read_text()


def test_a_settings_own_cost_setters_and_comparisons_drive_the_plan_and_verdict():
    """The several-teachers experiment's shape: the plain student stretched to the cost of
    the two-teacher run only, and the verdict's equal-iteration comparisons."""
    setting = CountedSetting(
        {"none": 1.0, "two": 5.0, "one": 3.0, "sampled": 3.2},
        lambda m, n, s: {"none": 50.0 + n, "one": 55.0, "two": 56.0, "sampled": 55.5}[m] + s,
        methods=("one", "two", "sampled"))
    setting.cost_setters = ("two",)
    setting.comparisons = (("two", "one"), ("sampled", "two"))
    table, _, settings = run_matched_compute(setting, [0, 1], progress=lambda _: None)
    assert settings["lengths"] == {"two": 50}
    assert setting.trained[:2] == [("none", 10, 0), ("two", 10, 0)]
    assert set(setting.trained) == {(m, n, s) for s in (0, 1) for m, n in (
        ("none", 10), ("none", 50), ("one", 10), ("two", 10), ("sampled", 10))}
    assert len(setting.trained) == 10  # nothing trained twice, no hybrid_alternate
    assert list(table.rows) == ["none, 10 epochs", "none, 50 epochs", "one, 10 epochs",
                                "two, 10 epochs", "sampled, 10 epochs"]
    assert "two (56.50 +- 0.71) does not beat the student without a teacher trained at its " \
           "cost (50 epochs: 100.50 +- 0.71)" in table.notes
    assert "Verdict at equal epochs (10): two (56.50 +- 0.71, 5.00x the seconds of no " \
           "teacher) beats one (55.50 +- 0.71, 3.00x)." in table.notes
    assert "sampled (56.00 +- 0.71, 3.20x the seconds of no teacher) is within the seed " \
           "spread of two" in table.notes


def test_the_several_teachers_setting_gives_each_method_its_teachers_and_balance(tmp_path):
    """Which config, teacher list and balance each run of matched_compute_several_teachers
    gets (no training: the configs as the Runner would receive them)."""
    pytest.importorskip("mmseg")
    from hybridkt_ext.reproduction.matched_compute_settings import SeveralTeachersSetting
    from hybridkt_ext.reproduction.runner import ALL_EXPERIMENTS, split_options
    from hybridkt_ext.reproduction.segmentation_demo import load_run_config

    assert "matched_compute_several_teachers" in ALL_EXPERIMENTS
    assert split_options(["matched_compute_several_teachers"], {"iters": 4}) == {
        "matched_compute_several_teachers": {"iters": 4}}
    setting = SeveralTeachersSetting(tmp_path)
    assert setting.methods == ("hybrid_gta5", "hybrid_gta5_digits", "hybrid_gta5_digits_sample")
    assert setting.cost_setters == ("hybrid_gta5_digits",)
    # What prepare() leaves: the data roots, the trained GTA5 teacher, the digit classifier.
    data = {"train_dataloader.dataset.data_root": str(tmp_path / "cs")}
    setting._options = {**data, "model.backbone.teacher.checkpoint": "gta5.pth",
                        "model.backbone.teacher.allow_random_init": False}
    setting._digits = tmp_path / "digits.pth"

    def built(method):
        config, options = setting._config(method)
        cfg = load_run_config(config, tmp_path / method, 4, 0, options)
        assert cfg.train_dataloader.dataset.data_root == str(tmp_path / "cs")
        return config.name, cfg.model.backbone

    name, backbone = built("none")
    assert "no-teacher" in name and backbone.get("teacher") is None
    name, backbone = built("hybrid_gta5")
    assert name.startswith("deeplabv3_r18w8-d8_hybrid-r18w16-d8_") and \
        backbone.teacher.checkpoint == "gta5.pth" and not backbone.teacher.allow_random_init
    for method, sampling in (("hybrid_gta5_digits", None),
                             ("hybrid_gta5_digits_sample", "sample")):
        name, backbone = built(method)
        assert "multi-teacher" in name
        teachers = backbone.teacher
        assert [t["name"] for t in teachers] == ["gta5", "digits"]
        assert teachers[0]["type"] == "ResNetV1c" and teachers[1]["type"] == "torchvision.resnet18"
        assert [t["checkpoint"] for t in teachers] == ["gta5.pth", str(tmp_path / "digits.pth")]
        assert not any(t["allow_random_init"] for t in teachers)
        assert backbone.balance.get("teachers") == sampling
        assert backbone.balance.mode == "dynamic" and backbone.transfer == "hybrid"
    with pytest.raises(ValueError, match="unknown method 'cwd'"):
        setting._config("cwd")
