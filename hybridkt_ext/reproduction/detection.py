"""Detection on the synthetic CityPersons-layout data: Table 4, Fig. 8 and Fig. 9 (MR^-2, lower
is better), with a teacher from another task and domain. Needs detectron2 (optional).

Every run is ``tools/train_net.py`` with the project's ``configs/detectron2/*synthetic*``
files (Faster R-CNN + FPN, MobileNetV1 student), same iterations, lr and seed for every
mode. The teacher is a torchvision ResNet-18 trained to classify digits (the classification
experiment's teacher): another task and another domain, as the paper's pose-estimation
teacher; its ``fc`` is dropped (detectron2's teacher has none) and the rest loads strictly.
"""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

from .tables import ResultTable, write_tables

ROOT = Path(__file__).resolve().parents[2]
CONFIG_DIR = ROOT / "configs" / "detectron2"
CONFIGS = {"none": "mobilenetv1-fpn-noteacher-synthetic.yaml",
           "fitnet": "mobilenetv1-fpn-fitnet-synthetic.yaml",
           "at": "mobilenetv1-fpn-at-synthetic.yaml",
           "hybrid": "hybridkt-mobilenetv1-fpn-synthetic.yaml",
           "fixed": "hybridkt-mobilenetv1-fpn-fixed-alpha-synthetic.yaml",
           "hybrid_r18": "hybridkt-r18-fpn-synthetic.yaml"}
LABELS = {"none": "w/o teacher", "fitnet": "FitNet", "at": "AT", "hybrid": "hybrid forward"}
# Iterations of --quick: half the configs' schedule (learning-rate step at the same fraction).
QUICK_ITERS = 300
# Fig. 9's fixed alphas, run on the first SWEEP_SEEDS seeds only: each hybrid run takes about
# 9 minutes on one core, so the full sweep on every seed would take hours.
FIXED_ALPHAS = (0.1, 0.5, 1.0, 2.0)
SWEEP_SEEDS = 1
# Fig. 8: the same teacher with two students, the model-gap one (MobileNetV1, Table 4's) and
# one of the teacher's own architecture (ResNet-18), on the first FIG8_SEEDS seeds.
FIG8_STUDENTS = {"hybrid": "MobileNetV1-0.25 student (model gap)",
                 "hybrid_r18": "ResNet-18 student (the teacher's architecture)"}
FIG8_SEEDS = 2
# The paper's Table 4 (CityPersons val, MR^-2 %): R, R small, R occ heavy, All.
PAPER_TABLE4 = {"w/o teacher": (17.20, 21.87, 61.76, 47.09), "FitNet": (16.70, 22.20, 61.13, 46.89),
                "AT": (16.69, 21.42, 65.50, 46.86), "hybrid forward": (16.19, 21.12, 64.11, 46.85)}


def detectron2_missing() -> str | None:
    """A sentence saying why detection cannot run, or None when detectron2 is importable."""
    if importlib.util.find_spec("detectron2") is None:
        return ("detectron2 is not installed (it is not on PyPI; see the README's optional "
                "source install); the detection experiment (Table 4) is skipped")
    return None


def _teacher_checkpoint(work: Path, classification_teacher: Path | None) -> Path:
    """The digits ResNet-18 without ``fc.*`` (trains one for 4 epochs if none is given)."""
    out = work / "teacher_resnet18_digits_nofc.pth"
    if classification_teacher is None or not classification_teacher.exists():
        from hybridkt_ext.for_classification import TrainConfig
        from hybridkt_ext.for_classification.data import load_datasets
        from hybridkt_ext.for_classification.experiment import train_teacher

        train, test, n = load_datasets(None, None, 0)
        classification_teacher = work / "teacher_resnet18_digits.pth"
        train_teacher("resnet18", n, train, test, TrainConfig(epochs=4, seed=1000),
                      classification_teacher, overwrite=True)
    state = torch.load(classification_teacher, map_location="cpu", weights_only=True)
    torch.save({k: v for k, v in state.items() if not k.startswith("fc.")}, out)
    return out


def _final_metrics(output_dir: Path) -> dict[str, float]:
    """The last MR^-2 values detectron2 wrote to metrics.json."""
    found: dict[str, float] = {}
    path = output_dir / "metrics.json"
    for line in path.read_text().splitlines() if path.exists() else []:
        row = json.loads(line)
        found.update({k.split("/")[-1]: v for k, v in row.items() if "MR2" in k})
    return found


def _schedule(iters: int | None) -> tuple[list[str], str]:
    """Command-line overrides for ``iters`` iterations (None: the configs' own schedule) that
    keep the schedule's shape (LR step at the same fraction, warm-up clipped), and a sentence
    describing the schedule for the tables' notes."""
    from detectron2.config import get_cfg

    from hybridkt_ext.for_detectron2 import add_hybridkt_config

    cfg = get_cfg()
    add_hybridkt_config(cfg)
    cfg.merge_from_file(str(CONFIG_DIR / CONFIGS["hybrid"]))
    solver = cfg.SOLVER
    opts: list[str] = []
    if iters is not None and iters != solver.MAX_ITER:
        steps = tuple(max(1, round(s * iters / solver.MAX_ITER)) for s in solver.STEPS)
        warmup = min(solver.WARMUP_ITERS, iters // 10)
        opts = ["SOLVER.MAX_ITER", str(iters), "SOLVER.STEPS", str(steps),
                "SOLVER.WARMUP_ITERS", str(warmup)]
        solver = solver.clone()
        solver.MAX_ITER, solver.STEPS, solver.WARMUP_ITERS = iters, steps, warmup
    described = (f"{solver.MAX_ITER} iterations, batch {solver.IMS_PER_BATCH}, lr "
                 f"{solver.BASE_LR:g} (x{solver.GAMMA:g} at {list(solver.STEPS)}, "
                 f"{solver.WARMUP_ITERS} warm-up)")
    return opts, described


def _alpha_rows(output_dir: Path) -> list[dict[str, float]]:
    """alpha and L1..L3 as detectron2's JSON writer logged them (every 20 iterations)."""
    rows = [json.loads(line) for line in (output_dir / "metrics.json").read_text().splitlines()]
    return [{"step": r["iteration"], **{k: r[k] for k in ("hkt_alpha", "hkt_L1", "hkt_L2",
                                                             "hkt_L3") if k in r}}
            for r in rows if "hkt_alpha" in r]


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


def run(out: Path, work: Path, seeds, quick: bool, progress, iters=None, jobs: int = 1,
        **_) -> dict:
    """The runner's entry. quick: QUICK_ITERS iterations, no teacher and hybrid forward only;
    full: the configs' schedule, FitNet, AT, the Fig. 8 ResNet-18 student and the fixed-alpha
    sweep too. ``jobs`` training runs go side by side (one thread each)."""
    reason = detectron2_missing()
    if reason:
        return {"skipped": reason}
    start = time.perf_counter()
    seeds = list(seeds)
    work = (work / "detection").resolve()
    work.mkdir(parents=True, exist_ok=True)
    schedule_opts, schedule = _schedule(iters or (QUICK_ITERS if quick else None))
    teacher = _teacher_checkpoint(work, work.parent / "classification" /
                                  "teacher_far_resnet18.pth")
    # CityPersonsEvaluator keys (metrics.json prefixes them with the dataset's evaluator name).
    metrics = ["MR2_Reasonable", "MR2_Reasonable_small", "MR2_Reasonable_occ=heavy", "MR2_All"]
    t4 = ResultTable("table4_detection", "Table 4 analogue: MR^-2 (%) on synthetic CityPersons "
                     "val, teacher = digit classifier (task + domain + model gap)", metrics,
                     lower_is_better=metrics,
                     paper={k: dict(zip(metrics, v)) for k, v in PAPER_TABLE4.items()})
    sweep = ResultTable("fig9_detection_fixed_alpha", "Fig. 9 (detection): fixed vs dynamic "
                        "alpha, MR^-2 reasonable (%)", ["MR2_Reasonable"],
                        lower_is_better=["MR2_Reasonable"])
    phases = ["alpha first 10%", "alpha middle 40-60%", "alpha last 10%", "MR2_Reasonable"]
    fig8 = ResultTable("fig8_detection_alpha", "Fig. 8 analogue: dynamic alpha of two students "
                       "with the same teacher (digit-classifier ResNet-18)", phases,
                       lower_is_better=["MR2_Reasonable"])
    # Every seed of the Table 4 rows first, then Fig. 8's second student, then the sweep: a
    # cut-short run still has a table.
    runs = [(seed, m, None) for seed in seeds
            for m in (("none", "hybrid") if quick else ("none", "fitnet", "at", "hybrid"))]
    if not quick:
        runs += [(seed, "hybrid_r18", None) for seed in seeds[:FIG8_SEEDS]]
        runs += [(seed, "fixed", a) for seed in seeds[:SWEEP_SEEDS] for a in FIXED_ALPHAS]
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")

    def train(seed: int, mode: str, alpha: float | None) -> tuple[Path, float]:
        name = mode if alpha is None else f"fixed{alpha:g}"
        output_dir = work / f"seed{seed}" / name
        cmd = [sys.executable, str(ROOT / "tools" / "train_net.py"), "--config-file",
               str(CONFIG_DIR / CONFIGS[mode]), *schedule_opts, "SEED", str(seed),
               "OUTPUT_DIR", str(output_dir), "TEST.EVAL_PERIOD", "0",
               "MODEL.HYBRIDKT.TEACHER.WEIGHTS", str(teacher)]
        if alpha is not None:
            cmd += ["MODEL.HYBRIDKT.FIXED_ALPHA", str(alpha)]
        t = time.perf_counter()
        shutil.rmtree(output_dir, ignore_errors=True)  # detectron2 appends to metrics.json
        done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"detection run {name} seed {seed} failed:\n"
                               f"{done.stderr[-3000:]}")
        return output_dir, time.perf_counter() - t

    curves: dict[str, dict[int, list]] = {}
    tables = [t4, sweep] + ([] if quick else [fig8])
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = [(run_, pool.submit(train, *run_)) for run_ in runs]
        for (seed, mode, alpha), future in futures:  # in submission order: stable tables
            output_dir, seconds = future.result()
            name = output_dir.name
            found = _final_metrics(output_dir)
            missing = [k for k in metrics if k not in found]
            if missing:
                raise RuntimeError(f"detection run {name} seed {seed}: metrics.json in "
                                   f"{output_dir} lacks {missing} (has {sorted(found)})")
            if mode in LABELS:
                for key in metrics:
                    t4.add(LABELS[mode], key, found[key])
            if mode in FIG8_STUDENTS and not quick and seed in seeds[:FIG8_SEEDS]:
                rows = _alpha_rows(output_dir)
                curves.setdefault(FIG8_STUDENTS[mode], {})[seed] = rows
                for key, value in {**_alpha_phases(rows),
                                   "MR2_Reasonable": found["MR2_Reasonable"]}.items():
                    fig8.add(FIG8_STUDENTS[mode], key, value)
            sweep_row = {"none": "no teacher", "hybrid": "dynamic"}.get(mode)
            if alpha is not None:
                sweep_row = f"fixed {alpha:g}"
            if sweep_row is not None:
                sweep.add(sweep_row, "MR2_Reasonable", found["MR2_Reasonable"])
            write_tables(tables, out)
            progress(f"[det] seed {seed} {name}: {found} ({seconds:.0f} s)")
    t4.notes = sweep.notes = (f"Setting: Faster R-CNN FPN, MobileNetV1-0.25 student, synthetic "
                              f"CityPersons layout, {schedule}, every mode; "
                              f"{len(seeds)} seeds {seeds}" +
                              ("" if quick else f"; fixed alphas on seed(s) "
                               f"{seeds[:SWEEP_SEEDS]} only") + ".")
    fig8.notes = (f"Setting: as Table 4 ({schedule}); seeds {seeds[:FIG8_SEEDS]}. Paper: the "
                  "ResNet-50 student (the teacher's architecture) has the larger alpha in the "
                  "middle of training (its steps 4000-6000).")
    plots_written = []
    if any(r.startswith("fixed ") for r in sweep.rows):
        from .plots import plot_fixed_alpha_sweep

        plots_written.append(plot_fixed_alpha_sweep(
            sweep, "MR2_Reasonable", out / "det_fixed_alpha.png",
            "synthetic CityPersons: fixed vs dynamic alpha (Fig. 9)", lower_is_better=True))
    if len(curves) == len(FIG8_STUDENTS):
        from .plots import plot_alpha_per_run

        plots_written.append(plot_alpha_per_run(
            curves, out / "det_alpha_per_student.png",
            "synthetic CityPersons: alpha of two students, same teacher (Fig. 8)", smooth=1))
    return {"tables": tables, "plots": plots_written, "settings": {"schedule": schedule},
            "seconds": time.perf_counter() - start}
