"""Dynamic balancing of the three path losses (the paper's eq. 1 and 2).

alpha = 2 * L3 / (L1 + L2), total = alpha * (L1 + L2) + L3, with alpha a constant per step:
it is computed from detached values, so the gradient is alpha * (g1 + g2) + g3 (eq. 2). This
is the one implementation every framework adapter calls where it turns losses into a scalar.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.distributed as dist

BALANCE_MODES = ("dynamic", "fixed", "student_only")


class NonFiniteLossError(FloatingPointError):
    """A path loss is NaN or infinite; the step must not reach the optimiser."""


@dataclass(frozen=True)
class BalancedLoss:
    """The combined loss and what to log.

    Attributes:
        total: the scalar to back-propagate (carries gradient).
        alpha: the balancing weight used (detached float32 scalar tensor).
        l1, l2, l3: detached path losses (student-first, teacher-first, student); l1/l2 are
            None in student-only mode.
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
            values["hkt_L2"] = self.l2
        return values


class LossBalancer:
    """Combines L1, L2, L3 into the training loss.

    Args:
        mode: "dynamic" (the paper's alpha = 2*L3/(L1+L2)), "fixed" (alpha = fixed_alpha, the
            Fig. 9 sweep) or "student_only" (no teacher: total = L3).
        fixed_alpha: the weight in "fixed" mode; finite and >= 0.
        sync_across_ranks: in distributed training, compute alpha from the losses averaged
            over ranks so every rank uses the same alpha whatever the number of GPUs.
    """

    def __init__(self, mode: str = "dynamic", fixed_alpha: float = 1.0,
                 sync_across_ranks: bool = True) -> None:
        if mode not in BALANCE_MODES:
            raise ValueError(f"balance mode {mode!r} is not one of {BALANCE_MODES}")
        try:
            fixed_alpha = float(fixed_alpha)
        except (TypeError, ValueError):
            raise ValueError(f"fixed_alpha must be a number, got {fixed_alpha!r}") from None
        if not math.isfinite(fixed_alpha) or fixed_alpha < 0:
            raise ValueError(f"fixed_alpha must be finite and >= 0, got {fixed_alpha}")
        self.mode = mode
        self.fixed_alpha = fixed_alpha
        self.sync_across_ranks = sync_across_ranks

    @property
    def uses_teacher(self) -> bool:
        return self.mode != "student_only"

    def __call__(self, l1: torch.Tensor | None, l2: torch.Tensor | None,
                 l3: torch.Tensor) -> BalancedLoss:
        """Returns the balanced loss; raises NonFiniteLossError naming a NaN/inf path loss."""
        if not self.uses_teacher:
            _check_finite({"L3 (student path)": l3})
            l3d = l3.detach().float()
            return BalancedLoss(l3, torch.zeros((), device=l3.device), None, None, l3d)
        if l1 is None or l2 is None:
            raise ValueError(f"balance mode {self.mode!r} needs all three path losses")
        _check_finite({"L1 (student-first path)": l1, "L2 (teacher-first path)": l2,
                       "L3 (student path)": l3})
        # float32 even under autocast: alpha is a ratio of small numbers.
        detached = torch.stack([l1.detach().float(), l2.detach().float(), l3.detach().float()])
        if self.mode == "fixed":
            alpha = torch.tensor(self.fixed_alpha, device=l3.device)
        else:
            alpha = _dynamic_alpha(self._averaged(detached))
        total = alpha.to(l3.dtype) * (l1 + l2) + l3
        return BalancedLoss(total, alpha, detached[0], detached[1], detached[2])

    def _averaged(self, losses: torch.Tensor) -> torch.Tensor:
        if self.sync_across_ranks and dist.is_available() and dist.is_initialized() \
                and dist.get_world_size() > 1:
            losses = losses.clone()
            dist.all_reduce(losses)
            losses /= dist.get_world_size()
        return losses


def _dynamic_alpha(losses: torch.Tensor) -> torch.Tensor:
    """2*L3/(L1+L2) from [L1, L2, L3]; 0 when L1+L2 is not positive.

    With L1+L2 <= 0 the hybrid paths carry no signal to scale (and a negative denominator
    would flip their gradients), so they get weight 0. Computed without a host sync.
    """
    hybrid = losses[0] + losses[1]
    safe = torch.where(hybrid > 0, hybrid, torch.ones_like(hybrid))
    alpha = torch.where(hybrid > 0, 2.0 * losses[2] / safe, torch.zeros_like(hybrid))
    return alpha.clamp_min(0.0)


def _check_finite(losses: dict[str, torch.Tensor]) -> None:
    # One host sync for all paths: a non-finite loss must never reach the optimiser.
    values = torch.stack([v.detach().float().reshape(()) for v in losses.values()])
    finite = torch.isfinite(values)
    if not bool(finite.all()):
        bad = [name for name, ok in zip(losses, finite.tolist()) if not ok]
        raise NonFiniteLossError(
            f"non-finite loss on {', '.join(bad)}: {values.tolist()}. The step was not "
            "applied. Lower the learning rate, check the teacher's input normalisation, or "
            "train with fp32/bf16 instead of fp16."
        )
