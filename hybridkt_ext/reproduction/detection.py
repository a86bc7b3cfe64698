"""Detection on the synthetic CityPersons-layout data: Table 4 and Fig. 9 (MR^-2, lower is
better), with a teacher from another task and domain. Needs detectron2 (optional).

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
import subprocess
import sys
import time
from pathlib import Path

import torch

from .tables import ResultTable, write_tables

ROOT = Path(__file__).resolve().parents[2]
CONFIG_DIR = ROOT / "configs" / "detectron2"
CONFIGS = {"none": "mobilenetv1-fpn-noteacher-synthetic.yaml",
           "fitnet": "mobilenetv1-fpn-fitnet-synthetic.yaml",
           "at": "mobilenetv1-fpn-at-synthetic.yaml",
           "hybrid": "hybridkt-mobilenetv1-fpn-synthetic.yaml",
           "fixed": "hybridkt-mobilenetv1-fpn-fixed-alpha-synthetic.yaml"}
LABELS = {"none": "w/o teacher", "fitnet": "FitNet", "at": "AT", "hybrid": "hybrid forward"}
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


def run(out: Path, work: Path, seeds, quick: bool, progress, iters=None, **_) -> dict:
    """The runner's entry. quick: 100 iterations, no teacher and hybrid forward only; full: the
    configs' 200 iterations, FitNet, AT and the fixed-alpha sweep too."""
    reason = detectron2_missing()
    if reason:
        return {"skipped": reason}
    start = time.perf_counter()
    work = (work / "detection").resolve()
    work.mkdir(parents=True, exist_ok=True)
    iters = iters or (100 if quick else 200)
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
    runs = [(m, None) for m in (("none", "hybrid") if quick else
                                ("none", "fitnet", "at", "hybrid"))]
    if not quick:
        runs += [("fixed", a) for a in (0.1, 0.5, 1.0, 2.0)]
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    for seed in seeds:
        for mode, alpha in runs:
            name = mode if alpha is None else f"fixed{alpha:g}"
            output_dir = work / f"seed{seed}" / name
            cmd = [sys.executable, str(ROOT / "tools" / "train_net.py"), "--config-file",
                   str(CONFIG_DIR / CONFIGS[mode]), "SOLVER.MAX_ITER", str(iters), "SEED",
                   str(seed), "OUTPUT_DIR", str(output_dir), "TEST.EVAL_PERIOD", "0",
                   "MODEL.HYBRIDKT.TEACHER.WEIGHTS", str(teacher)]
            if alpha is not None:
                cmd += ["MODEL.HYBRIDKT.FIXED_ALPHA", str(alpha)]
            t = time.perf_counter()
            done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
            if done.returncode != 0:
                raise RuntimeError(f"detection run {name} seed {seed} failed:\n"
                                   f"{done.stderr[-3000:]}")
            found = _final_metrics(output_dir)
            missing = [k for k in metrics if k not in found]
            if missing:
                raise RuntimeError(f"detection run {name} seed {seed}: metrics.json in "
                                   f"{output_dir} lacks {missing} (has {sorted(found)})")
            if mode in LABELS:
                for key in metrics:
                    t4.add(LABELS[mode], key, found[key])
            sweep_row = {"none": "no teacher", "hybrid": "dynamic"}.get(mode)
            if alpha is not None:
                sweep_row = f"fixed {alpha:g}"
            if sweep_row is not None:
                sweep.add(sweep_row, "MR2_Reasonable", found["MR2_Reasonable"])
            write_tables([t4, sweep], out)
            progress(f"[det] seed {seed} {name}: {found} ({time.perf_counter() - t:.0f} s)")
    t4.notes = sweep.notes = (f"Setting: Faster R-CNN FPN, MobileNetV1-0.25 student, synthetic "
                              f"CityPersons layout, {iters} iterations, batch 2, lr 0.005, every "
                              f"mode; {len(list(seeds))} seeds {list(seeds)}.")
    plots_written = []
    if any(r.startswith("fixed ") for r in sweep.rows):
        from .plots import plot_fixed_alpha_sweep

        plots_written.append(plot_fixed_alpha_sweep(
            sweep, "MR2_Reasonable", out / "det_fixed_alpha.png",
            "synthetic CityPersons: fixed vs dynamic alpha (Fig. 9)", lower_is_better=True))
    return {"tables": [t4, sweep], "plots": plots_written, "settings": {"iters": iters},
            "seconds": time.perf_counter() - start}
