"""Dynamic balancing of the three path losses (the paper's eq. 1 and 2).

alpha = 2 * L3 / (L1 + L2), total = alpha * (L1 + L2) + L3, with alpha a constant per step:
it is computed from detached values, so the gradient is alpha * (g1 + g2) + g3 (eq. 2). This
is the one implementation every framework adapter calls where it turns losses into a scalar.

Several teachers (``LossBalancer.teachers``): one alpha per teacher, alpha_k = 2 L3 / (L1_k +
L2_k), and total = sum_k alpha_k (L1_k + L2_k) / K + L3. Each alpha_k (L1_k + L2_k) equals
2 L3, so the transfer term is 2 L3 whatever K: K teachers do not outweigh the student path K
times, and K = 1 is eq. 2 exactly.
"""
from __future__ import annotations

import difflib
import math
from dataclasses import dataclass
from typing import Sequence

import torch
import torch.distributed as dist

from .errors import HybridKTError

BALANCE_MODES = ("dynamic", "fixed", "student_only")
TEACHER_SCHEDULES = ("all", "sample")  # several teachers: all per step, or one per step in turn

_PATH_NAMES = ("L1 (student-first path)", "L2 (teacher-first path)", "L3 (student path)")


class NonFiniteLossError(HybridKTError, FloatingPointError):
    """A path loss is NaN or infinite; the step must not reach the optimiser."""


@dataclass(frozen=True)
class BalancedLoss:
    """The combined loss and what to log.

    Attributes:
        total: the scalar to back-propagate (carries gradient); float32, or float64 when a
            path loss is float64.
        alpha: the balancing weight used (detached float32 scalar tensor).
        l1, l2, l3: detached float32 path losses (student-first, teacher-first, student);
            l1/l2 are None in student-only mode, one of them on an alternating step.
    """

    total: torch.Tensor
    alpha: torch.Tensor
    l1: torch.Tensor | None
    l2: torch.Tensor | None
    l3: torch.Tensor

    def log_values(self) -> dict[str, torch.Tensor]:
        """Detached scalars keyed for logs; keys never contain "loss" (mmengine sums those)."""
        values = {"hkt_alpha": self.alpha, "hkt_L3": self.l3}
        if self.l1 is not None:
            values["hkt_L1"] = self.l1
        if self.l2 is not None:
            values["hkt_L2"] = self.l2
        if (self.l1 is None) != (self.l2 is None):  # an alternating step: which path ran
            values["hkt_path"] = torch.tensor(1.0 if self.l1 is not None else 2.0,
                                             device=self.l3.device)
        return values


class LossBalancer:
    """Combines L1, L2, L3 into the training loss.

    Precision: alpha is computed in float32 from the detached losses whatever their dtype
    (under fp16/bf16 autocast the losses may be half precision, and L1 + L2 of fp16 values
    can overflow or lose the digits that make alpha a ratio). The total is formed in float32
    too (float64 if a loss is float64), so autocast never rounds alpha to 8 bits.

    Non-finite losses: if any path loss is NaN or infinite the balancer raises
    ``NonFiniteLossError`` naming the path(s), their values and the step, *before* returning
    a loss. The framework therefore never calls backward or ``optimizer.step``: the
    parameters and optimiser state (momentum, Adam moments) stay exactly as after the last
    good step, alpha is never computed from a non-finite value, and training stops before
    interval-based checkpointing could save the failed state. (The failed batch's forward
    has run, so the student's BatchNorm running statistics did see it, as in any framework;
    resume from the last checkpoint, not from the model left in memory.)
    Skipping the step instead is not possible from here: a zero loss still lets the
    optimiser apply momentum and weight decay, and a NaN in these setups (diverged weights,
    a broken teacher input normalisation, corrupt labels) does not heal by itself. Half
    precision gradient overflow is a different matter, handled by the framework's gradient
    scaler (it sees inf *gradients*, not an inf loss). In distributed training with
    ``sync_across_ranks`` the check also sees the mean over ranks, so every rank raises at
    the same step instead of the healthy ones waiting forever in the next collective.

    Args:
        mode: "dynamic" (the paper's alpha = 2*L3/(L1+L2)), "fixed" (alpha = fixed_alpha, the
            Fig. 9 sweep) or "student_only" (no teacher: total = L3).
        fixed_alpha: the weight in "fixed" mode (default 1.0); a finite number >= 0 (not a
            string). Refused in the other modes, which would ignore it.
        sync_across_ranks: in distributed training, compute alpha from the losses averaged
            over ranks so every rank uses the same alpha whatever the number of GPUs.
        teachers: with several teachers, ``"all"`` runs every teacher's paths at every step;
            ``"sample"`` runs one teacher's per step, in turn (the step costs what a one-teacher
            step costs; the total is then that teacher's alpha_k (L1_k + L2_k) + L3, whose mean
            over K steps is the "all" total).

    Raises:
        ValueError: ``mode`` is unknown, ``fixed_alpha`` is not a finite number >= 0,
            ``fixed_alpha`` is given outside "fixed" mode, or ``teachers`` is unknown.
    """

    def __init__(self, mode: str = "dynamic", fixed_alpha: float | None = None,
                 sync_across_ranks: bool = True, teachers: str = "all") -> None:
        if mode not in BALANCE_MODES:
            close = difflib.get_close_matches(str(mode), BALANCE_MODES, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else "."
            raise ValueError(f"LossBalancer: mode={mode!r} is not one of {BALANCE_MODES}{hint}")
        if fixed_alpha is not None and mode != "fixed":
            # "dynamic" computes alpha from the losses: a weight given next to it would be
            # ignored, and the run would not be the experiment its config names.
            raise ValueError(f"LossBalancer: fixed_alpha={fixed_alpha!r} applies only with "
                             f"mode='fixed', but mode={mode!r} ignores it; write "
                             f"dict(mode='fixed', fixed_alpha={fixed_alpha!r}) or drop "
                             "fixed_alpha.")
        if teachers not in TEACHER_SCHEDULES:
            raise ValueError(f"LossBalancer: teachers={teachers!r} must be one of "
                             f"{TEACHER_SCHEDULES} ('all' teachers per step, or one 'sample'd "
                             "in turn).")
        self.mode = mode
        self.teachers_per_step = teachers
        self.fixed_alpha = _validated_alpha(1.0 if fixed_alpha is None else fixed_alpha)
        self.sync_across_ranks = sync_across_ranks
        self.num_calls = 0  # names the step in errors when the framework passes none

    @property
    def uses_teacher(self) -> bool:
        return self.mode != "student_only"

    def __call__(self, l1: torch.Tensor | None, l2: torch.Tensor | None, l3: torch.Tensor,
                 step: int | None = None) -> BalancedLoss:
        """Returns the balanced loss.

        Args:
            l1, l2: student-first and teacher-first path losses (None in student-only mode).
            l3: the student path's loss.
            step: the framework's training iteration, named in errors (optional).

        Raises:
            NonFiniteLossError: a path loss (on this or another rank) is NaN or infinite.
        """
        self.num_calls += 1
        if self.uses_teacher and (l1 is None or l2 is None):
            raise ValueError(f"balance mode {self.mode!r} needs all three path losses")
        paths = (l1, l2, l3) if self.uses_teacher else (l3,)
        names = _PATH_NAMES if self.uses_teacher else _PATH_NAMES[2:]
        # float32 even under autocast: alpha is a ratio of small numbers.
        local = torch.stack([p.detach().float().reshape(()) for p in paths])
        averaged = self._averaged(local)
        self._check_finite(names, local, averaged, step)
        dtype = _total_dtype(paths)
        if not self.uses_teacher:
            alpha = torch.zeros((), dtype=torch.float32, device=l3.device)
            return BalancedLoss(l3.to(dtype), alpha, None, None, local[0])
        if self.mode == "fixed":
            alpha = torch.tensor(self.fixed_alpha, dtype=torch.float32, device=l3.device)
        else:
            alpha = _dynamic_alpha(averaged)
        total = alpha.to(dtype) * (l1.to(dtype) + l2.to(dtype)) + l3.to(dtype)
        return BalancedLoss(total, alpha, local[0], local[1], local[2])

    def one_path(self, lk: torch.Tensor, l3: torch.Tensor, path: str,
                 step: int | None = None) -> BalancedLoss:
        """The balanced loss of an alternating step, where one hybrid path ran.

        alpha = L3 / Lk (dynamic) or ``fixed_alpha``, total = alpha * Lk + L3: alpha * Lk has
        the magnitude of L3, as alpha * (L1 + L2) = 2 * L3 in the full step (eq. 2).

        Args:
            lk: the loss of the hybrid path that ran.
            l3: the student path's loss.
            path: ``"student_first"`` (lk is L1) or ``"teacher_first"`` (lk is L2).
            step: the framework's training iteration, named in errors.

        Raises:
            NonFiniteLossError: a path loss (on this or another rank) is NaN or infinite.
        """
        if not self.uses_teacher:
            raise ValueError("a student_only LossBalancer balances no hybrid path")
        if path not in ("student_first", "teacher_first"):
            raise ValueError(f"path={path!r} must be 'student_first' or 'teacher_first'")
        self.num_calls += 1
        first = path == "student_first"
        names = (_PATH_NAMES[0] if first else _PATH_NAMES[1], _PATH_NAMES[2])
        local = torch.stack([p.detach().float().reshape(()) for p in (lk, l3)])
        averaged = self._averaged(local)
        self._check_finite(names, local, averaged, step)
        if self.mode == "fixed":
            alpha = torch.tensor(self.fixed_alpha, dtype=torch.float32, device=l3.device)
        else:  # L3 / Lk is 2 * L3 / (Lk + Lk): the full step's rule with Lk for both paths
            alpha = _dynamic_alpha(torch.stack([averaged[0], averaged[0], averaged[1]]))
        dtype = _total_dtype((lk, l3))
        total = alpha.to(dtype) * lk.to(dtype) + l3.to(dtype)
        return BalancedLoss(total, alpha, local[0] if first else None,
                            None if first else local[0], local[1])

    def teachers(self, pairs: Sequence[tuple[torch.Tensor | None, torch.Tensor | None]],
                 l3: torch.Tensor, names: Sequence[str], step: int | None = None
                 ) -> tuple[torch.Tensor, list[BalancedLoss]]:
        """The balanced loss of a step through several teachers.

        Per teacher k that ran: alpha_k = 2 L3 / (L1_k + L2_k) (L3 / L_k where one of its
        hybrid paths ran, as ``one_path``) or ``fixed_alpha``; total = sum_k alpha_k (L1_k +
        L2_k) / K + L3, with K the teachers that ran this step. One all-reduce and one host
        sync for all of them.

        Args:
            pairs: (L1_k, L2_k) of each teacher that ran (None for a path that did not).
            l3: the student path's loss.
            names: the teachers' names, for errors.
            step: the framework's training iteration, named in errors.

        Returns:
            The total, and one ``BalancedLoss`` per teacher (its alpha, L1, L2 and the shared
            L3; each one's ``total`` is the total).

        Raises:
            NonFiniteLossError: a path loss (on this or another rank) is NaN or infinite.
        """
        if not self.uses_teacher:
            raise ValueError("a student_only LossBalancer balances no hybrid path")
        self.num_calls += 1
        present = [(k, j, loss) for k, pair in enumerate(pairs) for j, loss in enumerate(pair)
                   if loss is not None]
        if not pairs or any(l1 is None and l2 is None for l1, l2 in pairs):
            raise ValueError("every teacher passed to LossBalancer.teachers needs a path loss")
        path_names = tuple(f"{_PATH_NAMES[j][:-1]}, teacher {names[k]})"
                           for k, j, _ in present) + (_PATH_NAMES[2],)
        losses = [loss for _, _, loss in present] + [l3]
        local = torch.stack([p.detach().float().reshape(()) for p in losses])
        averaged = self._averaged(local)
        self._check_finite(path_names, local, averaged, step)
        dtype = _total_dtype(tuple(losses))
        l3_avg, l3_local = averaged[-1], local[-1]
        transfer = torch.zeros((), dtype=dtype, device=l3.device)
        results = []
        for k in range(len(pairs)):
            rows = [r for r, (kk, _, _) in enumerate(present) if kk == k]
            hybrid_avg = averaged[rows].sum() * (2.0 / len(rows))  # L1 + L2, or 2 L_k
            if self.mode == "fixed":
                alpha = torch.tensor(self.fixed_alpha, dtype=torch.float32, device=l3.device)
            else:
                alpha = _dynamic_alpha(torch.stack([hybrid_avg, torch.zeros_like(hybrid_avg),
                                                    l3_avg]))
            own = sum(present[r][2].to(dtype) for r in rows)
            transfer = transfer + alpha.to(dtype) * own
            by_path = {present[r][1]: local[r] for r in rows}
            results.append((alpha, by_path.get(0), by_path.get(1)))
        total = transfer / len(pairs) + l3.to(dtype)
        return total, [BalancedLoss(total, a, l1, l2, l3_local) for a, l1, l2 in results]

    def _averaged(self, losses: torch.Tensor) -> torch.Tensor:
        if self.sync_across_ranks and dist.is_available() and dist.is_initialized() \
                and dist.get_world_size() > 1:
            losses = losses.clone()
            dist.all_reduce(losses)  # a NaN on any rank makes the sum NaN on every rank
            losses /= dist.get_world_size()
        return losses

    def _check_finite(self, names: tuple[str, ...], local: torch.Tensor,
                      averaged: torch.Tensor, step: int | None) -> None:
        # One host sync for all paths: a non-finite loss must never reach the optimiser.
        finite = torch.isfinite(torch.cat([local, averaged])).tolist()
        local_ok, global_ok = finite[:len(names)], finite[len(names):]
        if all(local_ok) and all(global_ok):
            return
        where = f"step {step}" if step is not None else \
            f"call {self.num_calls} of this LossBalancer (no step given)"
        if all(local_ok):
            bad = [n for n, ok in zip(names, global_ok) if not ok]
            what = f"non-finite loss on another rank, {', '.join(bad)} (mean over ranks)"
        else:
            bad = [n for n, ok in zip(names, local_ok) if not ok]
            values = ", ".join(f"{n.split()[0]}={v}" for n, v in zip(names, local.tolist()))
            what = f"non-finite loss on {', '.join(bad)} ({values})"
        raise NonFiniteLossError(
            f"{what} at {where}. The step was not applied: weights and optimiser state are "
            "those of the last good step. Lower the learning rate, check the teacher's input "
            "normalisation and the labels, or train in fp32/bf16 instead of fp16."
        )


def _validated_alpha(value: object) -> float:
    # Strings are refused even when they parse ("0.5"): a quoted number in a config is a
    # typo more often than an intent, and bool is an int that cannot mean a weight.
    if isinstance(value, (str, bytes, bool)) or value is None:
        raise ValueError(f"LossBalancer: fixed_alpha must be a number >= 0, got {value!r} "
                         f"({type(value).__name__}); write e.g. fixed_alpha=0.5.")
    try:
        alpha = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"LossBalancer: fixed_alpha must be a number >= 0, got {value!r}"
                         ) from None
    if not math.isfinite(alpha) or alpha < 0:
        raise ValueError(f"LossBalancer: fixed_alpha must be finite and >= 0, got {alpha}; "
                         "the paper's Fig. 9 sweeps values such as 0.1, 0.5, 1, 2.")
    return alpha


def _total_dtype(losses: tuple[torch.Tensor, ...]) -> torch.dtype:
    """float32, or float64 if any loss is: never a half-precision total."""
    dtype = torch.float32
    for loss in losses:
        if loss.is_floating_point():
            dtype = torch.promote_types(dtype, loss.dtype)
    return dtype


def _dynamic_alpha(losses: torch.Tensor) -> torch.Tensor:
    """2*L3/(L1+L2) from float32 [L1, L2, L3]; 0 when L1+L2 is not positive.

    With L1+L2 <= 0 the hybrid paths carry no signal to scale (and a negative denominator
    would flip their gradients), so they get weight 0. Computed without a host sync.
    """
    hybrid = losses[0] + losses[1]
    safe = torch.where(hybrid > 0, hybrid, torch.ones_like(hybrid))
    alpha = torch.where(hybrid > 0, 2.0 * losses[2] / safe, torch.zeros_like(hybrid))
    return alpha.clamp_min(0.0)
