"""The reproduction pipeline (tools/reproduce.py) on a tiny classification run.

Runs the real code path (teachers, students per mode and seed, tables, plots) with 2 epochs
on 64 training digits (one step per epoch) and two seeds, then checks the outputs hold real
numbers. No detectron2 or mmseg needed (about 20 s of CPU time).
"""
from __future__ import annotations

import json
import statistics

import pytest

from hybridkt_ext.reproduction import ResultTable, mean_std
from hybridkt_ext.reproduction.runner import run_experiments

MODES = ("none", "kd", "hybrid")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    out, work = tmp_path_factory.mktemp("out"), tmp_path_factory.mktemp("work")
    try:
        summary = run_experiments(["classification"], out, work, seeds=[0, 1], quick=True,
                                  progress=lambda _: None, epochs=2, teacher_epochs=1,
                                  train_limit=64, modes=MODES, fixed_alphas=(0.5,),
                                  batch_size=64)
    finally:
        torch.set_num_threads(threads)
    return out, summary


def test_mean_std_is_the_sample_std():
    assert mean_std([1.0, 2.0, 4.0]) == pytest.approx((7 / 3, statistics.stdev([1, 2, 4])))
    assert mean_std([3.0]) == (3.0, 0.0)


def test_table_markdown_shows_mean_std_and_paper():
    t = ResultTable("t", "title", ["acc"], paper={"a": {"acc": 70.0}})
    t.add("a", "acc", 1.0)
    t.add("a", "acc", 3.0)
    md = t.to_markdown()
    assert f"2.00 ± {statistics.stdev([1, 3]):.2f} (n=2)" in md and "| 70 |" in md
    with pytest.raises(KeyError):
        t.add("a", "unknown", 1.0)


def test_table1_has_every_mode_and_real_numbers(tiny_run):
    out, summary = tiny_run
    assert summary["classification"]["seeds"] == [0, 1]
    data = json.loads((out / "table1_classification.json").read_text())
    rows = data["summary"]
    labels = {"none": "no teacher", "kd": "KD", "hybrid": "hybrid forward (dynamic alpha)"}
    for mode in MODES:
        cell = rows[labels[mode]]["top-1 (%)"]
        assert cell["n"] == 2 and len(cell["values"]) == 2
        assert all(0.0 <= v <= 100.0 for v in cell["values"])
        assert cell["mean"] == pytest.approx(statistics.mean(cell["values"]))
        assert cell["std"] == pytest.approx(statistics.stdev(cell["values"]))
        # the exported plain student scores exactly what the trained student scored
        assert rows[labels[mode]]["exported plain model (%)"]["values"] == cell["values"]
    assert rows["teacher resnet18"]["top-1 (%)"]["n"] == 1
    md = (out / "table1_classification.md").read_text()
    assert all(label in md for label in labels.values()) and "71.39" in md  # paper column


def test_fixed_alpha_and_alpha_tables(tiny_run):
    out, _ = tiny_run
    fig9 = json.loads((out / "fig9_fixed_alpha.json").read_text())["summary"]
    assert set(fig9) == {"dynamic", "fixed 0.5", "no teacher"}
    alpha = json.loads((out / "fig78_alpha.json").read_text())["summary"]
    assert set(alpha) == {"far teacher resnet18", "near teacher mobilenet_v1_0.5"}
    for row in alpha.values():
        for key in ("alpha first 10% of steps", "alpha last 10% of steps"):
            assert row[key]["n"] == 2 and all(v > 0 for v in row[key]["values"])


def test_plots_are_written(tiny_run):
    out, summary = tiny_run
    names = summary["classification"]["plots"]
    assert set(names) == {"cls_alpha_per_teacher.png", "cls_training_curves.png",
                          "cls_path_losses.png", "cls_fixed_alpha.png"}
    for name in names:
        data = (out / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and 5_000 < len(data) < 200_000


def _without(monkeypatch, *frameworks):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name in frameworks else real(name, *a))


def test_detection_skips_when_its_framework_is_missing(monkeypatch, tmp_path):
    _without(monkeypatch, "detectron2", "mmdet")
    for framework, said in (("detectron2", "detectron2 is not installed"),
                            ("auto", "mmdet is not installed")):
        summary = run_experiments(["detection"], tmp_path, tmp_path, seeds=[0], quick=True,
                                  progress=lambda _: None, framework=framework, overwrite=True)
        assert said in summary["detection"]["skipped"]
        assert "Table 4" in summary["detection"]["skipped"]


def test_detection_runs_on_mmdet_where_detectron2_is_missing(monkeypatch):
    from hybridkt_ext.reproduction import detection

    _without(monkeypatch, "detectron2")
    backend, reason = detection.choose_framework("auto")
    assert reason is None and backend.NAME == "mmdet"
    with pytest.raises(ValueError, match="choose from"):
        detection.choose_framework("mmdetection")


def test_an_option_no_chosen_experiment_takes_is_refused(tmp_path):
    from hybridkt_ext.reproduction.runner import split_options

    with pytest.raises(ValueError, match=r"iters \(taken by \['segmentation', 'detection', "
                                         r"'matched_compute_segmentation', "
                                         r"'matched_compute_detection', "
                                         r"'matched_compute_several_teachers'\]\)"):
        run_experiments(["classification"], tmp_path, tmp_path, seeds=[0], quick=True,
                        progress=lambda _: None, iters=10)
    with pytest.raises(ValueError, match="epoch"):
        split_options(["classification"], {"epoch": 3})  # misspelt: taken by none
    assert not (tmp_path / "summary.json").exists()  # refused before anything ran
    shares = split_options(["classification", "detection"],
                           {"epochs": 2, "iters": 5, "jobs": None, "framework": "mmdet"})
    assert shares == {"classification": {"epochs": 2},
                      "detection": {"iters": 5, "framework": "mmdet"}}


def test_a_diverged_detection_run_is_a_nan_row_and_other_failures_stop(tmp_path):
    import math
    import sys
    from types import SimpleNamespace

    from hybridkt_ext.reproduction.detection import METRICS, DetectionTables, Run, train_run

    def backend(message):
        code = f"import sys; sys.stderr.write({message!r}); sys.exit(1)"
        return SimpleNamespace(command=lambda *a: [sys.executable, "-c", code])

    found, rows, _ = train_run(backend("train_det: NonFiniteLossError: L1 is nan at step 7"),
                            Run(0, "hybrid"), tmp_path, tmp_path / "t.pth", [])
    assert set(found) == set(METRICS) and all(math.isnan(v) for v in found.values())
    tables = DetectionTables(fig8_too=False)
    tables.add(Run(0, "hybrid"), found, rows)
    assert "1 diverged" in tables.t4.to_markdown()
    with pytest.raises(RuntimeError, match="(?s)hybrid seed 0 failed:.*no such file"):
        train_run(backend("train_det: FileNotFoundError: no such file"), Run(0, "hybrid"),
               tmp_path, tmp_path / "t.pth", [])


def test_detection_alpha_phases_average_the_logged_steps():
    from hybridkt_ext.reproduction.detection import _alpha_phases

    rows = [{"step": 20 * i + 19, "hkt_alpha": float(i)} for i in range(30)]  # 600 iterations
    phases = _alpha_phases(rows)
    assert phases == {"alpha first 10%": 1.0,  # steps 19..59: alphas 0, 1, 2
                      "alpha middle 40-60%": 14.5,  # alphas 12..17
                      "alpha last 10%": 28.0}  # alphas 27, 28, 29
    assert _alpha_phases(rows[:3])["alpha middle 40-60%"] == 1.0  # never an empty slice


def test_a_diverged_classification_student_is_a_nan_row_never_a_crash(tmp_path, monkeypatch):
    from hybridkt_ext.core import NonFiniteLossError
    from hybridkt_ext.for_classification import experiment

    real = experiment.train_student

    def hybrid_diverges(mode, *args, **kwargs):
        if mode == "hybrid":  # the dynamic-alpha row, which feeds Fig. 9 and Figs. 7/8 too
            raise NonFiniteLossError("L1 is nan at step 3")
        return real(mode, *args, **kwargs)

    monkeypatch.setattr(experiment, "train_student", hybrid_diverges)
    run_experiments(["classification"], tmp_path, tmp_path, seeds=[0], quick=True,
                    progress=lambda _: None, epochs=1, teacher_epochs=1, train_limit=64,
                    modes=("none", "hybrid"), fixed_alphas=(), batch_size=64, near_gap=False)
    table1 = json.loads((tmp_path / "table1_classification.json").read_text())["summary"]
    hybrid = table1["hybrid forward (dynamic alpha)"]["top-1 (%)"]
    assert hybrid["diverged"] == 1 and hybrid["n"] == 0
    assert table1["no teacher"]["top-1 (%)"]["n"] == 1
    assert "1 diverged" in (tmp_path / "fig78_alpha.md").read_text()


def test_each_detection_run_gets_this_process_torch_thread_count(tmp_path, monkeypatch):
    import sys
    from types import SimpleNamespace

    import torch

    from hybridkt_ext.reproduction.detection import METRICS, Run, train_run

    seen = tmp_path / "threads"
    code = f"import os; open({str(seen)!r}, 'w').write(os.environ['OMP_NUM_THREADS'])"
    backend = SimpleNamespace(command=lambda *a: [sys.executable, "-c", code],
                              final_metrics=lambda _: {m: 50.0 for m in METRICS},
                              alpha_rows=lambda _: [])
    monkeypatch.setenv("OMP_NUM_THREADS", "7")  # what the shell said; --threads decides
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tools/reproduce.py --threads 1 (its default)
    try:
        found, _, _ = train_run(backend, Run(0, "none"), tmp_path, tmp_path / "t.pth", [])
    finally:
        torch.set_num_threads(threads)
    assert seen.read_text() == "1" and found["MR2_All"] == 50.0
