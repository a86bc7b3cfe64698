"""Detection on the synthetic CityPersons-layout data: Table 4, Fig. 8 and Fig. 9 (MR^-2, lower
is better), with a teacher from another task and domain.

One experiment, two frameworks: each run is a training command of the shipped synthetic
configs (Faster R-CNN + FPN, MobileNetV1-0.25 student), same iterations, lr and seed for every
mode, on detectron2 (``detection_detectron2``) or on MMDetection (``detection_mmdet``, the
default where detectron2 is not installed). The teacher is a torchvision ResNet-18 trained to
classify digits (the classification experiment's teacher): another task and another domain,
as the paper's pose-estimation teacher; its ``fc`` is dropped.
"""
from __future__ import annotations

import math
import os
import shutil
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import torch

from . import detection_detectron2, detection_mmdet
from .tables import ResultTable, write_tables

FRAMEWORKS = {"detectron2": detection_detectron2, "mmdet": detection_mmdet}
LABELS = {"none": "w/o teacher", "fitnet": "FitNet", "at": "AT", "hybrid": "hybrid forward"}
METRICS = ["MR2_Reasonable", "MR2_Reasonable_small", "MR2_Reasonable_occ=heavy", "MR2_All"]
# Iterations of --quick: half the configs' schedule (learning-rate step at the same fraction).
QUICK_ITERS = 300
# Fig. 9's fixed alphas, run on the first SWEEP_SEEDS seeds only: each hybrid run takes about
# 9 minutes on one core, so the full sweep on every seed would take hours.
FIXED_ALPHAS = (0.1, 0.5, 1.0, 2.0)
SWEEP_SEEDS = 1
# Fig. 8: the same teacher with two students, the model-gap one (MobileNetV1, Table 4's) and
# one of the teacher's own architecture (ResNet-18), on the first FIG8_SEEDS seeds; only where
# the framework has that second student's config (detectron2).
FIG8_STUDENTS = {"hybrid": "MobileNetV1-0.25 student (model gap)",
                 "hybrid_r18": "ResNet-18 student (the teacher's architecture)"}
FIG8_SEEDS = 2
# The paper's Table 4 (CityPersons val, MR^-2 %): R, R small, R occ heavy, All.
PAPER_TABLE4 = {"w/o teacher": (17.20, 21.87, 61.76, 47.09), "FitNet": (16.70, 22.20, 61.13, 46.89),
                "AT": (16.69, 21.42, 65.50, 46.86), "hybrid forward": (16.19, 21.12, 64.11, 46.85)}
# What a diverged run's last lines say (the core's NonFiniteLossError, detectron2's
# FloatingPointError): such a run is a NaN row, every other failure stops the experiment.
DIVERGED = ("NonFiniteLossError", "FloatingPointError")


def choose_framework(framework: str = "auto") -> tuple[ModuleType | None, str | None]:
    """The backend module, or None and a sentence saying why detection cannot run.
    ``auto``: detectron2 where it is installed, else mmdet."""
    if framework == "auto":
        framework = "detectron2" if detection_detectron2.missing() is None else "mmdet"
    if framework not in FRAMEWORKS:
        raise ValueError(f"detection framework {framework!r}: choose from "
                         f"{['auto', *FRAMEWORKS]}.")
    backend = FRAMEWORKS[framework]
    reason = backend.missing()
    if reason:
        return None, f"{reason}; the detection experiment (Table 4) is skipped"
    return backend, None


def digits_teacher(work: Path) -> dict:
    """The classification experiment's far teacher (digits ResNet-18) if it ran in this work
    dir, else one trained here for 4 epochs."""
    from .classification import teacher_file

    trained = teacher_file(work.parent / "classification", "far", "resnet18")
    if not trained.exists():
        from hybridkt_ext.for_classification import TrainConfig
        from hybridkt_ext.for_classification.data import load_datasets
        from hybridkt_ext.for_classification.experiment import train_teacher

        train, test, n = load_datasets(None, None, 0)
        trained = work / "teacher_resnet18_digits.pth"
        train_teacher("resnet18", n, train, test, TrainConfig(epochs=4, seed=1000), trained,
                      overwrite=True)
    return torch.load(trained, map_location="cpu", weights_only=True)


def _alpha_phases(rows: list[dict[str, float]]) -> dict[str, float]:
    """Mean alpha over the first 10%, the middle 40-60% and the last 10% of the logged steps
    (Fig. 8's right panel zooms on the middle of training, where the students differ)."""
    alphas = [r["hkt_alpha"] for r in rows]
    n = len(alphas)

    def mean(lo: float, hi: float) -> float:
        part = alphas[int(lo * n):max(int(hi * n), int(lo * n) + 1)]
        return sum(part) / len(part)

    return {"alpha first 10%": mean(0.0, 0.1), "alpha middle 40-60%": mean(0.4, 0.6),
            "alpha last 10%": mean(0.9, 1.0)}


@dataclass(frozen=True)
class Run:
    seed: int
    mode: str
    alpha: float | None = None

    @property
    def name(self) -> str:
        return self.mode if self.alpha is None else f"fixed{self.alpha:g}"


def planned_runs(seeds: list[int], quick: bool, modes: set[str]) -> list[Run]:
    """Every seed of the Table 4 rows first, then Fig. 8's second student, then the sweep: a
    cut-short experiment still has a table. Quick: no teacher and hybrid forward only."""
    runs = [Run(seed, m) for seed in seeds
            for m in (("none", "hybrid") if quick else ("none", "fitnet", "at", "hybrid"))]
    if not quick:
        if "hybrid_r18" in modes:
            runs += [Run(seed, "hybrid_r18") for seed in seeds[:FIG8_SEEDS]]
        runs += [Run(seed, "fixed", a) for seed in seeds[:SWEEP_SEEDS] for a in FIXED_ALPHAS]
    return runs


@dataclass
class DetectionTables:
    """Table 4, the Fig. 9 sweep and (full runs with a second student) Fig. 8."""

    fig8_too: bool
    t4: ResultTable = field(default_factory=lambda: ResultTable(
        "table4_detection", "Table 4 analogue: MR^-2 (%) on synthetic CityPersons val, teacher "
        "= digit classifier (task + domain + model gap)", METRICS, lower_is_better=METRICS,
        paper={k: dict(zip(METRICS, v)) for k, v in PAPER_TABLE4.items()}))
    sweep: ResultTable = field(default_factory=lambda: ResultTable(
        "fig9_detection_fixed_alpha", "Fig. 9 (detection): fixed vs dynamic alpha, MR^-2 "
        "reasonable (%)", ["MR2_Reasonable"], lower_is_better=["MR2_Reasonable"]))
    fig8: ResultTable = field(default_factory=lambda: ResultTable(
        "fig8_detection_alpha", "Fig. 8 analogue: dynamic alpha of two students with the same "
        "teacher (digit-classifier ResNet-18)",
        ["alpha first 10%", "alpha middle 40-60%", "alpha last 10%", "MR2_Reasonable"],
        lower_is_better=["MR2_Reasonable"]))
    curves: dict[str, dict[int, list]] = field(default_factory=dict)

    @property
    def all(self) -> list[ResultTable]:
        return [self.t4, self.sweep] + ([self.fig8] if self.fig8_too else [])

    def add(self, run: Run, found: dict[str, float], alpha_rows: list[dict]) -> None:
        """One run's final MR^-2 (NaN everywhere for a diverged run) into its rows."""
        if run.mode in LABELS:
            for key in METRICS:
                self.t4.add(LABELS[run.mode], key, found[key])
        if self.fig8_too and run.mode in FIG8_STUDENTS and alpha_rows:
            self.curves.setdefault(FIG8_STUDENTS[run.mode], {})[run.seed] = alpha_rows
            for key, value in {**_alpha_phases(alpha_rows),
                               "MR2_Reasonable": found["MR2_Reasonable"]}.items():
                self.fig8.add(FIG8_STUDENTS[run.mode], key, value)
        row = (f"fixed {run.alpha:g}" if run.alpha is not None
               else {"none": "no teacher", "hybrid": "dynamic"}.get(run.mode))
        if row is not None:
            self.sweep.add(row, "MR2_Reasonable", found["MR2_Reasonable"])

    def describe(self, framework: str, schedule: str, seeds: list[int], quick: bool) -> None:
        self.t4.notes = self.sweep.notes = (
            f"Setting: {framework}, Faster R-CNN FPN, MobileNetV1-0.25 student, synthetic "
            f"CityPersons layout, {schedule}, every mode; {len(seeds)} seeds {seeds}"
            + ("" if quick else f"; fixed alphas on seed(s) {seeds[:SWEEP_SEEDS]} only") + ".")
        self.fig8.notes = (f"Setting: as Table 4 ({schedule}); seeds {seeds[:FIG8_SEEDS]}. "
                           "Paper: the ResNet-50 student (the teacher's architecture) has the "
                           "larger alpha in the middle of training (its steps 4000-6000).")

    def plot(self, out: Path) -> list[Path]:
        from .figures import plot_alpha_per_run, plot_fixed_alpha_sweep

        written = []
        if any(r.startswith("fixed ") for r in self.sweep.rows):
            written.append(plot_fixed_alpha_sweep(
                self.sweep, "MR2_Reasonable", out / "det_fixed_alpha.png",
                "synthetic CityPersons: fixed vs dynamic alpha (Fig. 9)", lower_is_better=True))
        if len(self.curves) == len(FIG8_STUDENTS):
            written.append(plot_alpha_per_run(
                self.curves, out / "det_alpha_per_student.png",
                "synthetic CityPersons: alpha of two students, same teacher (Fig. 8)", smooth=1))
        return written


def train_run(backend: ModuleType, run: Run, work: Path, teacher: Path,
           schedule_opts: list[str]) -> tuple[dict[str, float], list[dict], float]:
    """One run: its final MR^-2, its alpha log and seconds; a diverged run's MR^-2 are NaN."""
    output_dir = work / f"seed{run.seed}" / run.name
    shutil.rmtree(output_dir, ignore_errors=True)  # a previous attempt's logs would mix in
    start = time.perf_counter()
    # Each run as many torch threads as this process (tools/reproduce.py --threads, default 1):
    # runs side by side (--jobs) on a small machine would otherwise oversubscribe its cores.
    env = dict(os.environ, OMP_NUM_THREADS=str(torch.get_num_threads()))
    done = subprocess.run(backend.command(run.mode, run.seed, output_dir, teacher, run.alpha,
                                          schedule_opts), env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        if any(word in done.stderr[-3000:] for word in DIVERGED):
            return {key: float("nan") for key in METRICS}, [], seconds
        raise RuntimeError(f"detection run {run.name} seed {run.seed} failed:\n"
                           f"{done.stderr[-3000:]}")
    found = backend.final_metrics(output_dir)
    missing = [k for k in METRICS if k not in found]
    if missing:
        raise RuntimeError(f"detection run {run.name} seed {run.seed}: the logs in {output_dir} "
                           f"lack {missing} (have {sorted(found)})")
    return found, backend.alpha_rows(output_dir), seconds


def run(out: Path, work: Path, seeds, quick: bool, progress, iters: int | None = None,
        jobs: int = 1, framework: str = "auto") -> dict:
    """The runner's entry. quick: QUICK_ITERS iterations, no teacher and hybrid forward only;
    full: the configs' schedule, FitNet, AT, the fixed-alpha sweep and (detectron2) the Fig. 8
    ResNet-18 student too. ``jobs`` training runs go side by side (one thread each)."""
    backend, reason = choose_framework(framework)
    if backend is None:
        return {"skipped": reason}
    start, seeds = time.perf_counter(), list(seeds)
    work = (work / "detection" / backend.NAME).resolve()
    work.mkdir(parents=True, exist_ok=True)
    schedule_opts, schedule = backend.schedule(iters or (QUICK_ITERS if quick else None))
    teacher = backend.write_teacher(digits_teacher(work.parent), work / "teacher_digits_r18.pth")
    runs = planned_runs(seeds, quick, set(backend.CONFIGS))
    tables = DetectionTables(fig8_too=not quick and "hybrid_r18" in backend.CONFIGS)
    tables.describe(backend.NAME, schedule, seeds, quick)
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = [(r, pool.submit(train_run, backend, r, work, teacher, schedule_opts))
                   for r in runs]
        for r, future in futures:  # in submission order: stable tables
            found, alpha_rows, seconds = future.result()
            tables.add(r, found, alpha_rows)
            write_tables(tables.all, out)
            state = "diverged" if all(math.isnan(v) for v in found.values()) else found
            progress(f"[det {backend.NAME}] seed {r.seed} {r.name}: {state} ({seconds:.0f} s)")
    return {"tables": tables.all, "plots": tables.plot(out),
            "settings": {"framework": backend.NAME, "schedule": schedule},
            "seconds": time.perf_counter() - start}
