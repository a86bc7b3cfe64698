"""Framework-neutral dataset readers: plain-dict records that framework adapters convert."""

from .citypersons import (
    CITYSCAPES_HEIGHT,
    CITYSCAPES_WIDTH,
    load_citypersons_json,
    load_citypersons_mat,
)

__all__ = [
    "CITYSCAPES_HEIGHT",
    "CITYSCAPES_WIDTH",
    "load_citypersons_json",
    "load_citypersons_mat",
]
