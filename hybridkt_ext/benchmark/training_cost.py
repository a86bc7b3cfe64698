"""Training-cost benchmark of the hybrid step against student-only, naive hybrid and the
feature-mimicking baselines (FitNet, AT, FT, AB, CWD).

All modes of a setting run in the same process on the same batch, alternating step by step
after warm-up; the table shows medians. The settings are in ``benchmark.settings``; two need
more than torch + torchvision and are skipped (with a line saying so) where it is missing:
seg_r101_mitb0 (mmseg's MiT-B0 student) and cls_timm-convnext-t_mbv1 (timm's ConvNeXt-T).

  hybridkt-benchmark --small                      # CPU, small sizes, a few minutes
  hybridkt-benchmark --device cuda --amp bf16 --channels-last --json perf.json

Modes: student (student path only); hybrid (the engine, every exact speed-up on: shared
prefixes, teacher-only prefixes without autograd, paired student stages fused into one call
where the student keeps no batch statistics); hybrid_unfused (``fuse_stages=False``);
hybrid+ckpt (``recompute_teacher=True``); hybrid_alternate (one hybrid path per step,
student-first on even steps and teacher-first on odd ones, the student path every step, balanced
by ``LossBalancer.one_path``: not the same loss, a cheaper variant); naive (three independent
forwards through a copy of the teacher whose weights keep requires_grad, as an implementation
that only leaves them out of the optimiser has); fitnet, at, ft, ab, cwd (the student path
plus the mode's loss, built by the transfer-mode registry with its default options). Columns:
median step time (forward, backward, optimiser step), ratio to student-only, FLOPs per step
(torch.utils.flop_counter), efficiency = achieved FLOP/s relative to student-only (1.0: the
mode runs its arithmetic exactly as fast as plain training), MiB saved for backward (counted
exactly, see benchmark.activation_memory), peak memory (CUDA peak allocated; on CPU the peak
RSS of a spawned process that runs only that mode, about 0.7 GiB of it the imported libraries).
Below each table: the three-path modes' losses against the engine's on the same weights, and
for classification the student path in eval mode against the plain model from the export.

``--compile`` compiles every student and teacher stage module in place (``nn.Module.compile``,
torch.compile's default backend) before anything is measured; the first steps (warm-up, the
FLOP count and the memory probes) then include compilation, and FLOPs are counted on the
compiled stages.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import multiprocessing as mp
import os
import resource
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from hybridkt_ext.benchmark.activation_memory import SavedActivationMeter
from hybridkt_ext.benchmark.naive_paths import (naive_hybrid_forward, naive_teacher,
                                                native_stage_sizes)
from hybridkt_ext.benchmark.settings import NEEDS, SETTINGS, Setting, build_task, \
    pedestrian_targets
from hybridkt_ext.cli_arguments import non_negative_int, positive_int, torch_device
from hybridkt_ext.core import (HybridForward, LossBalancer, export_student_state_dict,
                               write_text_atomically)
from hybridkt_ext.core.stages import StagedBackbone
from hybridkt_ext.core.transfer_modes import transfer_mode
from hybridkt_ext.core.transfer_step import alternate_path
from hybridkt_ext.for_classification.models import build_classifier, classifier_head

# The feature-mimicking baselines, built by the transfer-mode registry as configs build them.
MIMICKING_MODES = ("fitnet", "at", "ft", "ab", "cwd")
MODES = ("student", "hybrid", "hybrid_unfused", "hybrid+ckpt", "hybrid_alternate", "naive",
         *MIMICKING_MODES)
# The three-path modes: the same losses L1 L2 L3 on the same weights, "hybrid" the reference.
THREE_PATH_MODES = ("hybrid", "hybrid_unfused", "hybrid+ckpt", "naive")


def configure(engine: HybridForward, mode: str) -> None:
    """Puts the shared engine into ``mode``'s configuration before each of its steps.

    The engine's teacher stays frozen in every mode (the naive reference has its own).
    """
    engine.recompute_teacher = mode == "hybrid+ckpt"
    engine.fuse_stages = mode != "hybrid_unfused"


@dataclass
class ModeRun:
    """What a mode runs: its forward (returns its path losses), its full training step."""

    forward: Callable[[], list[torch.Tensor]]
    step: Callable[[], None]
    params: list[nn.Parameter]  # everything its optimiser updates
    teacher: StagedBackbone  # the teacher its forward runs


def make_mode(mode: str, engine: HybridForward, loss_of: Callable, extra: nn.Module | None,
              x: torch.Tensor, sizes, amp: str | None, teacher: StagedBackbone) -> ModeRun:
    """``mode``'s closures; ``teacher`` is the naive reference's own (``naive_teacher``)."""
    balancer = LossBalancer("dynamic")
    transfer = None
    if mode in MIMICKING_MODES:  # the mode's default options, as a config without any gets
        transfer = transfer_mode(mode).loss(engine).to(x.device)
    params = [p for p in engine.parameters() if p.requires_grad]
    for module in (extra, transfer):
        if module is not None:
            params += [p for p in module.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=1e-4, momentum=0.9)
    if mode != "naive":
        teacher = engine.teacher
    steps = 0  # this mode's step counter: hybrid_alternate's path follows it

    def forward() -> list[torch.Tensor]:
        if mode == "student":
            return [loss_of(engine(x))]
        if mode == "hybrid_alternate":
            path = alternate_path(steps)
            feats = engine.forward_hybrid(x, paths=("student", path))
            return [loss_of(getattr(feats, path)), loss_of(feats.student)]
        if mode in THREE_PATH_MODES:
            feats = (naive_hybrid_forward(engine, teacher, x, sizes) if mode == "naive"
                     else engine.forward_hybrid(x))
            return [loss_of(f) for f in (feats.student_first, feats.teacher_first,
                                         feats.student)]
        s_feats, t_feats = engine.forward_with_teacher(x)
        return [loss_of([s_feats[i] for i in engine.out_indices])
                + transfer(s_feats, t_feats)]

    def step() -> None:
        nonlocal steps
        with torch.autocast(x.device.type, dtype=torch.bfloat16) if amp == "bf16" \
                else contextlib.nullcontext():
            losses = forward()
            if mode == "hybrid_alternate":
                loss = balancer.one_path(*losses, alternate_path(steps), step=steps).total
            else:
                loss = balancer(*losses).total if len(losses) == 3 else losses[0]
        optimizer.zero_grad(set_to_none=True)
        if mode == "naive":  # out of the optimiser, but backward allocates them every step
            for p in teacher.parameters():
                p.grad = None
        loss.backward()
        optimizer.step()
        steps += 1

    return ModeRun(forward, step, params, teacher)


def compile_stages(*backbones: StagedBackbone) -> None:
    """Compiles every stage module of ``backbones`` in place (torch.compile's default)."""
    for backbone in backbones:
        for i in range(backbone.num_stages):
            backbone.stage(i).compile()


def prepare(setting: Setting, args) -> dict:
    """Builds models, batch and every mode's closures on ``args.device``."""
    torch.manual_seed(0)
    device = torch.device(args.device)
    engine, extra, loss_fn = build_task(setting, args.small)
    batch = setting.small_batch if args.small else setting.batch
    h, w = setting.small_size if args.small else setting.size
    memory_format = torch.channels_last if args.channels_last else torch.contiguous_format
    for module in (engine, extra):
        if module is not None:
            module.to(device, memory_format=memory_format).train()
    naive = naive_teacher(engine)  # after .to(): the same weights on the same device
    if args.compile:
        compile_stages(engine.student, engine.teacher, naive)
    x = torch.randn(batch, 3, h, w, device=device).contiguous(memory_format=memory_format)
    if setting.task == "det":
        y = pedestrian_targets(batch, (h, w), device)
    elif setting.task == "seg":
        y = torch.randint(0, 19, (batch, h, w), device=device)
    else:
        y = torch.randint(0, 1000, (batch,), device=device)
    sizes = native_stage_sizes(engine, x)  # cacheable per input shape: not measured

    def loss_of(feats):
        return loss_fn(feats, x, y)

    modes = {m: make_mode(m, engine, loss_of, extra, x, sizes, args.amp, naive) for m in MODES}
    return {"engine": engine, "x": x, "modes": modes, "batch": batch, "size": (h, w)}


def compare_hybrid_losses(bench: dict) -> dict[str, float]:
    """Largest relative difference of (L1, L2, L3) from the engine's, per three-path mode.

    The weights are the same for all (no optimiser step in between) and the RNG is reset
    before each, so detection heads sample the same proposals and ROIs.
    """
    losses = {}
    for mode in THREE_PATH_MODES:
        configure(bench["engine"], mode)
        torch.manual_seed(0)
        losses[mode] = torch.stack([loss.detach().float() for loss in
                                    bench["modes"][mode].forward()])
    ref = losses["hybrid"]
    return {m: ((losses[m] - ref).abs() / ref.abs()).max().item() for m in THREE_PATH_MODES[1:]}


def compare_inference(setting: Setting, bench: dict, repeats: int) -> dict[str, float] | None:
    """Student path in eval mode against the plain classifier loaded from the export."""
    if setting.task != "cls":
        return None  # tests/core/test_export.py covers identity for every layout
    engine, x = bench["engine"], bench["x"]
    plain = build_classifier(setting.student, 1000).to(x.device, memory_format=(
        torch.channels_last if x.is_contiguous(memory_format=torch.channels_last)
        else torch.contiguous_format))
    plain.load_state_dict(export_student_state_dict(engine.state_dict(), "student.model.",
                                                    drop_prefixes=("teacher.", "to_")))
    engine.eval()
    plain.eval()
    head = classifier_head(engine.student.model)
    runs = {"plain": lambda: plain(x), "engine": lambda: head(engine(x)[-1])}
    times: dict[str, list[float]] = {k: [] for k in runs}
    with torch.no_grad():
        outputs = {k: run() for k, run in runs.items()}
        for _ in range(repeats):
            for k, run in runs.items():
                synchronize(x.device)
                start = time.perf_counter()
                run()
                synchronize(x.device)
                times[k].append(time.perf_counter() - start)
    engine.train()
    return {"max_abs_diff": (outputs["engine"] - outputs["plain"]).abs().max().item(),
            "time_ratio": statistics.median(times["engine"]) / statistics.median(times["plain"])}


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _rss_child(conn, setting_name: str, args: argparse.Namespace, mode: str) -> None:
    # A spawned process (fork after torch's OpenMP pool has started can deadlock) that builds
    # the models and runs only this mode: its peak RSS is the models plus this mode's steps.
    if args.threads:
        torch.set_num_threads(args.threads)
    bench = prepare(SETTINGS[setting_name], args)
    configure(bench["engine"], mode)
    for _ in range(2):
        bench["modes"][mode].step()
    conn.send(peak_rss_mib())


def peak_rss_mib() -> float:
    """This process's peak resident memory since it started its program.

    Linux keeps ``ru_maxrss`` across exec, so a spawned child would report at least the RSS
    its parent had when it forked; ``VmHWM`` is the high-water mark of the child's own
    address space.
    """
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # bytes on macOS


def peak_memory(setting: Setting, args, bench: dict) -> dict[str, float]:
    result = {}
    if args.device.startswith("cuda"):
        for mode in MODES:
            configure(bench["engine"], mode)
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            bench["modes"][mode].step()
            torch.cuda.synchronize()
            result[mode] = torch.cuda.max_memory_allocated() / 2**20
        return result
    ctx = mp.get_context("spawn")
    for mode in MODES:
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_rss_child, args=(child, setting.name, args, mode))
        proc.start()
        child.close()  # only the child holds its end now: recv() sees EOF if the child dies
        try:
            peak = parent.recv()
        except EOFError:
            proc.join()
            raise RuntimeError(f"the memory probe of {setting.name}, mode {mode}, died with "
                               f"exit code {proc.exitcode}") from None
        proc.join()
        result[mode] = peak
    return result


def saved_for_backward(bench: dict, amp: str | None) -> dict[str, float]:
    """MiB autograd keeps between each mode's forward and backward."""
    engine = bench["engine"]
    result = {}
    for mode in MODES:
        configure(engine, mode)
        run = bench["modes"][mode]
        teacher_stages = [run.teacher.stage(i) for i in range(run.teacher.num_stages)]
        with torch.autocast(bench["x"].device.type, dtype=torch.bfloat16) if amp == "bf16" \
                else contextlib.nullcontext():
            with SavedActivationMeter([*engine.parameters(), *run.teacher.parameters(),
                                       *run.params],
                                      watched=teacher_stages) as meter:
                losses = run.forward()
        del losses
        result[mode] = meter.total_bytes / 2**20
    return result


def measure(setting: Setting, args) -> dict:
    bench = prepare(setting, args)
    engine, device = bench["engine"], torch.device(args.device)
    memory = peak_memory(setting, args, bench)
    saved = saved_for_backward(bench, args.amp)
    loss_diff = compare_hybrid_losses(bench)
    flops = {}
    for mode in MODES:
        configure(engine, mode)
        with FlopCounterMode(display=False) as counter:
            bench["modes"][mode].step()
        flops[mode] = counter.get_total_flops()
    times: dict[str, list[float]] = {m: [] for m in MODES}
    for rep in range(args.warmup + args.repeats):
        for mode in MODES:  # alternate modes so drift affects all equally
            configure(engine, mode)
            synchronize(device)
            start = time.perf_counter()
            bench["modes"][mode].step()
            synchronize(device)
            if rep >= args.warmup:
                times[mode].append(time.perf_counter() - start)
    configure(engine, "hybrid")
    base_t = statistics.median(times["student"])
    rows = []
    for mode in MODES:
        t = statistics.median(times[mode])
        rows.append({"setting": setting.name, "mode": mode, "batch": bench["batch"],
                     "size": bench["size"], "median_s": t, "ratio": t / base_t,
                     "gflops": flops[mode] / 1e9,
                     "efficiency": (flops[mode] / t) / (flops["student"] / base_t),
                     "saved_mib": saved[mode], "peak_mib": memory[mode]})
    return {"rows": rows, "loss_rel_diff_vs_hybrid": loss_diff,
            "inference": compare_inference(setting, bench, args.repeats)}


def print_table(result: dict, args) -> None:
    rows = result["rows"]
    first = rows[0]
    print(f"\n### {first['setting']}  batch {first['batch']}, input {first['size'][0]}x"
          f"{first['size'][1]}, {args.device}, amp={args.amp or 'fp32'}, "
          f"channels_last={args.channels_last}, compile={args.compile}")
    print("| mode | median step (ms) | ratio to student | GFLOPs/step | efficiency | "
          "saved for backward (MiB) | peak memory (MiB) |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['mode']} | {1000 * r['median_s']:.1f} | {r['ratio']:.2f} | "
              f"{r['gflops']:.2f} | {r['efficiency']:.2f} | {r['saved_mib']:.1f} | "
              f"{r['peak_mib']:.0f} |")
    by_mode = {r["mode"]: r for r in rows}
    hybrid = by_mode["hybrid"]
    diffs = ", ".join(f"{m} {d:.1e}" for m, d in result["loss_rel_diff_vs_hybrid"].items())
    saved = "; ".join(f"hybrid vs {m}: FLOPs saved "
                      f"{1 - hybrid['gflops'] / by_mode[m]['gflops']:.1%}, time saved "
                      f"{1 - hybrid['median_s'] / by_mode[m]['median_s']:.1%}"
                      for m in ("naive", "hybrid_unfused"))
    alternate = by_mode["hybrid_alternate"]["ratio"] / hybrid["ratio"]
    print(f"\n{saved}; hybrid_alternate costs {alternate:.2f} of hybrid's time; max relative "
          f"loss difference from hybrid: {diffs}")
    if result["inference"]:
        inf = result["inference"]
        print(f"eval: student path vs plain exported model: max |diff| "
              f"{inf['max_abs_diff']:.1e}, time ratio {inf['time_ratio']:.2f}")
    sys.stdout.flush()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--small", action="store_true", help="small batch and inputs (CPU)")
    p.add_argument("--device", type=torch_device, default="cpu")
    p.add_argument("--amp", choices=["bf16"], default=None)
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile every student and teacher stage module first")
    p.add_argument("--threads", type=non_negative_int, default=1,
                   help="torch CPU threads, 0 for torch's default. 1 keeps CPU ratios steady: "
                        "on a busy machine every OpenMP barrier waits for a preempted thread")
    p.add_argument("--settings", default=",".join(SETTINGS),
                   help=f"comma-separated subset of {list(SETTINGS)}")
    p.add_argument("--warmup", type=non_negative_int, default=2)
    p.add_argument("--repeats", type=positive_int, default=5)
    p.add_argument("--json", type=Path, default=None, help="also write the results as JSON")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --json file")
    args = p.parse_args(argv)
    names = [n for n in args.settings.split(",") if n]
    unknown = [n for n in names if n not in SETTINGS]
    if unknown:
        p.error(f"unknown settings {unknown}; choose from {list(SETTINGS)}")
    if not names:
        p.error("--settings is empty; name at least one")
    if args.json is not None:  # checked now, not after minutes of measuring
        if args.json.is_dir():
            p.error(f"--json {args.json} is a folder; give a file, e.g. {args.json / 'perf.json'}")
        if args.json.exists() and not args.overwrite:
            p.error(f"--json {args.json} exists; pass --overwrite to replace it")
        if not os.access(args.json.parent if str(args.json.parent) else ".", os.W_OK):
            p.error(f"--json {args.json}: its folder does not exist or is not writable")
    if args.threads:
        torch.set_num_threads(args.threads)  # spawned memory probes do the same
    results = []
    for name in names:
        if name in NEEDS and importlib.util.find_spec(NEEDS[name]) is None:
            print(f"\n### {name}: skipped, it needs {NEEDS[name]}, which is not installed")
            continue
        result = measure(SETTINGS[name], args)
        print_table(result, args)
        results.append(result)
    if args.json:
        write_text_atomically(args.json, json.dumps(
            {"device": args.device, "torch": torch.__version__,
             "threads": torch.get_num_threads(), "results": results}, indent=1), overwrite=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
