#!/usr/bin/env python
"""Training-cost benchmark of the hybrid step against student-only, naive hybrid, FitNet, AT.

All modes of a setting run in the same process on the same batch, alternating step by step
after warm-up; the table shows medians. Needs only torch + torchvision (the segmentation
setting uses torchvision's DeepLabV3 head as a stand-in for mmseg's).

  python tools/benchmark.py --small                      # CPU, small sizes, a few minutes
  python tools/benchmark.py --device cuda --amp bf16 --channels-last --json perf.json

Columns: median step time (forward, backward, optimiser step), ratio to student-only, FLOPs
per step (torch.utils.flop_counter), efficiency = achieved FLOP/s relative to student-only (1.0:
the mode runs its arithmetic exactly as fast as plain training), peak memory (CUDA peak
allocated; on CPU the peak RSS of a forked process that runs only that mode).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing as mp
import resource
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hybridkt_ext.core import (AttentionTransferLoss, FitNetLoss, HybridForward,  # noqa: E402
                               LossBalancer, align_stages, split_backbone)
from hybridkt_ext.core.naive_paths import naive_hybrid_forward, native_stage_sizes  # noqa: E402
from hybridkt_ext.for_classification.models import build_classifier, classifier_head  # noqa

MODES = ("student", "hybrid", "naive", "fitnet", "at")


@dataclass
class Setting:
    """One model pair and input size."""

    name: str
    teacher: str
    student: str
    task: str          # "cls" or "seg"
    batch: int
    size: tuple[int, int]
    small_batch: int
    small_size: tuple[int, int]


SETTINGS = {
    "cls_r50_mbv1": Setting("cls_r50_mbv1", "resnet50", "mobilenet_v1", "cls", 32, (224, 224),
                            4, (64, 64)),
    "cls_r50_r50": Setting("cls_r50_r50", "resnet50", "resnet50", "cls", 32, (224, 224),
                           4, (64, 64)),
    "seg_r101_r18": Setting("seg_r101_r18", "resnet101", "resnet18", "seg", 2, (512, 1024),
                            1, (64, 128)),
}


def build_pair(s: Setting, num_classes: int):
    """Student/teacher stages and a loss function of the student's last feature."""
    if s.task == "cls":
        student_model = build_classifier(s.student, num_classes)
        teacher_model = build_classifier(s.teacher, num_classes)
        head = classifier_head(student_model)
        return split_backbone(student_model), split_backbone(teacher_model), head, None
    import torchvision
    from torchvision.models.segmentation.deeplabv3 import DeepLabHead

    def resnet(name):
        # Output stride 8 like DeepLab's R-D8 backbones; torchvision's BasicBlock ResNets
        # (18/34) cannot dilate, so they stay at stride 32 and the adapters interpolate.
        basic = name in ("resnet18", "resnet34")
        return getattr(torchvision.models, name)(
            weights=None, replace_stride_with_dilation=None if basic else [False, True, True])

    student_model, teacher_model = resnet(s.student), resnet(s.teacher)
    student = split_backbone(student_model)
    head = DeepLabHead(student.stage_specs[-1].channels, num_classes)
    return student, split_backbone(teacher_model), head, head


def make_step(mode: str, engine: HybridForward, head: Callable, extra: torch.nn.Module | None,
              x: torch.Tensor, y: torch.Tensor, task: str, amp: str | None,
              sizes) -> tuple[Callable[[], None], list[torch.nn.Parameter]]:
    """A closure running one full training step of ``mode``."""
    def loss_of(feat):
        logits = head(feat)
        if task == "seg":
            logits = F.interpolate(logits, size=y.shape[-2:], mode="bilinear",
                                   align_corners=False)
        return F.cross_entropy(logits, y)

    balancer = LossBalancer("dynamic")
    transfer = None
    if mode == "fitnet":
        transfer = FitNetLoss([s.channels for s in engine.student.stage_specs],
                              [s.channels for s in engine.teacher.stage_specs])
    elif mode == "at":
        transfer = AttentionTransferLoss()
    params = [p for p in engine.parameters() if p.requires_grad]
    for module in (extra, transfer):
        if module is not None:
            params += [p for p in module.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=1e-4, momentum=0.9)
    autocast = (torch.autocast(x.device.type, dtype=torch.bfloat16) if amp == "bf16"
                else contextlib.nullcontext())

    def step() -> None:
        with autocast:
            if mode == "student":
                loss = loss_of(engine(x)[-1])
            elif mode in ("hybrid", "naive"):
                feats = (engine.forward_hybrid(x) if mode == "hybrid"
                         else naive_hybrid_forward(engine, x, sizes))
                loss = balancer(*(loss_of(f[-1]) for f in (feats.student_first,
                                                           feats.teacher_first,
                                                           feats.student))).total
            else:
                s_feats, t_feats = engine.forward_with_teacher(x)
                loss = loss_of(s_feats[-1]) + transfer(s_feats, t_feats)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step, params


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def set_teacher_grad(engine: HybridForward, mode: str) -> None:
    # The naive reference keeps the teacher's weights trainable-but-unused, as a naive
    # implementation that only leaves them out of the optimiser would.
    for p in engine.teacher.parameters():
        p.requires_grad_(mode == "naive")


def _rss_child(conn, setting_name: str, args: argparse.Namespace, mode: str) -> None:
    # A spawned process (fork after torch's OpenMP pool has started can deadlock) that builds
    # the models and runs only this mode: its peak RSS is the models plus this mode's steps.
    steps, _ = prepare(SETTINGS[setting_name], args)
    set_teacher_grad(steps["engine"], mode)
    for _ in range(2):
        steps[mode]()
    conn.send(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def prepare(setting: Setting, args) -> tuple[dict, dict]:
    torch.manual_seed(0)
    device = torch.device(args.device)
    num_classes = 19 if setting.task == "seg" else 1000
    student, teacher, head, extra = build_pair(setting, num_classes)
    student, teacher = align_stages(student, teacher)
    engine = HybridForward(student, teacher, out_indices=(student.num_stages - 1,))
    batch = setting.small_batch if args.small else setting.batch
    h, w = setting.small_size if args.small else setting.size
    memory_format = torch.channels_last if args.channels_last else torch.contiguous_format
    engine.to(device, memory_format=memory_format).train()
    if extra is not None:
        extra.to(device, memory_format=memory_format).train()
    x = torch.randn(batch, 3, h, w, device=device).contiguous(memory_format=memory_format)
    y = (torch.randint(0, num_classes, (batch, h, w), device=device) if setting.task == "seg"
         else torch.randint(0, num_classes, (batch,), device=device))
    sizes = native_stage_sizes(engine, x)
    steps = {m: make_step(m, engine, head, extra, x, y, setting.task, args.amp, sizes)[0]
             for m in MODES}
    steps["engine"] = engine
    return steps, {"batch": batch, "size": (h, w)}


def measure(setting: Setting, args) -> list[dict]:
    steps, shape = prepare(setting, args)
    engine, device = steps["engine"], torch.device(args.device)
    memory = peak_memory(setting, args, steps)
    flops = {}
    for mode in MODES:
        set_teacher_grad(engine, mode)
        with FlopCounterMode(display=False) as counter:
            steps[mode]()
        flops[mode] = counter.get_total_flops()
    times: dict[str, list[float]] = {m: [] for m in MODES}
    for rep in range(args.warmup + args.repeats):
        for mode in MODES:  # alternate modes so drift affects all equally
            set_teacher_grad(engine, mode)
            synchronize(device)
            start = time.perf_counter()
            steps[mode]()
            synchronize(device)
            if rep >= args.warmup:
                times[mode].append(time.perf_counter() - start)
    set_teacher_grad(engine, "hybrid")
    base_t = statistics.median(times["student"])
    rows = []
    for mode in MODES:
        t = statistics.median(times[mode])
        rows.append({"setting": setting.name, "mode": mode, **shape,
                     "median_s": t, "ratio": t / base_t, "gflops": flops[mode] / 1e9,
                     "efficiency": (flops[mode] / t) / (flops["student"] / base_t),
                     "peak_mib": memory[mode]})
    return rows


def peak_memory(setting: Setting, args, steps: dict) -> dict[str, float]:
    result = {}
    if args.device.startswith("cuda"):
        for mode in MODES:
            set_teacher_grad(steps["engine"], mode)
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            steps[mode]()
            torch.cuda.synchronize()
            result[mode] = torch.cuda.max_memory_allocated() / 2**20
        return result
    ctx = mp.get_context("spawn")
    for mode in MODES:
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_rss_child, args=(child, setting.name, args, mode))
        proc.start()
        peak = parent.recv()
        proc.join()
        result[mode] = peak / 1024  # ru_maxrss is in KiB on Linux
    return result


def print_table(rows: list[dict], args) -> None:
    first = rows[0]
    print(f"\n### {first['setting']}  batch {first['batch']}, input {first['size'][0]}x"
          f"{first['size'][1]}, {args.device}, amp={args.amp or 'fp32'}, "
          f"channels_last={args.channels_last}")
    print("| mode | median step (ms) | ratio to student | GFLOPs/step | efficiency | "
          "peak memory (MiB) |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['mode']} | {1000 * r['median_s']:.1f} | {r['ratio']:.2f} | "
              f"{r['gflops']:.2f} | {r['efficiency']:.2f} | {r['peak_mib']:.0f} |", flush=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--small", action="store_true", help="small batch and inputs (CPU)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--amp", choices=["bf16"], default=None)
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--settings", default=",".join(SETTINGS),
                   help=f"comma-separated subset of {list(SETTINGS)}")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--json", type=Path, default=None, help="also write the rows as JSON")
    args = p.parse_args(argv)
    names = [n for n in args.settings.split(",") if n]
    unknown = [n for n in names if n not in SETTINGS]
    if unknown:
        p.error(f"unknown settings {unknown}; choose from {list(SETTINGS)}")
    all_rows = []
    for name in names:
        rows = measure(SETTINGS[name], args)
        print_table(rows, args)
        all_rows += rows
    if args.json:
        args.json.write_text(json.dumps({"device": args.device, "torch": torch.__version__,
                                         "rows": all_rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
