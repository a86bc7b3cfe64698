"""What a smoke run found, and how it is printed."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

# The exported student must give the hybrid model's outputs (its student path) in the plain
# config; the same weights and ops give the same numbers, so this only absorbs reordering.
EXPORT_TOLERANCE = 1e-5
# alpha = 2 L3 / (L1 + L2) is computed in float32; the log rounds nothing.
ALPHA_TOLERANCE = 1e-4


@dataclass(frozen=True)
class IterationLosses:
    iteration: int
    alpha: float
    l1: float
    l2: float
    l3: float

    @property
    def alpha_matches(self) -> bool:
        return math.isclose(self.alpha, 2 * self.l3 / (self.l1 + self.l2), rel_tol=ALPHA_TOLERANCE)


@dataclass
class SmokeResult:
    config: str
    framework: str
    iterations: int
    losses: list[IterationLosses]
    plain_seconds: float  # median time per iteration, the first one left out when N > 1
    hybrid_seconds: float
    export_difference: float  # largest |hybrid student path - exported student in plain config|
    changes: list[str] = field(default_factory=list)

    @property
    def problems(self) -> list[str]:
        found = []
        if len(self.losses) != self.iterations:
            found.append(f"alpha was logged at {len(self.losses)} of {self.iterations} "
                         f"iterations")
        found += [f"iteration {r.iteration}: alpha {r.alpha:.6g} != 2 L3 / (L1 + L2)"
                  for r in self.losses if not r.alpha_matches]
        if not self.export_difference <= EXPORT_TOLERANCE:
            found.append(f"the exported student's outputs in the plain config differ from the "
                         f"hybrid model's by {self.export_difference:.3g}")
        return found

    def lines(self) -> list[str]:
        out = [f"{self.config} ({self.framework}), {self.iterations} iterations plain and hybrid",
               "", "| iteration | alpha | L1 | L2 | L3 | alpha = 2 L3/(L1+L2) |",
               "|---|---|---|---|---|---|"]
        out += [f"| {r.iteration} | {r.alpha:.4f} | {r.l1:.4f} | {r.l2:.4f} | {r.l3:.4f} | "
                f"{'yes' if r.alpha_matches else 'NO'} |" for r in self.losses]
        ratio = self.hybrid_seconds / self.plain_seconds if self.plain_seconds else math.nan
        out += ["", f"time per iteration (median): plain {self.plain_seconds:.3f} s, hybrid "
                    f"{self.hybrid_seconds:.3f} s ({ratio:.2f}x)",
                f"exported student in the plain config: largest output difference "
                f"{self.export_difference:.3g} "
                f"({'same outputs' if self.export_difference <= EXPORT_TOLERANCE else 'DIFFERS'})"]
        if self.changes:
            out += ["", "replaced for the smoke run: " + "; ".join(self.changes)]
        problems = self.problems
        out += ["", "FAILED: " + "; ".join(problems) if problems else "smoke test passed"]
        return out
