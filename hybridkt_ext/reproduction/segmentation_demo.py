"""The segmentation demo: a teacher from another domain trains a better student (generated data).

Every step runs the project's own configs through the real mmengine Runner:

1. the teacher, DeepLabV3 ResNetV1c-18 at 1/4 width, on the GTA5-style synthetic domain;
2. the student, DeepLabV3 ResNetV1c-18 at 1/8 width, on the Cityscapes-style domain, without
   a teacher;
3. the same student with hybrid forward and the step-1 teacher (dynamic alpha);
4. each model evaluated with mmseg's IoUMetric on the student's domain (the paper's Table 2
   setting: domain gap plus model gap) and on the teacher's domain (Table 3).

Both students share the config, data, seed and schedule; they differ only in
``model.backbone.transfer``. ``hybridkt-demo-seg`` (``tools/demo_seg.py``) is the command line.
"""
from __future__ import annotations

import contextlib
import json
import sys
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from mmengine.hooks import Hook

from hybridkt_ext.core import write_text_atomically
from hybridkt_ext.run_logs import read_mmengine_scalars
from hybridkt_ext.shipped_configs import config_dir

CONFIG_DIR = config_dir("mmseg")
TEACHER_CONFIG = CONFIG_DIR / "deeplabv3_r18w16-d8_1xb4-400_synthetic-gta5-64x128.py"
STUDENT_CONFIGS = {
    "no teacher":
        CONFIG_DIR / "deeplabv3_r18w8-d8_no-teacher_1xb4-400_synthetic-cityscapes-64x128.py",
    "hybrid forward":
        CONFIG_DIR / "deeplabv3_r18w8-d8_hybrid-r18w16-d8_1xb4-400_synthetic-cityscapes-64x128.py",
}


@dataclass
class DemoRun:
    """One trained model of the demo.

    Attributes:
        name: "teacher", "no teacher" or "hybrid forward".
        checkpoint: its final mmengine checkpoint.
        miou_student_domain: mIoU (%) on the Cityscapes-style val split.
        miou_teacher_domain: mIoU (%) on the GTA5-style val split.
        path_losses: hybrid runs only: rows of step, hkt_alpha, hkt_L1..3 from scalars.json.
    """

    name: str
    checkpoint: str
    miou_student_domain: float
    miou_teacher_domain: float
    path_losses: list[dict] = field(default_factory=list, repr=False)


def load_run_config(config: Path, work_dir: Path, iters: int, seed: int, options: dict):
    """``config`` with ``options`` (cfg-options) for a run of ``iters`` iterations and ``seed``
    in ``work_dir``: schedule, logging and checkpoint intervals set from ``iters``."""
    from mmengine.config import Config

    cfg = Config.fromfile(str(config))
    cfg.merge_from_dict(options)
    cfg.work_dir = str(work_dir)
    cfg.train_cfg.max_iters = iters
    cfg.train_cfg.val_interval = iters
    cfg.default_hooks.checkpoint.interval = iters
    # A run shorter than the logging interval would log no alpha at all.
    cfg.default_hooks.logger.interval = min(cfg.default_hooks.logger.interval, iters)
    cfg.param_scheduler[0]["end"] = iters  # the poly schedule spans the whole run
    cfg.randomness = dict(seed=seed)
    cfg.log_level = "INFO"  # all of it goes to work_dir: <timestamp>/*.log and console.log
    # Visualizers are named singletons: one name per run (the whole path: seed0/hybrid and
    # seed1/hybrid differ), or every run of this process would write into the first run's
    # vis_data/scalars.json.
    cfg.visualizer.name = f"visualizer:{Path(work_dir).resolve()}"
    return cfg


class _ProgressHook(Hook):
    """Draws one progress line (iterations, ETA) for a training run on the real terminal."""

    priority = "LOWEST"

    def __init__(self, label: str, stream) -> None:
        self.label, self.stream, self.start = label, stream, time.perf_counter()

    def before_train(self, runner) -> None:
        self.start = time.perf_counter()

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        done, total = runner.iter + 1, runner.max_iters
        eta = (time.perf_counter() - self.start) / done * (total - done)
        bar = "#" * (24 * done // total)
        self.stream.write(f"\r      {self.label:<16} [{bar:<24}] {done}/{total}  ETA "
                          f"{int(eta) // 60}:{int(eta) % 60:02d}")
        self.stream.flush()

    def after_train(self, runner) -> None:
        self.stream.write("\n")
        self.stream.flush()


@contextlib.contextmanager
def _console_to(log_file: Path):
    """Everything the framework prints (its logger, warnings, prints) goes to ``log_file``.

    The real terminal keeps only the demo's own lines and progress; ``log_file`` is per run,
    next to mmengine's own log.
    """
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "a") as sink, contextlib.redirect_stdout(sink), \
            contextlib.redirect_stderr(sink), warnings.catch_warnings():
        warnings.simplefilter("default")  # shown (in the file) once per place
        yield


def run_quietly(cfg, label: str | None, action: str):
    """Builds the Runner and runs ``action`` ('train' or 'test') with the console in
    ``work_dir/console.log`` (and a progress line on the terminal when ``label`` is given)."""
    from mmengine.runner import Runner

    terminal = sys.__stderr__
    with _console_to(Path(cfg.work_dir) / "console.log"):
        runner = Runner.from_cfg(cfg)
        if label is not None:
            runner.register_hook(_ProgressHook(label, terminal))
        return getattr(runner, action)()


def data_root_options(data_root: Path, loaders: tuple[str, ...], subdir: str) -> dict:
    """cfg-options pointing each of ``loaders`` at ``data_root/subdir``."""
    return {f"{loader}.dataset.data_root": str(data_root / subdir) for loader in loaders}


def train_segmentor(config: Path, work_dir: Path, iters: int, seed: int,
                    options: dict, label: str | None = None) -> Path:
    """Trains ``config`` with the real Runner for ``iters`` iterations; returns the checkpoint.

    ``options`` are cfg-options (e.g. data roots, the teacher checkpoint); the schedule, seed,
    logging and checkpoint intervals are set from ``iters`` and ``seed``.
    """
    cfg = load_run_config(config, work_dir, iters, seed, options)
    run_quietly(cfg, label, "train")
    checkpoint = work_dir / f"iter_{iters}.pth"
    if not checkpoint.exists():
        raise RuntimeError(f"training {config.name} wrote no {checkpoint.name} in {work_dir}")
    return checkpoint


def evaluate_miou(config: Path, checkpoint: Path, work_dir: Path, seed: int, options: dict,
                  test_dataloader: dict | None = None) -> float:
    """mIoU (%) of ``checkpoint`` with mmseg's IoUMetric, on ``test_dataloader`` if given."""
    cfg = load_run_config(config, work_dir, 1, seed, options)
    cfg.load_from = str(checkpoint)
    if test_dataloader is not None:
        cfg.test_dataloader = test_dataloader
    return float(run_quietly(cfg, None, "test")["mIoU"])


def read_path_losses(work_dir: Path) -> list[dict]:
    """Rows of step, hkt_alpha, hkt_L1..3 from a run's vis_data/scalars.json."""
    keys = ("step", "hkt_alpha", "hkt_L1", "hkt_L2", "hkt_L3")
    return [{k: row[k] for k in keys} for row in read_mmengine_scalars(work_dir)
            if all(k in row for k in keys)]


def check_demo_work_dir(work_dir: str | Path, overwrite: bool) -> None:
    """Refuses a work dir holding a previous demo unless ``overwrite`` (before any training).

    Raises:
        FileExistsError: a previous demo's results or runs are there.
        NotADirectoryError: ``work_dir`` is a file.
    """
    work_dir = Path(work_dir)
    if work_dir.exists() and not work_dir.is_dir():
        raise NotADirectoryError(f"--work-dir {work_dir} is a file, not a folder.")
    found = [p.name for p in (work_dir / "results.json", work_dir / "teacher") if p.exists()]
    if found and not overwrite:
        raise FileExistsError(f"{work_dir} holds a previous demo ({', '.join(found)}); pass "
                              "--overwrite to replace it, or another --work-dir.")


def run_segmentation_demo(work_dir: str | Path, data_root: str | Path = "data",
                          iters: int = 400, teacher_iters: int = 400,
                          seed: int = 0,
                          progress: Callable[[str], None] = print) -> list[DemoRun]:
    """Trains the teacher and both students, evaluates them, returns one DemoRun each.

    Args:
        work_dir: one sub-folder per model (checkpoints, logs, scalars.json).
        data_root: the synthetic datasets are generated (once) under
            ``data_root/synthetic_gta5`` and ``data_root/synthetic_cityscapes``.
        iters: training iterations of each student.
        teacher_iters: training iterations of the teacher.
        seed: the seed of every run (same data order and initialisation for both students).
        progress: receives one line as each step starts and ends (the runs log at WARNING).
    """
    from mmengine.config import Config

    if iters < 1 or teacher_iters < 1:
        raise ValueError(f"iters and teacher_iters must be >= 1, got {iters}, {teacher_iters}.")
    work_dir, data_root = Path(work_dir).resolve(), Path(data_root).resolve()
    loaders = ("train_dataloader", "val_dataloader", "test_dataloader")
    teacher_data = data_root_options(data_root, loaders, "synthetic_gta5")
    student_data = data_root_options(data_root, loaders, "synthetic_cityscapes")

    progress(f"[1/3] teacher on the GTA5-style domain, {teacher_iters} iterations "
             f"-> {work_dir / 'teacher'}")
    teacher_ckpt = train_segmentor(TEACHER_CONFIG, work_dir / "teacher", teacher_iters, seed,
                                   teacher_data, label="teacher")
    teacher_domain_loader = Config.fromfile(str(TEACHER_CONFIG)).test_dataloader
    teacher_domain_loader.dataset.data_root = teacher_data["test_dataloader.dataset.data_root"]
    student_domain_loader = Config.fromfile(str(STUDENT_CONFIGS["no teacher"])).test_dataloader
    student_domain_loader.dataset.data_root = student_data["test_dataloader.dataset.data_root"]

    runs = [DemoRun(
        "teacher", str(teacher_ckpt),
        evaluate_miou(TEACHER_CONFIG, teacher_ckpt, work_dir / "teacher_eval_student_domain",
                      seed, teacher_data, student_domain_loader),
        evaluate_miou(TEACHER_CONFIG, teacher_ckpt, work_dir / "teacher_eval", seed,
                      teacher_data))]
    progress(f"      teacher mIoU {runs[0].miou_teacher_domain:.2f} on its own domain")
    for step, (name, config) in enumerate(STUDENT_CONFIGS.items(), start=2):
        slug = name.replace(" ", "_")
        progress(f"[{step}/3] student, {name}, on the Cityscapes-style domain, {iters} "
                 f"iterations -> {work_dir / slug}")
        options = dict(student_data)
        if name == "hybrid forward":
            options.update({"model.backbone.teacher.checkpoint": str(teacher_ckpt),
                            "model.backbone.teacher.allow_random_init": False})
        ckpt = train_segmentor(config, work_dir / slug, iters, seed, options, label=name)
        runs.append(DemoRun(
            name, str(ckpt),
            evaluate_miou(config, ckpt, work_dir / f"{slug}_eval", seed, options),
            evaluate_miou(config, ckpt, work_dir / f"{slug}_eval_teacher_domain", seed,
                          options, teacher_domain_loader),
            read_path_losses(work_dir / slug)))
        progress(f"      mIoU {runs[-1].miou_student_domain:.2f}")
    return runs


def format_results(runs: list[DemoRun]) -> str:
    """A Markdown table of the demo's mIoUs."""
    lines = ["| model | trained on | mIoU Cityscapes-style (%) | mIoU GTA5-style (%) |",
             "|---|---|---|---|"]
    for run in runs:
        domain = "GTA5-style" if run.name == "teacher" else "Cityscapes-style"
        label = {"teacher": "teacher R18 1/4 width",
                 "no teacher": "student R18 1/8 width, no teacher",
                 "hybrid forward": "student R18 1/8 width, hybrid forward"}[run.name]
        lines.append(f"| {label} | {domain} | {run.miou_student_domain:.2f} | "
                     f"{run.miou_teacher_domain:.2f} |")
    return "\n".join(lines)


def write_results(runs: list[DemoRun], work_dir: str | Path) -> dict[str, Path]:
    """Writes results.json, results.md and the alpha / path-loss plot; returns their paths."""
    from hybridkt_ext.plotting import PLOT_NAME, plot_alpha_and_path_losses

    work_dir = Path(work_dir)
    outputs = {"json": work_dir / "results.json", "table": work_dir / "results.md",
               "plot": work_dir / PLOT_NAME}
    write_text_atomically(outputs["json"], json.dumps([asdict(run) for run in runs], indent=1),
                          overwrite=True)
    write_text_atomically(outputs["table"], format_results(runs) + "\n", overwrite=True)
    hybrid = {run.name: run.path_losses for run in runs if run.path_losses}
    plot_alpha_and_path_losses(hybrid, outputs["plot"],
                               title="Synthetic Cityscapes-style student, GTA5-style teacher")
    return outputs
