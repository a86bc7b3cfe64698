"""The hybrid forward engine: three paths through a frozen teacher and a trainable student.

Path 3 (student)        S1 S2 S3 S4          -> L3
Path 1 (student first)  S1 T2 S3 T4          -> L1
Path 2 (teacher first)  T1 S2 T3 S4          -> L2

Every path yields multi-scale features in the *student's* channel counts (teacher stage
outputs pass the teacher->student adapter), so the framework's own head and neck compute each
path's loss unchanged. Shared prefixes run once (S1 serves paths 1 and 3), a teacher-only
prefix (T1 of path 2) runs without autograd, and stages are evaluated stage by stage across
paths so every adapter knows the size the receiving network produces at that stage.

Teacher stages that do run with autograd (T2..Tn of the hybrid paths) can be checkpointed:
their activations are then recomputed during backward instead of being kept.

Fused paired stages: at every index two paths run a student stage (S2 of the student and
teacher-first paths, S3 of the student and student-first paths, ...). When no norm layer of the
student couples the samples of a batch (LayerNorm, GroupNorm, FrozenBN, BN in eval mode), one
call on the concatenated 2N batch gives exactly what two calls give, in fewer and larger
kernels; the engine then fuses them. With a training-mode BatchNorm student it cannot: the
student path's batch statistics (and running-stat updates) must come from the student path
alone, so the two calls stay separate.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from .feature_adapters import FeatureAdapter
from .freezing import freeze_teacher
from .input_transform import InputConvention, TeacherInputTransform
from .norm_stats import RunningStatsGuard, uses_batch_statistics
from .paths import STUDENT, TEACHER, PathPlan, make_path_plan
from .stage_alignment import StageMismatchError, describe_stages
from .stages import StagedBackbone, StageOutput, feature_map

PATH_NAMES = ("student", "student_first", "teacher_first")
TEACHER_PRECISIONS = {"bf16": torch.bfloat16, "fp16": torch.float16}
_SIZE_CACHE_SHAPES = 32  # input shapes whose teacher stage sizes are kept (alternate steps)


def check_teacher_precision(value: object, where: str = "teacher_precision",
                            unset: str = "None") -> None:
    """Refuses a teacher precision the engine does not have (before anything is built).

    Args:
        value: what the config gives.
        where: the config key, as the message starts.
        unset: how the config writes "the step's own precision" (None, or "" in yacs).
    """
    if value is not None and value not in TEACHER_PRECISIONS:
        raise ValueError(f"{where}={value!r} must be one of {sorted(TEACHER_PRECISIONS)} or "
                         f"{unset} (the step's own precision).")


@dataclass(frozen=True)
class HybridFeatures:
    """Per-path features at ``out_indices``, each (N, C_student_i, H_i, W_i); None for a path
    that did not run (``forward_hybrid(x, paths=...)``)."""

    student: list[torch.Tensor] | None
    student_first: list[torch.Tensor] | None
    teacher_first: list[torch.Tensor] | None


class HybridForward(nn.Module):
    """Student + frozen teacher + adapters, with the three forward paths.

    Args:
        student: the trainable backbone, split into stages.
        teacher: the frozen backbone with the same number of stages (see
            ``stage_alignment.align_stages``), or None for plain student training.
        switch_points: stage indices before which hybrid paths switch network (default: all).
        out_indices: student stages whose features the head consumes (default: all).
        student_input: the input convention of the images the framework feeds the student.
        teacher_input: the teacher's own convention (default: the student's).
        hybrid_paths: build the path plan and adapters. False for baselines that use the
            teacher only as a target (FitNet, AT, KD), which would leave adapters unused.
        recompute_teacher: recompute the activations of teacher stages that run with autograd
            during backward instead of keeping them (``torch.utils.checkpoint``): less memory
            for one more forward of those stages. Losses and gradients are unchanged.
        fuse_stages: run the student stages two paths share at an index as one call on the
            concatenated batch whenever the student's norm layers keep no batch statistics
            (decided at every step from the modules' state). Exact; off only to measure it.
        teacher_precision: ``'bf16'`` or ``'fp16'`` runs the frozen teacher's stages under
            autocast in that dtype (their outputs are cast back, so the student and the
            adapters keep their own precision); None runs them as the rest of the step.
    """

    def __init__(self, student: StagedBackbone, teacher: StagedBackbone | None = None,
                 switch_points: Sequence[int] | None = None,
                 out_indices: Sequence[int] | None = None,
                 student_input: InputConvention | None = None,
                 teacher_input: InputConvention | None = None,
                 hybrid_paths: bool = True, recompute_teacher: bool = False,
                 fuse_stages: bool = True, teacher_precision: str | None = None) -> None:
        super().__init__()
        check_teacher_precision(teacher_precision)
        n = student.num_stages
        self.out_indices = tuple(range(n)) if out_indices is None else tuple(out_indices)
        bad = [i for i in self.out_indices if not 0 <= i < n]
        if bad or not self.out_indices:
            raise ValueError(f"out_indices {self.out_indices} must name stages in 0..{n - 1}")
        self.student = student
        self.teacher = teacher
        self.recompute_teacher = recompute_teacher
        self.fuse_stages = fuse_stages
        self.teacher_precision = teacher_precision
        self.plan: PathPlan | None = None
        self._teacher_sizes: dict[tuple[int, ...], list[tuple[int, int]]] = {}
        if teacher is None:
            return
        if teacher.num_stages != n:
            raise StageMismatchError(
                f"the student has {n} stages [{describe_stages(student)}] but the teacher has "
                f"{teacher.num_stages} [{describe_stages(teacher)}]; merge stages first with "
                "hybridkt_ext.core.align_stages(student, teacher)"
            )
        shared = _shared_parts(student.model, teacher.model)
        if shared:
            raise ValueError(
                f"the teacher and the student share {shared}: freezing the teacher would freeze "
                "the student too (0 trainable backbone parameters). Build the teacher as a "
                "network of its own (e.g. copy.deepcopy(model), or load it from its file).")
        # The teacher is frozen because its weights are the knowledge being transferred; it
        # still passes gradients *through* to earlier student stages and adapters.
        freeze_teacher(teacher)
        student_input = student_input or InputConvention()
        self.teacher_input = TeacherInputTransform(student_input, teacher_input or student_input)
        if not hybrid_paths:
            return
        self.plan = make_path_plan(n, switch_points)
        self._stats_guard = RunningStatsGuard(student)
        s_ch = [s.channels for s in student.stage_specs]
        t_ch = [s.channels for s in teacher.stage_specs]
        s_tok = [s.global_tokens for s in student.stage_specs]
        t_tok = [s.global_tokens for s in teacher.stage_specs]
        # Only adapters some path uses are built: unused parameters would break DDP.
        self.to_teacher = nn.ModuleDict()
        self.to_student = nn.ModuleDict()
        for _, plan in self.plan.items():
            for i, net in enumerate(plan):
                nxt = plan[i + 1] if i + 1 < n else None
                if net == STUDENT and nxt == TEACHER and str(i) not in self.to_teacher:
                    self.to_teacher[str(i)] = FeatureAdapter(s_ch[i], t_ch[i], t_tok[i])
                feeds_student = nxt == STUDENT or i in self.out_indices
                if net == TEACHER and feeds_student and str(i) not in self.to_student:
                    self.to_student[str(i)] = FeatureAdapter(t_ch[i], s_ch[i], s_tok[i])

    def train(self, mode: bool = True) -> "HybridForward":
        super().train(mode)
        if self.teacher is not None:
            self.teacher.eval()  # norm layers keep their running statistics, dropout stays off
        return self

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Student path only: what inference, evaluation and export run (zero overhead)."""
        return self.head_features(self.student(x))

    def head_features(self, stage_outputs: list[torch.Tensor]) -> list[torch.Tensor]:
        """The features at ``out_indices`` that the head consumes, from all stage outputs.

        Each is the stage's returned feature (its ``tap``, e.g. Swin's per-stage norm).
        """
        specs = self.student.stage_specs
        return [specs[i].feature(stage_outputs[i]) for i in self.out_indices]

    def forward_with_teacher(self, x: torch.Tensor
                             ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """All student stage outputs, and all teacher stage outputs without autograd.

        For feature-mimicking baselines (FitNet, AT), which use the teacher as a target only.
        """
        teacher = self._require_teacher()
        student_out = self.student(x)
        with torch.no_grad():
            h, teacher_out = self.teacher_input(x), []
            for i in range(teacher.num_stages):
                h = self._teacher_stage(teacher, i, h)
                teacher_out.append(feature_map(h))
        return student_out, teacher_out

    def forward_hybrid(self, x: torch.Tensor, paths: Sequence[str] = PATH_NAMES
                       ) -> HybridFeatures:
        """Runs the paths named in ``paths`` (default: all three); returns their features at
        ``out_indices`` (None for the others).

        Args:
            x: (N, 3, H, W) images in the student's input convention.
            paths: a subset of ``PATH_NAMES``; the student path must be among them (the
                adapters' target sizes come from it).
        """
        teacher = self._require_teacher()
        plan = self.plan
        if plan is None:
            raise RuntimeError("this HybridForward was built with hybrid_paths=False")
        unknown = sorted(set(paths) - set(PATH_NAMES))
        if unknown or "student" not in paths:
            raise ValueError(f"paths={tuple(paths)!r} must name paths of {PATH_NAMES}, the "
                             "student path among them.")
        selected = [(name, path) for name, path in plan.items() if name in paths]
        n = self.student.num_stages
        # Native output size of each network at each stage. With both hybrid paths running,
        # both networks have run every stage by the time a switch needs it (the paths are
        # complementary); with one, the teacher's come from a cached probe.
        sizes: dict[str, list[tuple[int, int]]] = {STUDENT: [], TEACHER: []}
        both_hybrid = {"student_first", "teacher_first"} <= set(paths)
        if not both_hybrid:
            sizes[TEACHER] = self._probe_teacher_sizes(teacher, x)
        outputs: dict[str, StageOutput] = {}  # plan prefix -> that stage's output (own space)
        in_student_space: dict[str, torch.Tensor] = {}  # teacher outputs adapted for the student
        teacher_image = None
        fuse = self.fuse_stages and not uses_batch_statistics(self.student)
        for i in range(n):
            student_jobs: list[tuple[str, StageOutput]] = []
            for _, path in selected:
                prefix = path[: i + 1]
                if prefix in outputs or any(p == prefix for p, _ in student_jobs):
                    continue  # shared prefix, e.g. S1 for paths 1 and 3
                net = path[i]
                if i == 0:
                    if net == TEACHER and teacher_image is None:
                        teacher_image = self.teacher_input(x)
                    stage_in = x if net == STUDENT else teacher_image
                else:
                    stage_in = self._stage_input(path, i, outputs, in_student_space, sizes)
                if net == STUDENT:
                    student_jobs.append((prefix, stage_in))
                else:
                    outputs[prefix] = self._run_stage(net, i, prefix, stage_in, teacher)
            if fuse and len(student_jobs) == 2 and _same_layout(*(j[1] for j in student_jobs)):
                fused = self.student.stage(i)(_cat_outputs([j[1] for j in student_jobs]))
                for (prefix, _), out in zip(student_jobs, _split_outputs(fused, 2)):
                    outputs[prefix] = out
            else:
                for prefix, stage_in in student_jobs:
                    outputs[prefix] = self._run_stage(STUDENT, i, prefix, stage_in, teacher)
            sizes[STUDENT].append(tuple(feature_map(outputs[plan.student[: i + 1]]).shape[-2:]))
            if both_hybrid:
                teacher_path = plan.teacher_first if plan.teacher_first[i] == TEACHER \
                    else plan.student_first
                sizes[TEACHER].append(
                    tuple(feature_map(outputs[teacher_path[: i + 1]]).shape[-2:]))

        specs = self.student.stage_specs

        def features(path: str) -> list[torch.Tensor]:
            feats = []
            for i in self.out_indices:
                prefix = path[: i + 1]
                if path[i] == STUDENT:
                    out = outputs[prefix]
                else:  # a teacher output, carried into the student's space first
                    out = self._adapted_to_student(prefix, i, outputs, in_student_space, sizes)
                feats.append(specs[i].feature(out))
            return feats

        by_name = dict(selected)
        return HybridFeatures(*(features(by_name[name]) if name in by_name else None
                                for name in PATH_NAMES))

    def _probe_teacher_sizes(self, teacher: StagedBackbone, x: torch.Tensor
                             ) -> list[tuple[int, int]]:
        """The teacher's native stage output sizes for images shaped like ``x``.

        Sizes do not depend on the batch, so one image of it runs the teacher without autograd,
        once per input shape (fixed-size crops: once per run; detectron2's varying sizes: once
        per new padded size).
        """
        key = tuple(x.shape[1:])
        if key not in self._teacher_sizes:
            if len(self._teacher_sizes) >= _SIZE_CACHE_SHAPES:
                self._teacher_sizes.pop(next(iter(self._teacher_sizes)))
            with torch.no_grad():
                h, found = self.teacher_input(x[:1]), []
                for i in range(teacher.num_stages):
                    h = self._teacher_stage(teacher, i, h)
                    found.append(tuple(feature_map(h).shape[-2:]))
            self._teacher_sizes[key] = found
        return self._teacher_sizes[key]

    def _require_teacher(self) -> StagedBackbone:
        if self.teacher is None:
            raise RuntimeError(
                "this HybridForward has no teacher: build it with a teacher to run hybrid "
                "paths, or train the student path alone with forward()"
            )
        self._keep_frozen(self.teacher)
        return self.teacher

    @staticmethod
    def _keep_frozen(teacher: StagedBackbone) -> None:
        """Puts a teacher that something unfroze back in place, every step, and says so.

        A user's ``teacher.train()`` would let its BatchNorm statistics drift, and
        ``requires_grad_(True)`` (or an optimiser given all parameters) would train it; both
        would go unnoticed until the weights are compared after training. Checking costs one
        pass over the teacher's parameters and modules per step.
        """
        trainable = [n for n, p in teacher.named_parameters() if p.requires_grad]
        training = [n for n, m in teacher.named_modules() if m.training]
        if trainable or training:
            freeze_teacher(teacher)
            warnings.warn(
                f"the teacher was unfrozen ({len(trainable)} parameters requiring grad, "
                f"{len(training)} modules in training mode, e.g. "
                f"{(trainable + training)[:2]}); it is frozen again before this step. Do not "
                "call .train() or requires_grad_() on it: its weights are the knowledge "
                "being transferred.", stacklevel=3)

    def _stage_input(self, path: str, i: int, outputs: dict[str, torch.Tensor],
                     in_student_space: dict[str, torch.Tensor],
                     sizes: dict[str, list[tuple[int, int]]]) -> torch.Tensor:
        prev_prefix, prev_net, net = path[:i], path[i - 1], path[i]
        if prev_net == net:
            return outputs[prev_prefix]
        if net == STUDENT:
            return self._adapted_to_student(prev_prefix, i - 1, outputs, in_student_space, sizes)
        return self.to_teacher[str(i - 1)](outputs[prev_prefix], sizes[TEACHER][i - 1])

    def _adapted_to_student(self, prefix: str, i: int, outputs: dict[str, torch.Tensor],
                            in_student_space: dict[str, torch.Tensor],
                            sizes: dict[str, list[tuple[int, int]]]) -> torch.Tensor:
        # One adapter output serves both the switch into S_{i+1} and the head feature.
        if prefix not in in_student_space:
            in_student_space[prefix] = self.to_student[str(i)](outputs[prefix],
                                                               sizes[STUDENT][i])
        return in_student_space[prefix]

    def _run_stage(self, net: str, i: int, prefix: str, stage_in: torch.Tensor,
                   teacher: StagedBackbone) -> torch.Tensor:
        if net == TEACHER:
            if set(prefix) == {TEACHER}:
                # Nothing trainable precedes a teacher-only prefix: no graph is needed for it.
                with torch.no_grad():
                    return self._teacher_stage(teacher, i, stage_in)
            if self.recompute_teacher and torch.is_grad_enabled():
                # Recomputation reproduces the forward exactly: the teacher is frozen and in
                # eval mode (no dropout, no running-stat updates), so no RNG state is needed.
                return checkpoint(self._teacher_stage, teacher, i, stage_in,
                                  use_reentrant=False, preserve_rng_state=False)
            return self._teacher_stage(teacher, i, stage_in)
        if set(prefix) == {STUDENT}:  # the student path: updates running statistics
            return self.student.stage(i)(stage_in)
        with self._stats_guard.frozen():
            return self.student.stage(i)(stage_in)


    def _teacher_stage(self, teacher: StagedBackbone, i: int, stage_in: StageOutput
                       ) -> StageOutput:
        """Teacher stage ``i``, in ``teacher_precision`` when one is set."""
        if self.teacher_precision is None:
            return teacher.stage(i)(stage_in)
        dtype = feature_map(stage_in).dtype
        with torch.autocast(feature_map(stage_in).device.type,
                            dtype=TEACHER_PRECISIONS[self.teacher_precision]):
            out = teacher.stage(i)(stage_in)
        # Back to the precision the step runs in: the adapters' and the student's weights are
        # not in the teacher's dtype.
        return out.to(dtype) if isinstance(out, torch.Tensor) else tuple(t.to(dtype) for t in out)


def _same_layout(a: StageOutput, b: StageOutput) -> bool:
    """Whether two stage inputs concatenate along the batch (same kind, shapes past dim 0)."""
    ta = (a,) if isinstance(a, torch.Tensor) else tuple(a)
    tb = (b,) if isinstance(b, torch.Tensor) else tuple(b)
    return isinstance(a, torch.Tensor) == isinstance(b, torch.Tensor) and len(ta) == len(tb) \
        and all(u.shape[1:] == v.shape[1:] and u.dtype == v.dtype for u, v in zip(ta, tb))


def _cat_outputs(parts: list[StageOutput]) -> StageOutput:
    if isinstance(parts[0], torch.Tensor):
        return torch.cat(parts)
    return tuple(torch.cat(group) for group in zip(*parts))


def _split_outputs(fused: StageOutput, k: int) -> list[StageOutput]:
    if isinstance(fused, torch.Tensor):
        return list(fused.chunk(k))
    return [tuple(chunks) for chunks in zip(*(t.chunk(k) for t in fused))]


def _shared_parts(student: nn.Module, teacher: nn.Module) -> str:
    """A description of what two networks share (modules or parameters), or ''."""
    if student is teacher:
        return "the same module"
    student_params = {id(p) for p in student.parameters()}
    common = [n for n, p in teacher.named_parameters() if id(p) in student_params]
    return f"{len(common)} parameters (e.g. {common[0]!r})" if common else ""
