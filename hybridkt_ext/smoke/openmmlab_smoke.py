"""Smoke runs of mmseg and mmdet configs: plain and hybrid, N iterations each, the real Runner.

The config's model, optimiser and custom hooks are used as they are; what a CPU smoke run
cannot have is replaced, and each replacement is listed in the report: the datasets (generated
Cityscapes-style scenes for mmseg, the synthetic CityPersons with masks for mmdet, at the
config's class count), the schedule (N iterations, no evaluation, a checkpoint at the end),
pretrained downloads (``init_cfg`` of type ``Pretrained``), AMP (CPU) and the loggers (every
iteration, local files only). A stock config is converted with the README's lines; a converted
one is run as it is, and its plain twin is ``plain_student_config`` of it.
"""
from __future__ import annotations

import copy
import json
import statistics
import warnings
from pathlib import Path
from typing import Any, Iterator

import torch
from mmengine.config import Config

from hybridkt_ext.for_openmmlab.student_export import (export_student_checkpoint,
                                                       plain_student_config)
from hybridkt_ext.for_openmmlab.teacher_config import resolve_config_path

from .smoke_config_error import SmokeConfigError
from .smoke_report import IterationLosses, SmokeResult
from .teacher_option import TeacherOption

HOOK = "HybridKTHook"
# Where each library keeps its cityscapes classes / its default (COCO) class count.
_CITYSCAPES_CLASSES = 19
_MMDET_DEFAULT_CLASSES = 80


def read_config(name: str) -> Config:
    """An mmengine config from a file or a scoped name (``mmseg::segformer/...``)."""
    path = resolve_config_path(name) if "::" in name else Path(name)
    if not Path(path).is_file():
        raise SmokeConfigError(f"{name}: no such config file.")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Config.fromfile(str(path))


def is_hybrid(cfg: Config) -> bool:
    return cfg.model.get("backbone", {}).get("type") == "HybridBackbone"


def convert(cfg: Config, teacher: TeacherOption, scope: str) -> Config:
    """The README's conversion: the config's backbone becomes the student of a HybridBackbone,
    the adapter is imported and HybridKTHook joins the config's own custom hooks."""
    data = copy.deepcopy(cfg.to_dict())
    student = data["model"]["backbone"]
    data["model"]["backbone"] = dict(type="HybridBackbone", student=student,
                                     teacher=teacher.openmmlab_teacher())
    imports = data.setdefault("custom_imports", dict(imports=[], allow_failed_imports=False))
    modules = imports.get("imports", [])
    modules = [modules] if isinstance(modules, str) else list(modules)  # mmengine takes both
    adapter = f"hybridkt_ext.for_{scope}"
    imports["imports"] = modules if adapter in modules else [*modules, adapter]
    data["custom_hooks"] = [*(data.get("custom_hooks") or []), dict(type=HOOK)]
    return Config(data)


def _walk(node: Any) -> Iterator[dict]:
    if isinstance(node, dict):
        yield node
        node = list(node.values())
    if isinstance(node, (list, tuple)):
        for value in node:
            yield from _walk(value)


def num_classes(model: dict, default: int) -> int:
    """The class count the config's heads predict (the first ``num_classes`` found)."""
    return next((n["num_classes"] for n in _walk(model) if isinstance(n.get("num_classes"), int)),
                default)


def _no_downloads(model: dict, changes: list[str]) -> None:
    for node in _walk(model):
        init = node.get("init_cfg")
        if isinstance(init, dict) and init.get("type") == "Pretrained":
            changes.append(f"init_cfg {init.get('checkpoint')} dropped (no downloads)")
            node["init_cfg"] = None
        if isinstance(node.get("pretrained"), str):
            changes.append(f"pretrained {node['pretrained']} dropped (no downloads)")
            node["pretrained"] = None


def _mmseg_data(cfg: Config, root: Path, size: tuple[int, int], batch: int) -> dict:
    from mmseg.datasets import CityscapesDataset

    classes = num_classes(cfg.model, _CITYSCAPES_CLASSES)
    dataset = dict(type="SyntheticCityscapesDataset", data_root=str(root / "cityscapes"),
                   synthetic=dict(style="cityscapes", num_train=max(4, 2 * batch), num_val=2,
                                  size=size, seed=0),
                   data_prefix=dict(img_path="leftImg8bit/train", seg_map_path="gtFine/train"),
                   pipeline=[dict(type="LoadImageFromFile"), dict(type="LoadAnnotations"),
                             dict(type="PackSegInputs")])
    if classes < _CITYSCAPES_CLASSES:  # the first classes; the others become ignore (255)
        dataset["metainfo"] = dict(classes=CityscapesDataset.METAINFO["classes"][:classes])
    cfg.model.data_preprocessor.size = size  # stock configs pad every image to their crop
    return dataset


def _mmdet_data(cfg: Config, root: Path, size: tuple[int, int]) -> dict:
    from .synthetic_coco import coco_dataset

    classes = num_classes(cfg.model, _MMDET_DEFAULT_CLASSES)
    preprocessor = cfg.model.get("data_preprocessor", {})
    for augment in preprocessor.get("batch_augments") or []:
        if "size" in augment:  # e.g. Mask2Former's fixed 1024x1024 pad
            augment["size"] = size
    annotations = next((n for n in _walk(cfg.train_dataloader)
                        if n.get("type") == "LoadAnnotations"), None)
    dataset = coco_dataset(root / "citypersons", [f"class{i}" for i in range(classes)],
                           short_side=min(size), annotations=annotations)
    if cfg.train_dataloader.dataset.get("type") == "MultiImageMixDataset":
        # YOLOX's mode-switch hook talks to this wrapper; its Mosaic/MixUp steps stay out.
        dataset = dict(type="MultiImageMixDataset", dataset=dataset, pipeline=[])
    return dataset


def smoke_config(cfg: Config, scope: str, work_dir: Path, data_root: Path, iters: int,
                 size: tuple[int, int], batch: int, changes: list[str]) -> Config:
    """``cfg`` made runnable on CPU in seconds (see the module docstring); ``changes`` lists
    what was replaced."""
    cfg = Config(copy.deepcopy(cfg.to_dict()))
    _no_downloads(cfg.model, changes)
    dataset = (_mmseg_data(cfg, data_root, size, batch) if scope == "mmseg"
               else _mmdet_data(cfg, data_root, size))
    cfg.train_dataloader = dict(batch_size=batch, num_workers=0, persistent_workers=False,
                                sampler=dict(type="InfiniteSampler", shuffle=False),
                                dataset=dataset)
    for key in ("val_dataloader", "val_evaluator", "val_cfg", "test_dataloader",
                "test_evaluator", "test_cfg"):
        cfg[key] = None
    cfg.train_cfg = dict(type="IterBasedTrainLoop", max_iters=iters, val_interval=iters + 1)
    cfg.param_scheduler = None
    if cfg.optim_wrapper.get("type") == "AmpOptimWrapper":
        cfg.optim_wrapper.type = "OptimWrapper"
        cfg.optim_wrapper.pop("loss_scale", None)
        changes.append("AmpOptimWrapper -> OptimWrapper (CPU)")
    hooks = cfg.get("default_hooks") or {}
    hooks["logger"] = dict(type="LoggerHook", interval=1, log_metric_by_epoch=False)
    hooks["checkpoint"] = dict(type="CheckpointHook", by_epoch=False, interval=iters)
    hooks.pop("visualization", None)
    cfg.default_hooks = hooks
    cfg.log_processor = dict(by_epoch=False, window_size=1)
    cfg.visualizer = dict(type="Visualizer", vis_backends=[dict(type="LocalVisBackend")])
    cfg.env_cfg = dict(cudnn_benchmark=False, dist_cfg=dict(backend="gloo"))
    cfg.launcher, cfg.load_from, cfg.resume = "none", None, False
    cfg.randomness = dict(seed=0)
    cfg.log_level = "WARNING"  # the report is the output; the logs are in the work dir
    cfg.work_dir = str(work_dir)
    cfg.experiment_name = work_dir.name  # the two runs of one process must not share a name
    return cfg


def _rows(work_dir: Path) -> list[dict]:
    scalars = next(work_dir.glob("*/vis_data/scalars.json"))
    return [json.loads(line) for line in scalars.read_text().splitlines() if line.strip()]


def _train(cfg: Config):
    from mmengine.runner import Runner

    runner = Runner.from_cfg(cfg)
    runner.train()
    return runner


def _median_time(rows: list[dict]) -> float:
    times = [r["time"] for r in rows if "time" in r]
    return statistics.median(times[1:] or times)  # the first iteration warms up


def _tensors(out: Any) -> list[torch.Tensor]:
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, dict):
        out = [out[k] for k in sorted(out)]
    if isinstance(out, (list, tuple)):
        return [t for value in out for t in _tensors(value)]
    return []


def _outputs(model, batch) -> list[torch.Tensor]:
    model.eval()
    with torch.no_grad():
        data = model.data_preprocessor(copy.deepcopy(batch), False)
        return _tensors(model(**data, mode="tensor"))


def _model_from_file(scope: str, cfg: Config, checkpoint: Path):
    """The framework's own way to build a config's model and load a checkpoint into it."""
    if scope == "mmseg":
        from mmseg.apis import init_model
        return init_model(cfg, str(checkpoint), device="cpu")
    from mmdet.apis import init_detector
    return init_detector(cfg, str(checkpoint), device="cpu")


def export_difference(scope: str, hybrid_runner, hybrid_cfg: Config, work_dir: Path) -> float:
    """Largest difference between the outputs of the hybrid model of the last checkpoint (its
    student path) and of the student exported from it, in the plain config. Both are built and
    loaded by the framework's own ``init_*`` from the files, as a user does; the in-memory model
    is not the checkpoint's when an EMAHook saves its averaged weights."""
    checkpoint = Path(hybrid_cfg.work_dir) / f"iter_{hybrid_cfg.train_cfg.max_iters}.pth"
    student = export_student_checkpoint(checkpoint, work_dir / "student.pth", overwrite=True)
    models = []
    for cfg, path in ((hybrid_cfg, checkpoint), (plain_student_config(hybrid_cfg), student)):
        cfg = Config(copy.deepcopy(cfg.to_dict()))
        # init_detector reads the class names from the test dataset when the file has none.
        cfg.test_dataloader = dict(dataset=copy.deepcopy(hybrid_cfg.train_dataloader.dataset))
        models.append(_model_from_file(scope, cfg, path))
    batch = next(iter(hybrid_runner.train_dataloader))
    ours, theirs = (_outputs(model, batch) for model in models)
    if not ours or len(ours) != len(theirs):
        return float("inf")
    return max(float((a - b).abs().max()) if a.shape == b.shape else float("inf")
               for a, b in zip(ours, theirs))


def run_openmmlab_smoke(config: str, scope: str, teacher: TeacherOption | None, iters: int,
                        work_dir: Path, size: tuple[int, int], batch: int = 2) -> SmokeResult:
    """Runs ``config`` plain and hybrid for ``iters`` iterations; see the module docstring."""
    __import__(f"hybridkt_ext.for_{scope}")  # registers HybridBackbone, the hook, datasets
    cfg = read_config(config)
    if is_hybrid(cfg):
        if teacher is not None:
            raise SmokeConfigError(f"{config} is already converted (its backbone is a "
                                   f"HybridBackbone): leave out --teacher.")
        hybrid, plain = cfg, plain_student_config(cfg)
    elif teacher is None:
        raise SmokeConfigError(f"{config} has a plain backbone "
                               f"({cfg.model.backbone.get('type')}): name the teacher to convert "
                               f"it with, e.g. --teacher torchvision.resnet18.")
    else:
        hybrid, plain = convert(cfg, teacher, scope), cfg
    data = ("Cityscapes-style scenes" if scope == "mmseg"
            else "CityPersons as COCO (masks where the config loads them)")
    changes = [f"data: generated {data} at {size[0]}x{size[1]}",
               f"schedule: {iters} iterations, no evaluation"]
    data_root = work_dir / "data"
    runs = {}
    for name, run_cfg in (("plain", plain), ("hybrid", hybrid)):
        run_cfg = smoke_config(run_cfg, scope, work_dir / name, data_root, iters, size, batch,
                               changes if name == "hybrid" else [])
        runs[name] = (run_cfg, _train(run_cfg))
    hybrid_cfg, hybrid_runner = runs["hybrid"]
    rows = {name: [r for r in _rows(work_dir / name) if "time" in r] for name in runs}
    losses = [IterationLosses(r["step"], r["hkt_alpha"], r["hkt_L1"], r["hkt_L2"], r["hkt_L3"])
              for r in rows["hybrid"] if "hkt_alpha" in r]
    return SmokeResult(
        config=config, framework=scope, iterations=iters, losses=losses,
        plain_seconds=_median_time(rows["plain"]), hybrid_seconds=_median_time(rows["hybrid"]),
        export_difference=export_difference(scope, hybrid_runner, hybrid_cfg, work_dir),
        changes=list(dict.fromkeys(changes)))
