"""Training-cost benchmark of the hybrid step against student-only, naive hybrid, FitNet, AT.

All modes of a setting run in the same process on the same batch, alternating step by step
after warm-up; the table shows medians. Needs only torch + torchvision: torchvision's
DeepLabV3 head stands in for mmseg's decode head, and torchvision's Faster R-CNN FPN, RPN and
ROI heads for detectron2's. Two settings need more and are skipped (with a line saying so)
where it is missing: seg_r101_mitb0 (mmseg's MiT-B0 student) and cls_timm-convnext-t_mbv1
(timm's ConvNeXt-T teacher).

  hybridkt-benchmark --small                      # CPU, small sizes, a few minutes
  hybridkt-benchmark --device cuda --amp bf16 --channels-last --json perf.json

Modes: student (student path only), hybrid (the engine), hybrid+ckpt (the engine with
``recompute_teacher=True``), naive (three independent forwards, teacher weights left
trainable), fitnet, at. Columns: median step time (forward, backward, optimiser step), ratio
to student-only, FLOPs per step (torch.utils.flop_counter), efficiency = achieved FLOP/s
relative to student-only (1.0: the mode runs its arithmetic exactly as fast as plain
training), MiB saved for backward (counted exactly, see benchmark.activation_memory), peak memory
(CUDA peak allocated; on CPU the peak RSS of a spawned process that runs only that mode,
about 0.7 GiB of it the imported libraries).
Below each table: the hybrid losses against the naive ones on the same weights, and for
classification the student path in eval mode against the plain model loaded from the export.
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
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from hybridkt_ext.cli_arguments import non_negative_int, positive_int, torch_device
from hybridkt_ext.core import (AttentionTransferLoss, FitNetLoss, HybridForward,
                               LossBalancer, align_stages, export_student_state_dict,
                               split_backbone, write_text_atomically)
from hybridkt_ext.benchmark.activation_memory import SavedActivationMeter
from hybridkt_ext.benchmark.naive_paths import naive_hybrid_forward, native_stage_sizes
from hybridkt_ext.core.zoo_teachers import build_zoo_model, is_zoo_name, split_zoo_model
from hybridkt_ext.for_classification.models import build_classifier, classifier_head

MODES = ("student", "hybrid", "hybrid+ckpt", "naive", "fitnet", "at")
HYBRID_MODES = ("hybrid", "hybrid+ckpt", "naive")  # the three-path modes, losses L1 L2 L3


@dataclass
class Setting:
    """One model pair, task and input size (``small_*`` for --small)."""

    name: str
    teacher: str
    student: str
    task: str          # "cls", "seg" or "det"
    batch: int
    size: tuple[int, int]
    small_batch: int
    small_size: tuple[int, int]


SETTINGS = {
    "cls_r50_mbv1": Setting("cls_r50_mbv1", "resnet50", "mobilenet_v1", "cls", 32, (224, 224),
                            4, (64, 64)),
    "cls_r50_r50": Setting("cls_r50_r50", "resnet50", "resnet50", "cls", 32, (224, 224),
                           4, (64, 64)),
    # Batch 2 at least: the ASPP pooling branch's BatchNorm sees one value per image.
    "seg_r101_r18": Setting("seg_r101_r18", "resnet101", "resnet18", "seg", 2, (512, 1024),
                            2, (64, 128)),
    # CityPersons scale; a pedestrian detector's usual batch of 2 images per GPU.
    "det_r50_mbv1": Setting("det_r50_mbv1", "resnet50", "mobilenet_v1", "det", 2, (1024, 2048),
                            1, (128, 256)),
    # A transformer student: SegFormer's MiT-B0 (mmseg's own module) under the DeepLab teacher.
    "seg_r101_mitb0": Setting("seg_r101_mitb0", "resnet101", "mmseg.mit_b0", "seg", 2,
                              (512, 1024), 2, (64, 128)),
    # A teacher from timm's zoo, split from its own FeatureInfo.
    "cls_timm-convnext-t_mbv1": Setting("cls_timm-convnext-t_mbv1", "timm.convnext_tiny",
                                        "mobilenet_v1", "cls", 32, (224, 224), 4, (64, 64)),
}
# Settings whose student or teacher needs a package the benchmark does not otherwise need.
NEEDS = {"seg_r101_mitb0": "mmseg", "cls_timm-convnext-t_mbv1": "timm"}


class DetectionHeads(nn.Module):
    """FPN neck, RPN and ROI heads of torchvision's Faster R-CNN on the student's features.

    The neck belongs to the student and runs on every path, as in the detectron2 adapter.
    ``small`` samples fewer proposals and ROIs so that a CPU step stays short; the layers
    (and so the FLOPs per ROI) are torchvision's defaults either way.
    """

    def __init__(self, in_channels: list[int], small: bool) -> None:
        super().__init__()
        from torchvision.models.detection import FasterRCNN
        from torchvision.ops import FeaturePyramidNetwork
        from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

        neck = FeaturePyramidNetwork(in_channels, 256, extra_blocks=LastLevelMaxPool())
        neck.out_channels = 256  # what FasterRCNN reads from its "backbone"
        sampling = dict(rpn_post_nms_top_n_train=300, box_batch_size_per_image=64) if small \
            else {}
        detector = FasterRCNN(neck, num_classes=2, **sampling)  # background, person
        self.neck, self.rpn, self.roi_heads = detector.backbone, detector.rpn, detector.roi_heads

    def forward(self, feats: list[torch.Tensor], images: torch.Tensor,
                targets: list[dict[str, torch.Tensor]]) -> torch.Tensor:
        """Sum of the RPN and ROI-head losses for stage features (N, C_i, H/4..H/32)."""
        from torchvision.models.detection.image_list import ImageList

        pyramid = self.neck(OrderedDict((str(i), f) for i, f in enumerate(feats)))
        image_list = ImageList(images, [tuple(images.shape[-2:])] * images.shape[0])
        proposals, rpn_losses = self.rpn(image_list, pyramid, targets)
        _, roi_losses = self.roi_heads(pyramid, proposals, image_list.image_sizes, targets)
        return sum(rpn_losses.values()) + sum(roi_losses.values())


def pedestrian_targets(batch: int, size: tuple[int, int], device: torch.device,
                       per_image: int = 4) -> list[dict[str, torch.Tensor]]:
    """Random upright boxes with CityPersons' aspect ratio (width = 0.41 height)."""
    h, w = size
    targets = []
    for _ in range(batch):
        heights = torch.empty(per_image).uniform_(0.1 * h, 0.5 * h)
        widths = 0.41 * heights
        x0 = torch.rand(per_image) * (w - widths)
        y0 = torch.rand(per_image) * (h - heights)
        boxes = torch.stack([x0, y0, x0 + widths, y0 + heights], dim=1)
        targets.append({"boxes": boxes.to(device),
                        "labels": torch.ones(per_image, dtype=torch.int64, device=device)})
    return targets


def zoo_teacher(name: str):
    """A timm (or torchvision) teacher by name, split into stages by the core."""
    return split_zoo_model(name, build_zoo_model(name))


def mit_b0():
    """mmseg's MixVisionTransformer at SegFormer-B0 size, split by the mmseg adapter."""
    import hybridkt_ext.for_mmseg  # noqa: F401  (registers, and needs mmseg)
    from mmseg.registry import MODELS

    from hybridkt_ext.for_mmseg import split_mmseg_backbone

    return split_mmseg_backbone(MODELS.build(dict(
        type="MixVisionTransformer", embed_dims=32, num_stages=4, num_layers=[2, 2, 2, 2],
        num_heads=[1, 2, 5, 8], patch_sizes=[7, 3, 3, 3], sr_ratios=[8, 4, 2, 1])))


def build_task(s: Setting, small: bool) -> tuple[HybridForward, nn.Module | None, Callable]:
    """The engine, the head modules outside it, and ``loss(features, images, targets)``.

    ``features`` is one path's list at the engine's ``out_indices``.
    """
    import torchvision

    if s.task == "cls":
        student_model = build_classifier(s.student, 1000)
        head = classifier_head(student_model)  # uses the student model's own layers
        teacher = zoo_teacher(s.teacher) if is_zoo_name(s.teacher) \
            else split_backbone(build_classifier(s.teacher, 1000))
        student = split_backbone(student_model)
        extra, out = None, "last"
    else:
        def resnet(name):
            # Output stride 8 like DeepLab's R-D8 backbones for segmentation; torchvision's
            # BasicBlock ResNets (18/34) cannot dilate, so they stay at stride 32 and the
            # adapters interpolate.
            dilate = s.task == "seg" and name not in ("resnet18", "resnet34")
            return getattr(torchvision.models, name)(
                weights=None, replace_stride_with_dilation=[False, True, True] if dilate
                else None)

        if s.student == "mmseg.mit_b0":
            student = mit_b0()
        else:
            student = split_backbone(build_classifier(s.student, 1000) if s.student ==
                                     "mobilenet_v1" else resnet(s.student))
        teacher = split_backbone(resnet(s.teacher))
        if s.task == "seg":
            from torchvision.models.segmentation.deeplabv3 import DeepLabHead

            extra, out = DeepLabHead(student.stage_specs[-1].channels, 19), "last"
        else:
            extra, out = None, "all"
    student, teacher = align_stages(student, teacher)
    if s.task == "det":  # the FPN takes every aligned stage (strides 4..32)
        extra = DetectionHeads([spec.channels for spec in student.stage_specs], small)
    n = student.num_stages
    engine = HybridForward(student, teacher,
                           out_indices=tuple(range(n)) if out == "all" else (n - 1,))
    if s.task == "cls":
        return engine, extra, lambda feats, x, y: F.cross_entropy(head(feats[-1]), y)
    if s.task == "seg":
        def seg_loss(feats, x, y):
            logits = F.interpolate(extra(feats[-1]), size=y.shape[-2:], mode="bilinear",
                                   align_corners=False)
            return F.cross_entropy(logits, y)
        return engine, extra, seg_loss
    return engine, extra, lambda feats, x, y: extra(feats, x, y)


def configure(engine: HybridForward, mode: str) -> None:
    """Puts the shared engine into ``mode``'s configuration before each of its steps."""
    # The naive reference keeps the teacher's weights trainable-but-unused, as a naive
    # implementation that only leaves them out of the optimiser would.
    for p in engine.teacher.parameters():
        p.requires_grad_(mode == "naive")
        p.grad = None  # naive's teacher gradients must not stay allocated for other modes
    engine.recompute_teacher = mode == "hybrid+ckpt"


@dataclass
class ModeRun:
    """What a mode runs: its forward (returns its path losses), its full training step."""

    forward: Callable[[], list[torch.Tensor]]
    step: Callable[[], None]
    params: list[nn.Parameter]  # everything its optimiser updates


def make_mode(mode: str, engine: HybridForward, loss_of: Callable, extra: nn.Module | None,
              x: torch.Tensor, sizes, amp: str | None) -> ModeRun:
    balancer = LossBalancer("dynamic")
    transfer = None
    if mode == "fitnet":
        transfer = FitNetLoss([s.channels for s in engine.student.stage_specs],
                              [s.channels for s in engine.teacher.stage_specs]).to(x.device)
    elif mode == "at":
        transfer = AttentionTransferLoss()
    params = [p for p in engine.parameters() if p.requires_grad]
    for module in (extra, transfer):
        if module is not None:
            params += [p for p in module.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=1e-4, momentum=0.9)

    def forward() -> list[torch.Tensor]:
        if mode == "student":
            return [loss_of(engine(x))]
        if mode in HYBRID_MODES:
            feats = (naive_hybrid_forward(engine, x, sizes) if mode == "naive"
                     else engine.forward_hybrid(x))
            return [loss_of(f) for f in (feats.student_first, feats.teacher_first,
                                         feats.student)]
        s_feats, t_feats = engine.forward_with_teacher(x)
        return [loss_of([s_feats[i] for i in engine.out_indices])
                + transfer(s_feats, t_feats)]

    def step() -> None:
        with torch.autocast(x.device.type, dtype=torch.bfloat16) if amp == "bf16" \
                else contextlib.nullcontext():
            losses = forward()
            loss = balancer(*losses).total if len(losses) == 3 else losses[0]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return ModeRun(forward, step, params)


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

    modes = {m: make_mode(m, engine, loss_of, extra, x, sizes, args.amp) for m in MODES}
    return {"engine": engine, "x": x, "modes": modes, "batch": batch, "size": (h, w)}


def compare_hybrid_losses(bench: dict) -> dict[str, float]:
    """Largest relative difference of (L1, L2, L3) from the engine's, per three-path mode.

    The weights are the same for all (no optimiser step in between) and the RNG is reset
    before each, so detection heads sample the same proposals and ROIs.
    """
    losses = {}
    for mode in HYBRID_MODES:
        configure(bench["engine"], mode)
        torch.manual_seed(0)
        losses[mode] = torch.stack([loss.detach().float() for loss in
                                    bench["modes"][mode].forward()])
    ref = losses["hybrid"]
    return {m: ((losses[m] - ref).abs() / ref.abs()).max().item() for m in HYBRID_MODES[1:]}


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
        teacher_stages = [engine.teacher.stage(i) for i in range(engine.teacher.num_stages)]
        with torch.autocast(bench["x"].device.type, dtype=torch.bfloat16) if amp == "bf16" \
                else contextlib.nullcontext():
            with SavedActivationMeter([*engine.parameters(), *run.params],
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
          f"channels_last={args.channels_last}")
    print("| mode | median step (ms) | ratio to student | GFLOPs/step | efficiency | "
          "saved for backward (MiB) | peak memory (MiB) |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['mode']} | {1000 * r['median_s']:.1f} | {r['ratio']:.2f} | "
              f"{r['gflops']:.2f} | {r['efficiency']:.2f} | {r['saved_mib']:.1f} | "
              f"{r['peak_mib']:.0f} |")
    by_mode = {r["mode"]: r for r in rows}
    hybrid, naive = by_mode["hybrid"], by_mode["naive"]
    diffs = ", ".join(f"{m} {d:.1e}" for m, d in result["loss_rel_diff_vs_hybrid"].items())
    print(f"\nhybrid vs naive: FLOPs saved {1 - hybrid['gflops'] / naive['gflops']:.1%}, "
          f"time saved {1 - hybrid['median_s'] / naive['median_s']:.1%}; "
          f"max relative loss difference from hybrid: {diffs}")
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
