"""The three settings of the matched-compute experiment, each trained through the project's
own code as the rest of the reproduction is:

* ``digits``: the model gap of Table 1 (ResNet-18 teacher, MobileNetV1-0.5 student) on the
  3-epoch schedule, where hybrid forward once led the student without a teacher;
* ``segmentation``: the domain gap of Table 2 (the demo's: GTA5-style teacher, Cityscapes-style
  student, synthetic scenes) through the real mmengine Runner;
* ``detection``: Table 4 on MMDetection (digit-classifier teacher, Faster R-CNN MobileNetV1
  student, synthetic CityPersons), ``--quick``'s schedule, one ``hybridkt-train-det`` process
  per run;
* ``several_teachers``: the segmentation setting's student with the GTA5-style teacher alone,
  with it and the detection setting's digit classifier (issue 26), and with the two sampled
  one per step; the plain student is stretched to the two-teacher run's cost.
"""
from __future__ import annotations

import math
import shutil
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .matched_compute import Trained


@dataclass
class DigitsSetting:
    work: Path
    base_length: int = 3
    teacher_epochs: int = 6
    train_limit: int | None = None
    methods: tuple[str, ...] = ("fitnet", "at", "ft", "ab", "cwd")
    name: str = "digits"
    metric: str = "top-1 (%)"
    lower_is_better: bool = False
    unit: str = "epochs"
    parallel: bool = False
    _data: object = field(default=None, repr=False)
    _teacher: Path | None = field(default=None, repr=False)

    @property
    def title(self) -> str:
        return (f"digits, ResNet-18 teacher -> MobileNetV1-0.5 student, {self.base_length} "
                "epochs")

    def _settings(self):
        from .classification import ClassificationSettings

        return ClassificationSettings(epochs=self.base_length, teacher_epochs=self.teacher_epochs,
                                      train_limit=self.train_limit, near_gap=False)

    def prepare(self, progress: Callable[[str], None]) -> str:
        from hybridkt_ext.for_classification.data import load_datasets

        from .classification import DigitsData, train_teachers

        s = self._settings()
        self._data = load_datasets(None, None, s.split_seed, s.train_limit)
        _, files, accuracy = train_teachers(self.work, s, DigitsData(*self._data), progress)
        self._teacher = files["far"]
        return (f"{s.teacher} teacher ({s.teacher_epochs} epochs, {accuracy['far']:.1f}%, "
                f"trained once), {s.student} student, batch {s.batch_size}, lr {s.lr} cosine, "
                f"{len(self._data[0])} training digits; FitNet/AT/FT/AB/CWD with the project's "
                "default weights.")

    def train(self, method: str, length: int, seed: int) -> Trained:
        from hybridkt_ext.core import NonFiniteLossError
        from hybridkt_ext.for_classification import TrainConfig
        from hybridkt_ext.for_classification.experiment import train_student

        s, (train, test, n) = self._settings(), self._data
        cfg = TrainConfig(epochs=length, batch_size=s.batch_size, lr=s.lr, seed=seed)
        try:
            result = train_student(method, s.student, n, train, test, cfg,
                                   self.work / f"seed{seed}" / f"{length}ep", s.teacher,
                                   self._teacher, overwrite=True)
        except NonFiniteLossError:
            return Trained(math.nan, math.nan)
        return Trained(100 * result.accuracy, result.seconds)

    def flops_per_step(self, method: str) -> float:
        import torch

        from hybridkt_ext.for_classification.experiment import build_transfer_classifier
        from hybridkt_ext.for_classification.trainer import training_flops_per_step

        s, (train, _, n) = self._settings(), self._data
        torch.manual_seed(0)
        model = build_transfer_classifier(method, s.student, n, s.teacher, self._teacher)
        return training_flops_per_step(model, model.training_step, train, s.batch_size)

    def steps(self, length: int) -> int:
        from hybridkt_ext.for_classification.trainer import steps_per_epoch

        return length * steps_per_epoch(self._data[0], self._settings().batch_size)


# Methods the shipped hybrid configs train with only ``model.backbone.transfer`` changed.
_HYBRID_CONFIG_MODES = ("hybrid", "hybrid_alternate", "cwd")


@dataclass
class SegmentationSetting:
    work: Path
    data_root: Path = Path("data")
    base_length: int = 400
    teacher_iters: int = 400
    methods: tuple[str, ...] = ("cwd", "fitnet", "at")
    name: str = "segmentation"
    metric: str = "mIoU (%)"
    lower_is_better: bool = False
    unit: str = "iterations"
    parallel: bool = False  # in-process Runners: mmengine's singletons are per process
    _options: dict = field(default_factory=dict, repr=False)

    title = "synthetic Cityscapes-style segmentation, GTA5-style teacher (domain gap)"

    def _config(self, method: str) -> tuple[Path, dict]:
        from .segmentation import student_configs

        configs = student_configs()
        options = dict(self._options)
        if method == "none":
            return configs["none"], {k: v for k, v in options.items()
                                     if not k.startswith("model.backbone.teacher")}
        if method in _HYBRID_CONFIG_MODES:
            options["model.backbone.transfer"] = method
            return configs["hybrid"], options
        return configs[method], options

    def prepare(self, progress: Callable[[str], None]) -> str:
        from .segmentation import ensure_generated, student_configs
        from .segmentation_demo import (TEACHER_CONFIG, data_root_options, evaluate_miou,
                                        train_segmentor)

        self.work, root = self.work.resolve(), self.data_root.resolve()
        loaders = ("train_dataloader", "val_dataloader", "test_dataloader")
        gta = data_root_options(root, loaders, "synthetic_gta5")
        cs = data_root_options(root, loaders, "synthetic_cityscapes")
        progress(f"[matched segmentation] GTA5-style teacher, {self.teacher_iters} iterations")
        teacher = train_segmentor(TEACHER_CONFIG, self.work / "teacher_gta5", self.teacher_iters,
                                  0, gta)
        miou = evaluate_miou(TEACHER_CONFIG, teacher, self.work / "teacher_gta5_eval", 0, gta)
        ensure_generated(student_configs()["none"], cs)
        self._options = {**cs, "model.backbone.teacher.checkpoint": str(teacher),
                         "model.backbone.teacher.allow_random_init": False}
        return (f"DeepLabV3 ResNetV1c-18 1/8-width student, 64x128 synthetic scenes, batch 4, "
                f"lr 0.05 poly over each run's own length; teacher 1/4 width, "
                f"{self.teacher_iters} iterations on the GTA5-style domain (mIoU {miou:.1f} "
                "there), trained once; FitNet weight 1.0 on stage 2, AT beta 1000, CWD weight 3 "
                "tau 1 on the last stage (defaults, not tuned); mIoU on the Cityscapes-style val "
                "split.")

    def train(self, method: str, length: int, seed: int) -> Trained:
        from hybridkt_ext.run_logs import mmengine_training_seconds

        from .segmentation_demo import evaluate_miou, train_segmentor

        config, options = self._config(method)
        run_dir = self.work / f"seed{seed}_{method}_{length}"
        shutil.rmtree(run_dir, ignore_errors=True)  # a previous attempt's logs would mix in
        checkpoint = train_segmentor(config, run_dir, length, seed, options)
        miou = evaluate_miou(config, checkpoint, self.work / f"seed{seed}_{method}_{length}_eval",
                             seed, options)
        return Trained(miou, mmengine_training_seconds(run_dir, length))

    def flops_per_step(self, method: str) -> float:
        from .openmmlab_flops import training_flops_per_iter
        from .segmentation_demo import load_run_config

        config, options = self._config(method)
        probe = self.work / f"flops_{method}"
        shutil.rmtree(probe, ignore_errors=True)
        return training_flops_per_iter(load_run_config(config, probe, 2, 0, options), probe)

    def steps(self, length: int) -> int:
        return length


# The shipped two-teacher config: the GTA5-style segmenter (teacher 0) and a torchvision
# ResNet-18 digit classifier (teacher 1) on the segmentation setting's student.
SEVERAL_TEACHERS_CONFIG = ("deeplabv3_r18w8-d8_hybrid-multi-teacher-r18w16-d8-and-digits-r18_"
                           "1xb4-400_synthetic-cityscapes-64x128.py")
# method -> (teachers, balance.teachers); "none" and "hybrid_gta5" are the single-teacher
# setting's "none" and "hybrid" runs.
SEVERAL_TEACHERS_METHODS = {
    "hybrid_gta5": (("gta5",), None),
    "hybrid_gta5_digits": (("gta5", "digits"), None),
    "hybrid_gta5_digits_sample": (("gta5", "digits"), "sample"),
}


@dataclass
class SeveralTeachersSetting(SegmentationSetting):
    """The segmentation setting (same student, data, schedule, GTA5-style teacher) with a
    second teacher of another task: the digit classifier the detection setting uses, trained
    (``detection.digits_teacher``), loaded by the shipped two-teacher config."""

    methods: tuple[str, ...] = tuple(SEVERAL_TEACHERS_METHODS)
    cost_setters: tuple[str, ...] = ("hybrid_gta5_digits",)
    comparisons: tuple[tuple[str, str], ...] = (
        ("hybrid_gta5", "none"), ("hybrid_gta5_digits", "hybrid_gta5"),
        ("hybrid_gta5_digits_sample", "hybrid_gta5_digits"),
        ("hybrid_gta5_digits_sample", "hybrid_gta5"))
    name: str = "several_teachers"
    _digits: Path | None = field(default=None, repr=False)

    title = ("synthetic Cityscapes-style segmentation, GTA5-style teacher and digit-classifier "
             "teacher")

    def _config(self, method: str) -> tuple[Path, dict]:
        from .segmentation_demo import CONFIG_DIR

        if method not in SEVERAL_TEACHERS_METHODS:
            if method != "none":
                raise ValueError(f"several_teachers: unknown method {method!r}; choose from "
                                 f"{['none', *SEVERAL_TEACHERS_METHODS]}")
            return super()._config("none")
        teachers, sampling = SEVERAL_TEACHERS_METHODS[method]
        if teachers == ("gta5",):
            return super()._config("hybrid")
        options = {k: v for k, v in self._options.items()
                   if not k.startswith("model.backbone.teacher")}
        files = {"gta5": self._options.get("model.backbone.teacher.checkpoint"),
                 "digits": None if self._digits is None else str(self._digits)}
        for k, name in enumerate(teachers):
            options[f"model.backbone.teacher.{k}.checkpoint"] = files[name]
            options[f"model.backbone.teacher.{k}.allow_random_init"] = False
        if sampling is not None:
            options["model.backbone.balance.teachers"] = sampling
        return CONFIG_DIR / SEVERAL_TEACHERS_CONFIG, options

    def prepare(self, progress: Callable[[str], None]) -> str:
        import torch

        from .detection import digits_teacher

        described = super().prepare(progress)
        progress("[matched several_teachers] digit-classifier teacher (torchvision ResNet-18)")
        weights = digits_teacher(self.work.parent)
        self._digits = self.work / "teacher_digits_r18.pth"
        torch.save(weights, self._digits)
        return (f"{described} Second teacher: the torchvision ResNet-18 digit classifier of the "
                f"detection setting (trained on scikit-learn's digits, top-1 "
                f"{_digits_accuracy(weights):.1f}% on their test split), loaded by "
                f"{SEVERAL_TEACHERS_CONFIG}; one dynamic alpha per teacher; 'sample' runs one "
                "teacher's pair of paths per step in turn.")


def _digits_accuracy(weights: dict) -> float:
    """Top-1 (%) of the digit classifier on scikit-learn's digits test split (split seed 0,
    as ``digits_teacher`` trains it)."""
    import torchvision

    from hybridkt_ext.for_classification.data import load_datasets
    from hybridkt_ext.for_classification.trainer import evaluate

    _, test, n = load_datasets(None, None, 0)
    model = torchvision.models.resnet18(num_classes=n)
    model.load_state_dict(weights)
    return 100 * evaluate(model.eval(), test)


@dataclass
class DetectionSetting:
    work: Path
    base_length: int = 300
    jobs: int = 1
    methods: tuple[str, ...] = ("cwd", "fitnet", "at")
    name: str = "detection"
    metric: str = "MR2_Reasonable"
    lower_is_better: bool = True
    unit: str = "iterations"
    parallel: bool = True  # every run is its own training process
    _teacher: Path | None = field(default=None, repr=False)
    _schedules: dict = field(default_factory=dict, repr=False)
    # mmengine's Config.fromfile is not thread-safe (its package lookup through pkg_resources
    # fails when two threads parse at once): the schedules are parsed one at a time.
    _parsing: threading.Lock = field(default_factory=threading.Lock, repr=False)

    title = "synthetic CityPersons, MMDetection Faster R-CNN, digit-classifier teacher"

    def prepare(self, progress: Callable[[str], None]) -> str:
        from . import detection_mmdet
        from .detection import digits_teacher

        self.work = self.work.resolve()
        self.work.mkdir(parents=True, exist_ok=True)
        self._teacher = detection_mmdet.write_teacher(digits_teacher(self.work.parent),
                                                      self.work / "teacher_digits_r18.pth")
        _, schedule = detection_mmdet.schedule(self.base_length)
        return (f"MobileNetV1-0.25 Faster R-CNN FPN student, {schedule} (the no-teacher runs "
                "stretched with the same shape), torchvision ResNet-18 digit classifier as the "
                "teacher (another task and domain); FitNet/AT/CWD with the configs' or the "
                "project's default weights; MR^-2 Reasonable on the synthetic val split (lower "
                "is better).")

    def _schedule(self, length: int) -> list[str]:
        """``--cfg-options`` of the configs' schedule shape at ``length`` iterations."""
        from . import detection_mmdet

        with self._parsing:
            if length not in self._schedules:
                self._schedules[length] = detection_mmdet.schedule(length)[0]
            return self._schedules[length]

    def _command(self, method: str, length: int, seed: int, output_dir: Path) -> list[str]:
        from . import detection_mmdet

        return detection_mmdet.command(method, seed, output_dir, self._teacher, None,
                                       self._schedule(length))

    def train(self, method: str, length: int, seed: int) -> Trained:
        from hybridkt_ext.run_logs import mmengine_training_seconds

        from . import detection_mmdet
        from .detection import Run, train_run

        found, _, _ = train_run(detection_mmdet, Run(seed, method), self.work / f"{length}it",
                             self._teacher, self._schedule(length))
        if math.isnan(found["MR2_Reasonable"]):
            return Trained(math.nan, math.nan)
        run_dir = self.work / f"{length}it" / f"seed{seed}" / method
        return Trained(found["MR2_Reasonable"], mmengine_training_seconds(run_dir, length))

    def flops_per_step(self, method: str) -> float:
        import hybridkt_ext.for_mmdet  # noqa: F401  (registers HybridBackbone in mmdet)
        from hybridkt_ext.for_openmmlab import training_tool

        from .openmmlab_flops import training_flops_per_iter

        probe = self.work / f"flops_{method}"
        shutil.rmtree(probe, ignore_errors=True)
        argv = self._command(method, self.base_length, 0, probe)[3:]  # after python -m module
        cfg = training_tool.load_config(training_tool.parse_args(argv))
        return training_flops_per_iter(cfg, probe)

    def steps(self, length: int) -> int:
        return length


# The reproduction runner's entries (out, work, seeds, quick, progress, options): --quick
# shortens every schedule to check the pipeline in minutes; it measures nothing worth quoting.

def run_digits(out: Path, work: Path, seeds, quick: bool, progress, epochs: int | None = None,
               teacher_epochs: int | None = None, train_limit: int | None = None) -> dict:
    from .matched_compute import run_experiment

    setting = DigitsSetting(work / "matched_compute" / "digits", epochs or (1 if quick else 3),
                            teacher_epochs or (2 if quick else 6), train_limit)
    return run_experiment(setting, out, seeds, progress)


def run_segmentation(out: Path, work: Path, seeds, quick: bool, progress,
                     iters: int | None = None, teacher_iters: int | None = None,
                     setting_class: type | None = None) -> dict:
    """The segmentation setting (or ``setting_class``, a subclass of it on the same schedule)."""
    from .matched_compute import run_experiment

    try:
        import mmseg  # noqa: F401
    except ImportError as err:
        return {"skipped": f"MMSegmentation is not installed ({err})"}
    setting_class = setting_class or SegmentationSetting
    setting = setting_class(work / "matched_compute" / setting_class.name,
                            base_length=iters or (40 if quick else 400),
                            teacher_iters=teacher_iters or (150 if quick else 400))
    return run_experiment(setting, out, seeds, progress)


def run_several_teachers(out: Path, work: Path, seeds, quick: bool, progress,
                         iters: int | None = None, teacher_iters: int | None = None) -> dict:
    return run_segmentation(out, work, seeds, quick, progress, iters, teacher_iters,
                            setting_class=SeveralTeachersSetting)


def run_detection(out: Path, work: Path, seeds, quick: bool, progress, iters: int | None = None,
                  jobs: int | None = None) -> dict:
    from . import detection_mmdet
    from .detection import QUICK_ITERS
    from .matched_compute import run_experiment

    reason = detection_mmdet.missing()
    if reason:
        return {"skipped": reason}
    # The full setting is --quick's detection schedule already (issue 24 allows it: the
    # configs' 600 iterations times k runs would take most of a day on 2 cores).
    setting = DetectionSetting(work / "matched_compute" / "detection",
                               base_length=iters or (60 if quick else QUICK_ITERS))
    return run_experiment(setting, out, seeds, progress, jobs or 1)
