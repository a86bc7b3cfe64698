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
MODE_LABELS = {"none": "no teacher", "kd": "KD", "fitnet": "FitNet", "at": "AT", "ft": "FT",
               "ab": "AB", "cwd": "CWD", "hybrid": "hybrid forward (dynamic alpha)",
               "hybrid_alternate": "hybrid forward, one hybrid path per step"}


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


def teacher_file(work_dir: str | Path, key: str, arch: str) -> Path:
    """Where the experiment keeps its ``key`` (``far`` / ``near``) teacher of ``arch``; the
    detection experiment reuses the far ResNet-18 from there."""
    return Path(work_dir) / f"teacher_{key}_{arch}.pth"


def _alpha_trend(rows: list[dict]) -> tuple[float, float]:
    """Mean alpha over the first and the last 10% of logged steps (NaN for a diverged run,
    which logged none)."""
    alphas = [r["hkt_alpha"] for r in rows if "hkt_alpha" in r]
    if not alphas:
        return math.nan, math.nan
    k = max(1, len(alphas) // 10)
    return sum(alphas[:k]) / k, sum(alphas[-k:]) / k


def _curve(rows: list[dict]) -> list[dict]:
    keys = ("step", "epoch", "loss", "hkt_alpha", "hkt_L1", "hkt_L2", "hkt_L3", "test_acc")
    return [{k: r[k] for k in keys if k in r} for r in rows]


@dataclass
class DigitsData:
    train: object
    test: object
    num_classes: int


@dataclass
class _Student:
    """One student run: accuracy and exported accuracy (%), its log rows; NaN and no rows
    for a run that diverged (a result, e.g. of a too large fixed alpha, never a crash)."""

    accuracy: float = math.nan
    plain_accuracy: float = math.nan
    rows: list[dict] = field(default_factory=list)


def train_teachers(work_dir: Path, s: ClassificationSettings, data: DigitsData,
                    progress: Callable[[str], None]) -> tuple[dict, dict, dict]:
    """Each teacher once (reused when the same settings trained it before): returns their
    architectures, checkpoints and accuracies (%), keyed ``far`` / ``near``."""
    from hybridkt_ext.for_classification import TrainConfig
    from hybridkt_ext.for_classification.experiment import train_teacher

    teacher_cfg = TrainConfig(epochs=s.teacher_epochs, batch_size=s.batch_size, lr=s.lr,
                              seed=s.split_seed + 1000)
    archs = {"far": s.teacher, **({"near": s.near_teacher} if s.near_gap else {})}
    files, accuracy = {}, {}
    for key, arch in archs.items():
        files[key] = teacher_file(work_dir, key, arch)
        meta_path, meta = files[key].with_suffix(".json"), {
            "arch": arch, "epochs": s.teacher_epochs, "batch_size": s.batch_size, "lr": s.lr,
            "split_seed": s.split_seed, "train_limit": s.train_limit}
        old = json.loads(meta_path.read_text()) if meta_path.exists() else {}
        if files[key].exists() and old.get("settings") == meta:  # same teacher: reuse it
            accuracy[key] = old["accuracy"]
        else:
            progress(f"[cls] teacher {arch} ({s.teacher_epochs} epochs)")
            accuracy[key] = 100 * train_teacher(arch, data.num_classes, data.train, data.test,
                                                teacher_cfg, files[key], overwrite=True)
            meta_path.write_text(json.dumps({"settings": meta, "accuracy": accuracy[key]}))
        progress(f"[cls]   teacher {arch}: {accuracy[key]:.2f}%")
    return archs, files, accuracy


def _tables(s: ClassificationSettings, data: DigitsData, teacher_acc: dict
            ) -> tuple[ResultTable, ResultTable, ResultTable]:
    """Table 1, the Fig. 9 sweep and the Figs. 7/8 alpha table, captions and notes filled."""
    seeds_note = (f"{len(s.seeds)} seeds {list(s.seeds)} (student init and data order); "
                  f"fixed split seed {s.split_seed}, teachers trained once")
    setting = (f"digits ({len(data.train)} train / {len(data.test)} test images, 32x32), "
               f"student {s.student}, {s.epochs} epochs, batch {s.batch_size}, lr {s.lr} cosine")
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
    return t1, fig9, fig78


def _add_alpha_row(fig78: ResultTable, row: str, run: _Student) -> None:
    first, last = _alpha_trend(run.rows)
    fig78.add(row, "alpha first 10% of steps", first)
    fig78.add(row, "alpha last 10% of steps", last)
    fig78.add(row, "top-1 (%)", run.accuracy)


def run_classification(work_dir: str | Path, settings: ClassificationSettings,
                       progress: Callable[[str], None] = print) -> ClassificationResult:
    """Trains the teachers and every student for every seed; returns the tables and curves."""
    from hybridkt_ext.core import NonFiniteLossError
    from hybridkt_ext.for_classification import TrainConfig
    from hybridkt_ext.for_classification.data import load_datasets
    from hybridkt_ext.for_classification.experiment import exported_student_accuracy, train_student

    start, s = time.perf_counter(), settings
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    data = DigitsData(*load_datasets(None, None, s.split_seed, s.train_limit))
    archs, teacher_files, teacher_acc = train_teachers(work_dir, s, data, progress)
    t1, fig9, fig78 = _tables(s, data, teacher_acc)
    curves: dict[str, dict[int, list[dict]]] = {}  # run -> seed -> log (diverged runs: none)

    def keep_curve(name: str, seed: int, run: _Student) -> None:
        if run.rows:
            curves.setdefault(name, {})[seed] = _curve(run.rows)

    def student(mode: str, seed: int, alpha: float = 1.0, teacher: str = "far") -> _Student:
        cfg = TrainConfig(epochs=s.epochs, batch_size=s.batch_size, lr=s.lr, seed=seed)
        sub = work_dir / f"seed{seed}" / teacher
        try:
            result = train_student(mode, s.student, data.num_classes, data.train, data.test,
                                   cfg, sub, archs[teacher], teacher_files[teacher],
                                   fixed_alpha=alpha, overwrite=True)
        except NonFiniteLossError as err:
            progress(f"[cls] seed {seed} {mode} alpha={alpha:g}: diverged ({err})")
            return _Student()
        plain = exported_student_accuracy(s.student, data.num_classes,
                                          sub / f"student_{result.mode}.pth", data.test)
        progress(f"[cls] seed {seed} {result.mode:>10} teacher={archs[teacher]}: "
                 f"{100 * result.accuracy:.2f}% ({result.seconds:.0f} s)")
        return _Student(100 * result.accuracy, 100 * plain, result.rows)

    for seed in s.seeds:
        for mode in s.modes:
            run = student(mode, seed)
            label = MODE_LABELS[mode]
            t1.add(label, "top-1 (%)", run.accuracy)
            t1.add(label, "exported plain model (%)", run.plain_accuracy)
            if mode in PAPER_TABLE1:
                t1.paper[label] = {"top-1 (%)": PAPER_TABLE1[mode]}
            keep_curve(mode, seed, run)
            if mode == "hybrid":
                fig9.add("dynamic", "top-1 (%)", run.accuracy)
                _add_alpha_row(fig78, f"far teacher {s.teacher}", run)
        for alpha in s.fixed_alphas:
            run = student("fixed", seed, alpha)
            fig9.add(f"fixed {alpha:g}", "top-1 (%)", run.accuracy)
            keep_curve(f"fixed{alpha:g}", seed, run)
        if s.near_gap:
            run = student("hybrid", seed, teacher="near")
            _add_alpha_row(fig78, f"near teacher {s.near_teacher}", run)
            keep_curve("hybrid_near", seed, run)
    for value in t1.rows.get(MODE_LABELS["none"], {}).get("top-1 (%)", []):
        fig9.add("no teacher", "top-1 (%)", value)
    settings_dict = {**asdict(s), "teacher_accuracy": teacher_acc}
    (work_dir / "curves.json").write_text(json.dumps(curves))
    return ClassificationResult([t1, fig9, fig78], curves, settings_dict,
                                time.perf_counter() - start)
