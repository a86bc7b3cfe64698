"""The hybrid forward engine: three paths through a frozen teacher and a trainable student.

Path 3 (student)        S1 S2 S3 S4          -> L3
Path 1 (student first)  S1 T2 S3 T4          -> L1
Path 2 (teacher first)  T1 S2 T3 S4          -> L2

Every path yields multi-scale features in the *student's* channel counts (teacher stage
outputs pass the teacher->student adapter), so the framework's own head and neck compute each
path's loss unchanged. Shared prefixes run once (S1 serves paths 1 and 3), a teacher-only
prefix (T1 of path 2) runs without autograd, and stages are evaluated stage by stage across
paths so every adapter knows the size the receiving network produces at that stage.

Several teachers: with ``teacher=[T, U, ...]`` every teacher k has its own adapters and its own
pair of hybrid paths (student-first ``S1 T2 S3 T4``/``S1 U2 S3 U4``, teacher-first ``T1 S2 T3
S4``/``U1 S2 U3 S4``); the student path and every prefix the paths share run once for all of
them, and the student stages of all paths at an index fuse into one call where they can.

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
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from .feature_adapters import FeatureAdapter
from .freezing import freeze_teacher
from .input_transform import InputConvention, TeacherInputTransform
from .norm_stats import RunningStatsGuard, uses_batch_statistics
from .paths import (HYBRID_PATHS, STUDENT, TEACHER, PathPlan, hybrid_path_name, make_path_plan,
                    split_path_name)
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
    that did not run (``forward_hybrid(x, paths=...)``).

    ``student_first``/``teacher_first`` are the first teacher's hybrid paths; the paths of
    teachers 2..K (``'student_first:1'``, ...) are in ``more``.
    """

    student: list[torch.Tensor] | None
    student_first: list[torch.Tensor] | None
    teacher_first: list[torch.Tensor] | None
    more: Mapping[str, list[torch.Tensor]] = field(default_factory=dict)

    def path(self, name: str) -> list[torch.Tensor] | None:
        """The features of the path called ``name`` (``PATH_NAMES`` or ``'<path>:<k>'``)."""
        if name in PATH_NAMES:
            return getattr(self, name)
        return self.more.get(name)

    def map(self, fn: Callable[[list[torch.Tensor]], object]) -> "HybridFeatures":
        """The same paths with ``fn`` applied to each that ran (a neck over every path)."""
        return HybridFeatures(*(None if f is None else fn(f)
                                for f in (self.student, self.student_first, self.teacher_first)),
                              more={k: fn(v) for k, v in self.more.items()})


class TeacherSet(nn.ModuleList):
    """Several frozen teachers, in the order the config lists them (state dict ``<k>.model.*``:
    the fingerprint of the set changes when the list is reordered)."""

    @property
    def num_stages(self) -> int:
        return self[0].num_stages


class HybridForward(nn.Module):
    """Student + frozen teacher(s) + adapters, with the three forward paths per teacher.

    Args:
        student: the trainable backbone, split into stages.
        teacher: the frozen backbone with the same number of stages (see
            ``stage_alignment.align_stages``), a list of them (several teachers, each with its
            own adapters and hybrid paths), or None for plain student training.
        switch_points: stage indices before which hybrid paths switch network (default: all).
        out_indices: student stages whose features the head consumes (default: all).
        student_input: the input convention of the images the framework feeds the student.
        teacher_input: the teacher's own convention (default: the student's); with several
            teachers, a list with one per teacher (None entries: the student's).
        teacher_names: with several teachers, the name of each in logs (default: its index).
        hybrid_paths: build the path plan and adapters. False for baselines that use the
            teacher only as a target (FitNet, AT, KD), which would leave adapters unused.
        recompute_teacher: recompute the activations of teacher stages that run with autograd
            during backward instead of keeping them (``torch.utils.checkpoint``): less memory
            for one more forward of those stages. Losses and gradients are unchanged.
        fuse_stages: run the student stages paths share at an index as one call on the
            concatenated batch whenever the student's norm layers keep no batch statistics
            (decided at every step from the modules' state). Exact; off only to measure it.
        teacher_precision: ``'bf16'`` or ``'fp16'`` runs the frozen teachers' stages under
            autocast in that dtype (their outputs are cast back, so the student and the
            adapters keep their own precision); None runs them as the rest of the step.

    State dict: with one teacher ``teacher.*``, ``to_teacher.<i>.*``, ``to_student.<i>.*``; with
    several ``teacher.<k>.*``, ``to_teacher.<k>.<i>.*``, ``to_student.<k>.<i>.*``.
    """

    def __init__(self, student: StagedBackbone,
                 teacher: StagedBackbone | Sequence[StagedBackbone] | None = None,
                 switch_points: Sequence[int] | None = None,
                 out_indices: Sequence[int] | None = None,
                 student_input: InputConvention | None = None,
                 teacher_input: InputConvention | Sequence[InputConvention | None] | None = None,
                 teacher_names: Sequence[str] | None = None,
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
        self.recompute_teacher = recompute_teacher
        self.fuse_stages = fuse_stages
        self.teacher_precision = teacher_precision
        self.plan: PathPlan | None = None
        self._teacher_sizes: dict[tuple, list[tuple[int, int]]] = {}
        teachers = _teacher_list(teacher)
        self.num_teachers = len(teachers)
        self.teacher_names = _teacher_names(teacher_names, self.num_teachers)
        conventions = _teacher_conventions(teacher_input, self.num_teachers)
        # One teacher keeps the layout every earlier checkpoint has (teacher.*, to_teacher.<i>).
        self.teacher: StagedBackbone | TeacherSet | None = (
            None if not teachers else teachers[0] if len(teachers) == 1 else TeacherSet(teachers))
        if not teachers:
            return
        for k, t in enumerate(teachers):
            which = "the teacher" if len(teachers) == 1 else f"teacher {k} ({self.teacher_names[k]})"
            if t.num_stages != n:
                raise StageMismatchError(
                    f"the student has {n} stages [{describe_stages(student)}] but {which} has "
                    f"{t.num_stages} [{describe_stages(t)}]; merge stages first with "
                    "hybridkt_ext.core.align_stages(student, teacher)")
            shared = _shared_parts(student.model, t.model)
            if shared:
                raise ValueError(
                    f"{which} and the student share {shared}: freezing the teacher would freeze "
                    "the student too (0 trainable backbone parameters). Build the teacher as a "
                    "network of its own (e.g. copy.deepcopy(model), or load it from its file).")
            twice = [j for j in range(k) if teachers[j] is t]
            if twice:
                raise ValueError(f"teacher {k} is the same module as teacher {twice[0]}: list "
                                 "each teacher once.")
            # The teacher is frozen because its weights are the knowledge being transferred; it
            # still passes gradients *through* to earlier student stages and adapters.
            freeze_teacher(t)
        freeze_teacher(self.teacher)  # a TeacherSet's own root module too
        self._teacher_conventions = conventions
        self.teacher_input = self._input_transforms(student_input or InputConvention())
        if not hybrid_paths:
            return
        self.plan = make_path_plan(n, switch_points)
        self._stats_guard = RunningStatsGuard(student)
        adapters = [self._build_adapters(t) for t in teachers]
        # Only adapters some path uses are built: unused parameters would break DDP.
        self.to_teacher = adapters[0][0] if len(teachers) == 1 else \
            nn.ModuleList(a for a, _ in adapters)
        self.to_student = adapters[0][1] if len(teachers) == 1 else \
            nn.ModuleList(a for _, a in adapters)

    def _build_adapters(self, teacher: StagedBackbone) -> tuple[nn.ModuleDict, nn.ModuleDict]:
        """The adapters of one teacher's switches, keyed by the stage they leave: student ->
        teacher, and teacher -> student (also where a head consumes a teacher output)."""
        s_specs, t_specs = self.student.stage_specs, teacher.stage_specs
        n = self.student.num_stages
        to_teacher, to_student = nn.ModuleDict(), nn.ModuleDict()
        for _, plan in self.plan.items():
            for i, net in enumerate(plan):
                nxt = plan[i + 1] if i + 1 < n else None
                if net == STUDENT and nxt == TEACHER and str(i) not in to_teacher:
                    to_teacher[str(i)] = FeatureAdapter(s_specs[i].channels, t_specs[i].channels,
                                                        t_specs[i].global_tokens)
                feeds_student = nxt == STUDENT or i in self.out_indices
                if net == TEACHER and feeds_student and str(i) not in to_student:
                    to_student[str(i)] = FeatureAdapter(t_specs[i].channels, s_specs[i].channels,
                                                        s_specs[i].global_tokens)
        return to_teacher, to_student

    def _input_transforms(self, student_input: InputConvention) -> nn.Module:
        transforms = [TeacherInputTransform(student_input, c or student_input)
                      for c in self._teacher_conventions]
        return transforms[0] if len(transforms) == 1 else nn.ModuleList(transforms)

    def adopt_student_input(self, student_input: InputConvention,
                            teacher_input: InputConvention | Sequence | None = None) -> None:
        """Rebuilds the teacher input transforms for what the framework feeds the student.

        Args:
            student_input: the framework's pixel convention.
            teacher_input: the teachers' own conventions, as given to the constructor; None
                keeps those.
        """
        if self.teacher is None:
            return
        if teacher_input is not None:
            self._teacher_conventions = _teacher_conventions(teacher_input, self.num_teachers)
        device = self._of_teacher(self.teacher_input, 0).scale.device
        self.teacher_input = self._input_transforms(student_input).to(device)

    @property
    def teachers(self) -> list[StagedBackbone]:
        """The frozen teachers in order ([] without one)."""
        if self.teacher is None:
            return []
        return list(self.teacher) if isinstance(self.teacher, TeacherSet) else [self.teacher]

    def path_names(self) -> tuple[str, ...]:
        """Every path of the engine: the student's, then each teacher's two hybrid paths."""
        return ("student",) + tuple(hybrid_path_name(kind, k) for k in range(self.num_teachers)
                                    for kind in HYBRID_PATHS)

    def _of_teacher(self, modules: nn.Module, k: int) -> nn.Module:
        """Teacher k's entry of a per-teacher module (the module itself with one teacher)."""
        return modules if self.num_teachers == 1 else modules[k]

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
        self._require_teacher()
        if self.num_teachers > 1:
            raise ValueError(f"the feature-mimicking baselines take one teacher; this engine "
                             f"has {self.num_teachers}. Use transfer='hybrid' for several.")
        teacher = self.teacher
        student_out = self.student(x)
        with torch.no_grad():
            h, teacher_out = self.teacher_input(x), []
            for i in range(teacher.num_stages):
                h = self._teacher_stage(teacher, i, h)
                teacher_out.append(feature_map(h))
        return student_out, teacher_out

    def forward_hybrid(self, x: torch.Tensor, paths: Sequence[str] | None = None
                       ) -> HybridFeatures:
        """Runs the paths named in ``paths`` (default: all, ``path_names()``); returns their
        features at ``out_indices`` (None for the others).

        Args:
            x: (N, 3, H, W) images in the student's input convention.
            paths: a subset of ``path_names()`` (``PATH_NAMES`` with one teacher); the student
                path must be among them (the adapters' target sizes come from it).
        """
        self._require_teacher()
        plan = self.plan
        if plan is None:
            raise RuntimeError("this HybridForward was built with hybrid_paths=False")
        known = self.path_names()
        paths = known if paths is None else tuple(paths)
        unknown = sorted(set(paths) - set(known))
        if unknown or "student" not in paths:
            raise ValueError(f"paths={paths!r} must name paths of {known}, the student path "
                             "among them.")
        selected = [(name, self._route(name)) for name in known if name in paths]
        n = self.student.num_stages
        # Native output size of each network at each stage. With both of a teacher's hybrid
        # paths running, both networks have run every stage by the time a switch needs it (the
        # paths are complementary); with one, that teacher's come from a cached probe.
        sizes: dict[object, list[tuple[int, int]]] = {STUDENT: []}
        complete = set()
        for k in range(self.num_teachers):
            if all(hybrid_path_name(kind, k) in paths for kind in HYBRID_PATHS):
                sizes[k] = []
                complete.add(k)
            elif any(hybrid_path_name(kind, k) in paths for kind in HYBRID_PATHS):
                sizes[k] = self._probe_teacher_sizes(k, x)
        outputs: dict[tuple, StageOutput] = {}  # route prefix -> that stage's output (own space)
        in_student_space: dict[tuple, torch.Tensor] = {}  # teacher outputs adapted for the student
        teacher_images: dict[int, torch.Tensor] = {}
        student_route = self._route("student")
        fuse = self.fuse_stages and not uses_batch_statistics(self.student)
        for i in range(n):
            student_jobs: list[tuple[tuple, StageOutput]] = []
            for _, route in selected:
                prefix = route[: i + 1]
                if prefix in outputs or any(p == prefix for p, _ in student_jobs):
                    continue  # shared prefix, e.g. S1 for the student and student-first paths
                net = route[i]
                if i == 0 and net == STUDENT:
                    stage_in = x
                elif i == 0:
                    if net not in teacher_images:
                        teacher_images[net] = self._of_teacher(self.teacher_input, net)(x)
                    stage_in = teacher_images[net]
                else:
                    stage_in = self._stage_input(route, i, outputs, in_student_space, sizes)
                if net == STUDENT:
                    student_jobs.append((prefix, stage_in))
                else:
                    outputs[prefix] = self._run_stage(net, i, prefix, stage_in)
            if fuse and len(student_jobs) >= 2 \
                    and all(_same_layout(student_jobs[0][1], j[1]) for j in student_jobs[1:]):
                fused = self.student.stage(i)(_cat_outputs([j[1] for j in student_jobs]))
                for (prefix, _), out in zip(student_jobs,
                                            _split_outputs(fused, len(student_jobs))):
                    outputs[prefix] = out
            else:
                for prefix, stage_in in student_jobs:
                    outputs[prefix] = self._run_stage(STUDENT, i, prefix, stage_in)
            sizes[STUDENT].append(tuple(feature_map(outputs[student_route[: i + 1]]).shape[-2:]))
            for k in complete:
                route = next(r for _, r in selected if r[i] == k)
                sizes[k].append(tuple(feature_map(outputs[route[: i + 1]]).shape[-2:]))

        specs = self.student.stage_specs

        def features(route: tuple) -> list[torch.Tensor]:
            feats = []
            for i in self.out_indices:
                prefix = route[: i + 1]
                if route[i] == STUDENT:
                    out = outputs[prefix]
                else:  # a teacher output, carried into the student's space first
                    out = self._adapted_to_student(prefix, i, outputs, in_student_space, sizes)
                feats.append(specs[i].feature(out))
            return feats

        by_name = {name: features(route) for name, route in selected}
        return HybridFeatures(*(by_name.get(name) for name in PATH_NAMES),
                              more={k: v for k, v in by_name.items() if k not in PATH_NAMES})

    def _route(self, name: str) -> tuple:
        """The network of each stage on path ``name``: ``STUDENT`` or a teacher's index."""
        kind, k = split_path_name(name)
        letters = getattr(self.plan, kind)
        return tuple(STUDENT if c == STUDENT else k for c in letters)

    def _probe_teacher_sizes(self, k: int, x: torch.Tensor) -> list[tuple[int, int]]:
        """Teacher ``k``'s native stage output sizes for images shaped like ``x``.

        Sizes do not depend on the batch, so one image of it runs the teacher without autograd,
        once per input shape (fixed-size crops: once per run; detectron2's varying sizes: once
        per new padded size).
        """
        key = (k, *x.shape[1:])
        if key not in self._teacher_sizes:
            if len(self._teacher_sizes) >= _SIZE_CACHE_SHAPES:
                self._teacher_sizes.pop(next(iter(self._teacher_sizes)))
            teacher = self.teachers[k]
            with torch.no_grad():
                h, found = self._of_teacher(self.teacher_input, k)(x[:1]), []
                for i in range(teacher.num_stages):
                    h = self._teacher_stage(teacher, i, h)
                    found.append(tuple(feature_map(h).shape[-2:]))
            self._teacher_sizes[key] = found
        return self._teacher_sizes[key]

    def _require_teacher(self) -> StagedBackbone | TeacherSet:
        if self.teacher is None:
            raise RuntimeError(
                "this HybridForward has no teacher: build it with a teacher to run hybrid "
                "paths, or train the student path alone with forward()"
            )
        for teacher in self.teachers:
            self._keep_frozen(teacher)
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

    def _stage_input(self, route: tuple, i: int, outputs: dict[tuple, StageOutput],
                     in_student_space: dict[tuple, torch.Tensor],
                     sizes: dict[object, list[tuple[int, int]]]) -> StageOutput:
        prev_prefix, prev_net, net = route[:i], route[i - 1], route[i]
        if prev_net == net:
            return outputs[prev_prefix]
        if net == STUDENT:
            return self._adapted_to_student(prev_prefix, i - 1, outputs, in_student_space, sizes)
        return self._of_teacher(self.to_teacher, net)[str(i - 1)](outputs[prev_prefix],
                                                                  sizes[net][i - 1])

    def _adapted_to_student(self, prefix: tuple, i: int, outputs: dict[tuple, StageOutput],
                            in_student_space: dict[tuple, torch.Tensor],
                            sizes: dict[object, list[tuple[int, int]]]) -> torch.Tensor:
        # One adapter output serves both the switch into S_{i+1} and the head feature.
        if prefix not in in_student_space:
            adapters = self._of_teacher(self.to_student, prefix[i])
            in_student_space[prefix] = adapters[str(i)](outputs[prefix], sizes[STUDENT][i])
        return in_student_space[prefix]

    def _run_stage(self, net: object, i: int, prefix: tuple, stage_in: StageOutput
                   ) -> StageOutput:
        if net != STUDENT:
            teacher = self.teachers[net]
            if set(prefix) == {net}:
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


def _teacher_list(teacher: object) -> list[StagedBackbone]:
    if teacher is None:
        return []
    if isinstance(teacher, StagedBackbone):
        return [teacher]
    if isinstance(teacher, (list, tuple, nn.ModuleList)):
        teachers = list(teacher)
        wrong = [type(t).__name__ for t in teachers if not isinstance(t, StagedBackbone)]
        if not teachers or wrong:
            raise ValueError(f"teacher=[...] needs one StagedBackbone per teacher, got "
                             f"{wrong or 'an empty list'}; leave it None to train the student "
                             "alone.")
        return teachers
    raise ValueError(f"teacher must be a StagedBackbone or a list of them, got "
                     f"{type(teacher).__name__}.")


def _teacher_names(names: Sequence[str] | None, count: int) -> tuple[str, ...]:
    """Each teacher's name in logs: given, or its index. Names are log-key parts: no '/'."""
    if names is None:
        return tuple(str(k) for k in range(count))
    names = tuple(names)
    if len(names) != count or any(not isinstance(n, str) or not n or "/" in n or "." in n
                                  for n in names) or len(set(names)) != count:
        raise ValueError(f"teacher_names={names!r} must give {count} different non-empty "
                         "names without '/' or '.' (one per teacher; they name the logged "
                         "hkt_alpha/<name>).")
    return names


def _teacher_conventions(given: object, count: int) -> list[InputConvention | None]:
    if count == 0:
        return []
    if isinstance(given, (list, tuple)):
        if len(given) != count:
            raise ValueError(f"teacher_input has {len(given)} conventions for {count} teachers.")
        return list(given)
    if count > 1 and given is not None:
        raise ValueError("with several teachers, teacher_input is a list with one convention "
                         "(or None) per teacher.")
    return [given] * count


def _shared_parts(student: nn.Module, teacher: nn.Module) -> str:
    """A description of what two networks share (modules or parameters), or ''."""
    if student is teacher:
        return "the same module"
    student_params = {id(p) for p in student.parameters()}
    common = [n for n, p in teacher.named_parameters() if id(p) in student_params]
    return f"{len(common)} parameters (e.g. {common[0]!r})" if common else ""
