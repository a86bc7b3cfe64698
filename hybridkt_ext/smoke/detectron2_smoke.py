"""Smoke runs of detectron2 YAML configs: plain (DefaultTrainer) and hybrid (HybridKTTrainer).

The config's meta-architecture, heads, class counts and solver are used as they are; replaced
for a CPU run of seconds: the data (the synthetic CityPersons with masks, keypoints and
semantic labels, ``citypersons_synthetic_mini_dense_train``), the input size, the schedule (N
iterations, no evaluation, no checkpoints before the end), ``MODEL.WEIGHTS`` (an ImageNet
download) and the device. A stock config is converted as the README says (the hybrid
backbone builder of its ``MODEL.BACKBONE.NAME``, the student bottom-up, the teacher); a
converted one runs as it is, and its plain twin is ``plain_student_config`` of it.
"""
from __future__ import annotations

import os
import statistics
import time
from pathlib import Path

import torch

from .smoke_config_error import SmokeConfigError
from .smoke_report import IterationLosses, SmokeResult
from .teacher_option import TeacherOption

DATASET = "citypersons_synthetic_mini_dense_train"


def _conversions() -> dict[str, tuple[str, str]]:
    """Plain MODEL.BACKBONE.NAME -> (hybrid builder, MODEL.HYBRIDKT.STUDENT_BOTTOM_UP)."""
    from hybridkt_ext.for_detectron2.export import PLAIN_BACKBONES

    return {plain: pair for pair, plain in PLAIN_BACKBONES.items()}


def _config_file(name: str) -> str:
    if Path(name).is_file():
        return name
    from detectron2 import model_zoo

    try:
        return model_zoo.get_config_file(name)
    except RuntimeError:
        raise SmokeConfigError(f"{name}: neither a file nor a detectron2 model-zoo config "
                                   f"name (such as COCO-Detection/retinanet_R_50_FPN_1x.yaml)."
                                   ) from None


def small_options(size: tuple[int, int], iters: int, out: Path) -> list[str]:
    short = min(size)
    return ["MODEL.WEIGHTS", "", "MODEL.DEVICE", "cpu", "SEED", "0",
            "INPUT.MIN_SIZE_TRAIN", f"({short},)", "INPUT.MAX_SIZE_TRAIN", str(2 * short),
            "INPUT.MIN_SIZE_TEST", str(short), "INPUT.MAX_SIZE_TEST", str(2 * short),
            "INPUT.CROP.ENABLED", "False", "DATASETS.TRAIN", f"('{DATASET}',)",
            "DATASETS.TEST", "()", "DATALOADER.NUM_WORKERS", "0",
            "SOLVER.IMS_PER_BATCH", "2", "SOLVER.MAX_ITER", str(iters), "SOLVER.STEPS", "()",
            "SOLVER.CHECKPOINT_PERIOD", str(iters + 1),
            "SOLVER.AMP.ENABLED", "False", "TEST.EVAL_PERIOD", "0", "OUTPUT_DIR", str(out)]


def hybrid_and_plain(config: str, teacher: TeacherOption | None):
    """The hybrid and the plain config of ``config`` (converted when it is a stock one)."""
    from hybridkt_ext.for_detectron2.config import load_hybridkt_config
    from hybridkt_ext.for_detectron2.export import plain_student_config

    path = _config_file(config)
    cfg = load_hybridkt_config(path, [])
    name = cfg.MODEL.BACKBONE.NAME
    if name.startswith("build_hybridkt"):
        if teacher is not None:
            raise SmokeConfigError(f"{config} is already converted (MODEL.BACKBONE.NAME "
                                       f"{name}): leave out --teacher.")
        return cfg, plain_student_config(cfg)
    if teacher is None:
        raise SmokeConfigError(f"{config} has a plain backbone ({name}): name the teacher "
                                   f"to convert it with, e.g. --teacher torchvision.resnet18.")
    conversions = _conversions()
    if name not in conversions:
        raise SmokeConfigError(
            f"{config}: MODEL.BACKBONE.NAME {name} has no hybrid builder; the converted "
            f"builders are {sorted(conversions)} (docs/detectron2.md).")
    hybrid_name, bottom_up = conversions[name]
    hybrid = load_hybridkt_config(path, ["MODEL.BACKBONE.NAME", hybrid_name,
                                         "MODEL.HYBRIDKT.STUDENT_BOTTOM_UP", bottom_up,
                                         *teacher.detectron2_options()])
    return hybrid, cfg


class _StepTimes:
    """Wall time of every step (detectron2's IterationTimer skips the first three)."""

    def __init__(self) -> None:
        # Defined here, not at module level: this module imports without detectron2.
        from detectron2.engine import HookBase

        times = self.seconds = []

        class Hook(HookBase):
            def before_step(self):
                self.start = time.perf_counter()

            def after_step(self):
                times.append(time.perf_counter() - self.start)

        self.hook = Hook()


def calibrate_frozen_norms(model, size: tuple[int, int]) -> int:
    """Sets the statistics of the student's FrozenBN layers from one random batch; returns
    how many. The stock configs start from ImageNet weights, which a smoke run cannot
    download: with random weights and FrozenBN's initial statistics (no normalisation) the
    activations grow block by block and a ResNet-101 step ends in Inf/NaN before any
    update. The teacher is left as it is (it must stay bit-identical)."""
    from detectron2.layers import FrozenBatchNorm2d

    from hybridkt_ext.for_detectron2.hooks import find_teacher

    teacher = find_teacher(model)
    skip = {id(m) for m in teacher.modules()} if teacher is not None else set()

    def measure(norm, inputs):
        norm.running_mean.copy_(inputs[0].mean((0, 2, 3)))
        norm.running_var.copy_(inputs[0].var((0, 2, 3)))

    handles = [m.register_forward_pre_hook(measure) for m in model.backbone.modules()
               if isinstance(m, FrozenBatchNorm2d) and id(m) not in skip]
    # Pixels as the model normalises them (PIXEL_STD is 1 in detectron2's MSRA configs).
    pixels = torch.rand(2, 3, *size, generator=torch.Generator().manual_seed(0)) * 255
    try:
        with torch.no_grad():  # outside a training step: the student path alone
            model.backbone((pixels - model.pixel_mean.cpu()) / model.pixel_std.cpu())
    finally:
        for handle in handles:
            handle.remove()
    return len(handles)


def _train(trainer_class, cfg, size: tuple[int, int]):
    timer = _StepTimes()
    trainer = trainer_class(cfg)
    calibrate_frozen_norms(trainer.model, size)
    trainer.register_hooks([timer.hook])
    trainer.train()
    times = timer.seconds
    return trainer, statistics.median(times[1:] or times)


def export_difference(model, hybrid_cfg, out: Path, size: tuple[int, int]) -> float:
    """Largest difference between the hybrid model's inference (the student path) and the
    exported student's in the plain config, built and loaded by plain detectron2."""
    from detectron2.checkpoint import DetectionCheckpointer
    from detectron2.config import get_cfg
    from detectron2.modeling import build_model

    from hybridkt_ext.for_detectron2 import save_student_checkpoint

    model.eval()
    save_student_checkpoint(model, out / "student.pth", overwrite=True, cfg=hybrid_cfg)
    plain_cfg = get_cfg()
    plain_cfg.merge_from_file(str(out / "student.yaml"))
    plain = build_model(plain_cfg).eval()
    DetectionCheckpointer(plain).load(str(out / "student.pth"))
    image = torch.randint(0, 255, (3, *size), generator=torch.Generator().manual_seed(0)
                          ).float()
    with torch.no_grad():
        ours, theirs = model([{"image": image}])[0], plain([{"image": image}])[0]
    if ours.keys() != theirs.keys():
        return float("inf")
    worst = 0.0
    for key in ours:
        a, b = ours[key], theirs[key]
        if key == "instances":
            pairs = [(a.scores, b.scores), (a.pred_boxes.tensor, b.pred_boxes.tensor)]
        elif key == "panoptic_seg":
            pairs = [(a[0].float(), b[0].float())]
        else:
            pairs = [(a.float(), b.float())]
        for x, y in pairs:
            if x.shape != y.shape:
                return float("inf")
            if x.numel():
                worst = max(worst, float((x - y).abs().max()))
    return worst


def run_detectron2_smoke(config: str, teacher: TeacherOption | None, iters: int,
                         work_dir: Path, size: tuple[int, int]) -> SmokeResult:
    """Runs ``config`` plain and hybrid for ``iters`` iterations; see the module docstring."""
    from detectron2.engine import DefaultTrainer

    import hybridkt_ext.for_detectron2  # noqa: F401  (registers the builders and datasets)
    from hybridkt_ext.for_detectron2.trainer import HybridKTTrainer

    os.environ.setdefault("HYBRIDKT_DATA", str(work_dir / "data"))  # where the data is made
    hybrid, plain = hybrid_and_plain(config, teacher)
    # detectron2 stretches the warm-up over min(WARMUP_ITERS, MAX_ITER): N iterations would
    # reach the peak LR from random weights and diverge. The run keeps the recipe's first LR.
    start_lr = hybrid.SOLVER.BASE_LR * hybrid.SOLVER.WARMUP_FACTOR
    for name, cfg in (("plain", plain), ("hybrid", hybrid)):
        cfg.merge_from_list([*small_options(size, iters, work_dir / name),
                             "SOLVER.BASE_LR", str(start_lr), "SOLVER.WARMUP_FACTOR", "1.0"])
    short = min(size)
    _, plain_seconds = _train(DefaultTrainer, plain, (short, 2 * short))
    trainer, hybrid_seconds = _train(HybridKTTrainer, hybrid, (short, 2 * short))
    history = trainer.storage.histories()
    losses = []
    if "hkt_alpha" in history:
        series = {k: dict((i, v) for v, i in history[k].values())
                  for k in ("hkt_alpha", "hkt_L1", "hkt_L2", "hkt_L3")}
        losses = [IterationLosses(i + 1, a, series["hkt_L1"][i], series["hkt_L2"][i],
                                  series["hkt_L3"][i])
                  for i, a in sorted(series["hkt_alpha"].items())]
    return SmokeResult(
        config=config, framework="detectron2", iterations=iters, losses=losses,
        plain_seconds=plain_seconds, hybrid_seconds=hybrid_seconds,
        export_difference=export_difference(trainer.model, hybrid, work_dir, (short, 2 * short)),
        changes=[f"data: {DATASET} (masks, keypoints, semantic labels), short side {short}",
                 f"schedule: {iters} iterations at the recipe's first LR ({start_lr:g}), "
                 f"no evaluation", "MODEL.WEIGHTS '' (no "
                 "downloads), the student's FrozenBN statistics measured on a random batch"])
