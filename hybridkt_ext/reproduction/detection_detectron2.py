"""The detection experiment on detectron2: ``hybridkt-train-net`` runs of the shipped
``configs/detectron2/*synthetic*`` files (``detection`` is the experiment itself)."""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import torch

from hybridkt_ext.shipped_configs import config_dir

CONFIGS = {"none": "mobilenetv1-fpn-noteacher-synthetic.yaml",
           "fitnet": "mobilenetv1-fpn-fitnet-synthetic.yaml",
           "at": "mobilenetv1-fpn-at-synthetic.yaml",
           "hybrid": "hybridkt-mobilenetv1-fpn-synthetic.yaml",
           "fixed": "hybridkt-mobilenetv1-fpn-fixed-alpha-synthetic.yaml",
           "hybrid_r18": "hybridkt-r18-fpn-synthetic.yaml"}
NAME = "detectron2"


def missing() -> str | None:
    """A sentence saying why this backend cannot run, or None when detectron2 is importable."""
    if importlib.util.find_spec("detectron2") is None:
        return ("detectron2 is not installed (it is not on PyPI; see the README's optional "
                "source install)")
    return None


def config(mode: str) -> Path:
    return config_dir("detectron2") / CONFIGS[mode]


def write_teacher(digits_classifier: dict, out: Path) -> Path:
    """The digits ResNet-18 as detectron2's torchvision teacher reads it: without ``fc.*``."""
    torch.save({k: v for k, v in digits_classifier.items() if not k.startswith("fc.")}, out)
    return out


def schedule(iters: int | None) -> tuple[list[str], str]:
    """Command-line overrides for ``iters`` iterations (None: the configs' own schedule) that
    keep the schedule's shape (LR step at the same fraction, warm-up clipped), and a sentence
    describing the schedule for the tables' notes."""
    from detectron2.config import get_cfg

    from hybridkt_ext.for_detectron2 import add_hybridkt_config

    cfg = get_cfg()
    add_hybridkt_config(cfg)
    cfg.merge_from_file(str(config("hybrid")))
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


def command(mode: str, seed: int, output_dir: Path, teacher: Path, alpha: float | None,
            schedule_opts: list[str]) -> list[str]:
    """The training command of one run (detectron2 appends to a reused OUTPUT_DIR's
    metrics.json: the caller empties ``output_dir`` first)."""
    cmd = [sys.executable, "-m", "hybridkt_ext.cli.train_net", "--config-file", str(config(mode)),
           *schedule_opts, "SEED", str(seed), "OUTPUT_DIR", str(output_dir),
           "TEST.EVAL_PERIOD", "0", "MODEL.HYBRIDKT.TEACHER.WEIGHTS", str(teacher)]
    if alpha is not None:
        cmd += ["MODEL.HYBRIDKT.FIXED_ALPHA", str(alpha)]
    return cmd


def final_metrics(output_dir: Path) -> dict[str, float]:
    """The last MR^-2 values detectron2 wrote to metrics.json (keys without the evaluator's
    prefix: ``MR2_Reasonable``, ...)."""
    found: dict[str, float] = {}
    path = output_dir / "metrics.json"
    for line in path.read_text().splitlines() if path.exists() else []:
        row = json.loads(line)
        found.update({k.split("/")[-1]: v for k, v in row.items() if "MR2" in k})
    return found


def alpha_rows(output_dir: Path) -> list[dict[str, float]]:
    """alpha and L1..L3 as detectron2's JSON writer logged them (every 20 iterations)."""
    rows = [json.loads(line) for line in (output_dir / "metrics.json").read_text().splitlines()]
    return [{"step": r["iteration"], **{k: r[k] for k in ("hkt_alpha", "hkt_L1", "hkt_L2",
                                                             "hkt_L3") if k in r}}
            for r in rows if "hkt_alpha" in r]
