"""Framework-neutral evaluation metrics (no detectron2/mmseg imports)."""

from .miss_rate import (
    DEFAULT_SETUPS,
    FPPI_REFERENCE_POINTS,
    NO_UPPER_BOUND,
    EvalSetup,
    InvalidAnnotationError,
    evaluate_miss_rate,
    log_average_miss_rate,
    miss_rate_curve,
    pairwise_overlaps,
)

__all__ = [
    "DEFAULT_SETUPS",
    "EvalSetup",
    "FPPI_REFERENCE_POINTS",
    "InvalidAnnotationError",
    "NO_UPPER_BOUND",
    "evaluate_miss_rate",
    "log_average_miss_rate",
    "miss_rate_curve",
    "pairwise_overlaps",
]
