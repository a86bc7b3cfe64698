"""Classification on scikit-learn's digits: Table 1 (model gap), Figs. 5-9 at small scale.

Every run goes through ``for_classification.experiment`` (the code behind
``tools/train_cls.py``): one teacher per architecture is trained once on the fixed data split,
then for every seed each student mode is trained with identical settings (epochs, lr, batch,
seed; only the mode differs).
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from .tables import ResultTable

# The paper's Table 1 (ImageNet top-1, %): ResNet-50 teacher, MobileNet-v1 student.
PAPER_TABLE1 = {"teacher": 76.16, "none": 68.87, "kd": 68.58, "at": 69.56, "hybrid": 71.39}
MODE_LABELS = {"none": "no teacher", "kd": "KD", "fitnet": "FitNet", "at": "AT",
               "hybrid": "hybrid forward (dynamic alpha)"}


@dataclass
class ClassificationSettings:
    """What the classification experiment trains (shared by every mode)."""

    student: str = "mobilenet_v1_0.5"   # the paper's student family (MobileNet-v1)
    teacher: str = "resnet18"           # large model gap (ResNet vs depthwise MobileNet)
    near_teacher: str = "mobilenet_v1_0.5"  # Fig. 8: a teacher of the student's own arch
    modes: tuple[str, ...] = ("none", "kd", "fitnet", "at", "hybrid")
    fixed_alphas: tuple[float, ...] = (0.1, 0.5, 1.0, 2.0)  # Fig. 9 sweep
    epochs: int = 12                    # student epochs (every mode)
    teacher_epochs: int = 12
    batch_size: int = 64
    lr: float = 0.05
    seeds: tuple[int, ...] = (0, 1, 2)  # student seeds (init + data order)
    split_seed: int = 0                 # the train/test split, fixed across seeds
    train_limit: int | None = None      # keep only this many training images
    near_gap: bool = True               # train the Fig. 8 second teacher and its student


def quick_settings(seeds: tuple[int, ...] = (0, 1)) -> ClassificationSettings:
    """3 student / 6 teacher epochs on the full training split, same modes and sweep.

    Fewer optimisation steps do not work: with 18 steps (400 images, 3 epochs) every student
    stays at chance. About 20 min on the shared 2-core machine of docs/results.md (user CPU
    about a third of that); the default is 12 epochs and 3 seeds.
    """
    return ClassificationSettings(epochs=3, teacher_epochs=6, seeds=seeds)


@dataclass
class ClassificationResult:
    tables: list[ResultTable]
    curves: dict = field(default_factory=dict)  # run name -> seed -> log rows
    settings: dict = field(default_factory=dict)
    seconds: float = 0.0


def _alpha_trend(rows: list[dict]) -> tuple[float, float]:
    """Mean alpha over the first and the last 10% of logged steps."""
    alphas = [r["hkt_alpha"] for r in rows if "hkt_alpha" in r]
    k = max(1, len(alphas) // 10)
    return sum(alphas[:k]) / k, sum(alphas[-k:]) / k


def _curve(rows: list[dict]) -> list[dict]:
    keys = ("step", "epoch", "loss", "hkt_alpha", "hkt_L1", "hkt_L2", "hkt_L3", "test_acc")
    return [{k: r[k] for k in keys if k in r} for r in rows]


def run_classification(work_dir: str | Path, settings: ClassificationSettings,
                       progress: Callable[[str], None] = print) -> ClassificationResult:
    """Trains the teachers and every student for every seed; returns the tables and curves."""
    from hybridkt_ext.core import NonFiniteLossError
    from hybridkt_ext.for_classification import TrainConfig
    from hybridkt_ext.for_classification.data import load_datasets
    from hybridkt_ext.for_classification.experiment import (exported_student_accuracy,
                                                             train_student, train_teacher)

    start = time.perf_counter()
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    s = settings
    train_set, test_set, num_classes = load_datasets(None, None, s.split_seed, s.train_limit)
    teacher_cfg = TrainConfig(epochs=s.teacher_epochs, batch_size=s.batch_size, lr=s.lr,
                              seed=s.split_seed + 1000)
    teachers = {"far": s.teacher}
    if s.near_gap:
        teachers["near"] = s.near_teacher
    teacher_ckpt, teacher_acc = {}, {}
    for key, arch in teachers.items():
        ckpt = work_dir / f"teacher_{key}_{arch}.pth"
        meta_path, meta = ckpt.with_suffix(".json"), {
            "arch": arch, "epochs": s.teacher_epochs, "batch_size": s.batch_size, "lr": s.lr,
            "split_seed": s.split_seed, "train_limit": s.train_limit}
        old = json.loads(meta_path.read_text()) if meta_path.exists() else {}
        if ckpt.exists() and old.get("settings") == meta:  # same teacher: reuse it
            teacher_acc[key] = old["accuracy"]
        else:
            progress(f"[cls] teacher {arch} ({s.teacher_epochs} epochs)")
            teacher_acc[key] = 100 * train_teacher(arch, num_classes, train_set, test_set,
                                                   teacher_cfg, ckpt, overwrite=True)
            meta_path.write_text(json.dumps({"settings": meta, "accuracy": teacher_acc[key]}))
        teacher_ckpt[key] = ckpt
        progress(f"[cls]   teacher {arch}: {teacher_acc[key]:.2f}%")

    seeds_note = (f"{len(s.seeds)} seeds {list(s.seeds)} (student init and data order); "
                  f"fixed split seed {s.split_seed}, teachers trained once")
    setting = (f"digits ({len(train_set)} train / {len(test_set)} test images, 32x32), student "
               f"{s.student}, {s.epochs} epochs, batch {s.batch_size}, lr {s.lr} cosine")
    t1 = ResultTable(
        "table1_classification",
        f"Table 1 analogue (model gap): {s.teacher} teacher -> {s.student} student, test "
        "accuracy (%)", ["top-1 (%)", "exported plain model (%)"],
        notes=f"Setting: {setting}; teacher {s.teacher} {s.teacher_epochs} epochs. {seeds_note}. "
              "Paper column: ImageNet, ResNet-50 -> MobileNet-v1 (FitNet not in the paper's "
              "Table 1).")
    t1.add(f"teacher {s.teacher}", "top-1 (%)", teacher_acc["far"])
    t1.paper[f"teacher {s.teacher}"] = {"top-1 (%)": PAPER_TABLE1["teacher"]}
    fig9 = ResultTable(
        "fig9_fixed_alpha", f"Fig. 9 analogue: fixed alpha vs dynamic alpha, {s.teacher} -> "
        f"{s.student}, test accuracy (%)", ["top-1 (%)"],
        notes=f"Setting: {setting}. {seeds_note}. The paper's Fig. 9 (detection, MR^-2) gives "
              "no table of numbers.")
    fig78 = ResultTable(
        "fig78_alpha", "Figs. 7/8 analogue: dynamic alpha at the start and end of training, "
        "per teacher", ["alpha first 10% of steps", "alpha last 10% of steps", "top-1 (%)"],
        notes=f"Setting: {setting}. {seeds_note}. Near teacher {s.near_teacher} "
              f"({teacher_acc.get('near', float('nan')):.2f}%) has the student's own "
              f"architecture; far teacher {s.teacher} ({teacher_acc['far']:.2f}%).")
    curves: dict[str, dict[int, list[dict]]] = {}

    def run_one(mode: str, seed: int, alpha: float = 1.0, teacher_key: str = "far"):
        cfg = TrainConfig(epochs=s.epochs, batch_size=s.batch_size, lr=s.lr, seed=seed)
        sub = work_dir / f"seed{seed}" / teacher_key
        try:
            result = train_student(mode, s.student, num_classes, train_set, test_set, cfg,
                                   sub, teachers[teacher_key], teacher_ckpt[teacher_key],
                                   fixed_alpha=alpha, overwrite=True)
        except NonFiniteLossError as err:
            # A diverged run is a result (e.g. a too large fixed alpha), recorded as NaN.
            progress(f"[cls] seed {seed} {mode} alpha={alpha:g}: diverged ({err})")
            return None, math.nan, math.nan
        plain = exported_student_accuracy(s.student, num_classes,
                                          sub / f"student_{result.mode}.pth", test_set)
        progress(f"[cls] seed {seed} {result.mode:>10} teacher={teachers[teacher_key]}: "
                 f"{100 * result.accuracy:.2f}% ({result.seconds:.0f} s)")
        return result, 100 * result.accuracy, 100 * plain

    for seed in s.seeds:
        for mode in s.modes:
            result, acc, plain = run_one(mode, seed)
            label = MODE_LABELS[mode]
            t1.add(label, "top-1 (%)", acc)
            t1.add(label, "exported plain model (%)", plain)
            if mode in PAPER_TABLE1:
                t1.paper[label] = {"top-1 (%)": PAPER_TABLE1[mode]}
            curves.setdefault(mode, {})[seed] = _curve(result.rows)
            if mode == "hybrid":
                fig9.add("dynamic", "top-1 (%)", acc)
                first, last = _alpha_trend(result.rows)
                row = f"far teacher {s.teacher}"
                fig78.add(row, "alpha first 10% of steps", first)
                fig78.add(row, "alpha last 10% of steps", last)
                fig78.add(row, "top-1 (%)", acc)
        for alpha in s.fixed_alphas:
            result, acc, _ = run_one("fixed", seed, alpha)
            fig9.add(f"fixed {alpha:g}", "top-1 (%)", acc)
            if result is not None:
                curves.setdefault(f"fixed{alpha:g}", {})[seed] = _curve(result.rows)
        if s.near_gap:
            result, acc, _ = run_one("hybrid", seed, teacher_key="near")
            first, last = _alpha_trend(result.rows)
            row = f"near teacher {s.near_teacher}"
            fig78.add(row, "alpha first 10% of steps", first)
            fig78.add(row, "alpha last 10% of steps", last)
            fig78.add(row, "top-1 (%)", acc)
            curves.setdefault("hybrid_near", {})[seed] = _curve(result.rows)
    if "none" in fig9.rows or "none" in s.modes:
        for v in t1.rows.get(MODE_LABELS["none"], {}).get("top-1 (%)", []):
            fig9.add("no teacher", "top-1 (%)", v)
    settings_dict = asdict(s)
    settings_dict["teacher_accuracy"] = teacher_acc
    (work_dir / "curves.json").write_text(json.dumps(curves))
    return ClassificationResult([t1, fig9, fig78], curves, settings_dict,
                                time.perf_counter() - start)
