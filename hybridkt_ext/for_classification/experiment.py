"""Teacher training, then one student per transfer mode, from the same settings."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.utils.data import Dataset

from ..core import save_atomically
from ..core.teacher_loading import load_teacher
from ..core.teacher_spec import TeacherSpec
from .models import build_classifier, staged_classifier
from .trainer import TrainConfig, evaluate, fit, save_classifier, write_csv
from .transfer_classifier import TransferClassifier


@dataclass
class StudentResult:
    """What one student run produced."""

    mode: str
    accuracy: float
    seconds: float
    rows: list[dict] = field(repr=False)


def _refuse_existing(outputs: tuple[Path, ...], overwrite: bool) -> None:
    # Checked before training as well as by save_atomically: minutes of training must not
    # end in "file exists".
    for out in outputs:
        if Path(out).exists() and not overwrite:
            raise FileExistsError(f"{out} exists; pass --overwrite to replace it")


def student_run_name(mode: str, fixed_alpha: float = 1.0) -> str:
    """``hybrid``, ``kd``...; ``fixed0.5`` for mode "fixed" (one run per alpha of a sweep)."""
    return mode if mode != "fixed" else f"fixed{fixed_alpha:g}"


def student_files(work_dir: Path, name: str) -> tuple[Path, Path]:
    """The exported weights and the log CSV of the student run ``name``."""
    return work_dir / f"student_{name}.pth", work_dir / f"student_{name}.csv"


def train_teacher(arch: str, num_classes: int, train_set: Dataset, test_set: Dataset,
                  cfg: TrainConfig, out: Path, overwrite: bool = False) -> float:
    """Trains a plain classifier (the teacher) and saves its state dict; returns accuracy."""
    _refuse_existing((out, out.with_suffix(".csv")), overwrite)
    torch.manual_seed(cfg.seed)
    model = build_classifier(arch, num_classes)
    ce = torch.nn.functional.cross_entropy
    rows = fit(model, lambda x, y: (ce(model(x), y), {}), train_set, cfg)
    write_csv(rows, out.with_suffix(".csv"), overwrite=overwrite)
    save_classifier(model, out, overwrite=overwrite)
    return evaluate(model, test_set)


def load_classification_teacher(arch: str, num_classes: int, checkpoint: Path, prefix: str = "",
                                with_head: bool = False) -> tuple:
    """The teacher classifier's stages and head, loaded by the core's one policy.

    A checkpoint of another task (an ImageNet ResNet-50 with 1000 classes) lends its trunk:
    only the classifier stays behind. KD distils the teacher's logits, so ``with_head`` requires
    the classifier too. Called once before any student trains, so a bad file fails in seconds.

    Raises:
        TeacherCheckpointError: the file is unreadable or does not fit (keys named).
    """
    teacher, head = staged_classifier(arch, num_classes)
    required = [k for k in teacher.model.state_dict() if not k.endswith("num_batches_tracked")] \
        if with_head else []
    load_teacher(teacher, TeacherSpec(checkpoint=str(checkpoint), prefix=prefix),
                 require=required)
    return teacher, head


def build_transfer_classifier(mode: str, student_arch: str, num_classes: int,
                              teacher_arch: str | None = None,
                              teacher_checkpoint: Path | None = None, teacher_prefix: str = "",
                              fixed_alpha: float = 1.0, switch_points=None
                              ) -> TransferClassifier:
    """The student (random initialisation from torch's current seed) and, unless ``mode`` is
    "none", the loaded teacher, wired for ``mode``."""
    student, student_head = staged_classifier(student_arch, num_classes)
    teacher = teacher_head = None
    if mode != "none":
        if teacher_arch is None or teacher_checkpoint is None:
            raise ValueError(f"mode {mode!r} needs --teacher and --teacher-checkpoint")
        teacher, teacher_head = load_classification_teacher(
            teacher_arch, num_classes, teacher_checkpoint, teacher_prefix, with_head=mode == "kd")
    return TransferClassifier(student, student_head, mode, teacher, teacher_head,
                              fixed_alpha=fixed_alpha, switch_points=switch_points)


def train_student(mode: str, student_arch: str, num_classes: int, train_set: Dataset,
                  test_set: Dataset, cfg: TrainConfig, work_dir: Path,
                  teacher_arch: str | None = None, teacher_checkpoint: Path | None = None,
                  teacher_prefix: str = "", fixed_alpha: float = 1.0,
                  switch_points=None, overwrite: bool = False) -> StudentResult:
    """Trains one student in ``mode``; writes its log CSV and exported plain weights."""
    name = student_run_name(mode, fixed_alpha)
    weights, log = student_files(work_dir, name)
    _refuse_existing((weights, log), overwrite)
    torch.manual_seed(cfg.seed)  # every mode starts from the same student initialisation
    model = build_transfer_classifier(mode, student_arch, num_classes, teacher_arch,
                                      teacher_checkpoint, teacher_prefix, fixed_alpha,
                                      switch_points)
    start = time.perf_counter()
    rows = fit(model, model.training_step, train_set, cfg, test_set=test_set)
    seconds = time.perf_counter() - start
    accuracy = evaluate(model, test_set)
    write_csv(rows, log, overwrite=overwrite)
    save_atomically(model.student_state_dict(), weights, overwrite=overwrite)
    return StudentResult(name, accuracy, seconds, rows)


def exported_student_accuracy(arch: str, num_classes: int, path: Path,
                              test_set: Dataset) -> float:
    """Loads an exported student into the plain classifier (no hybridkt) and evaluates it."""
    model = build_classifier(arch, num_classes)
    model.load_state_dict(torch.load(path, weights_only=True), strict=True)
    return evaluate(model, test_set)
