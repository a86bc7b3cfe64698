"""Helpers shared by test modules of several folders (import them from ``tests.conftest``).
The repository root is importable through pytest's rootdir handling: ``tests`` is a package."""
from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CONFIGS = REPO / "configs"


def citypersons_annotations() -> Path:
    """The folder of the real CityPersons annotations (``anno_{train,val}.mat``,
    ``val_gt.json``), named by HYBRIDKT_CITYPERSONS_ANNOTATIONS; the tests that read them skip
    where the files are absent (they are not redistributable, so CI has none)."""
    return Path(os.environ.get("HYBRIDKT_CITYPERSONS_ANNOTATIONS", REPO / "data" / "citypersons"))


def png_bytes() -> bytes:
    """A real 8x8 PNG image (a file that is a valid image but no checkpoint)."""
    import torch
    from torchvision.io import encode_png

    return encode_png(torch.randint(0, 255, (3, 8, 8), dtype=torch.uint8)).numpy().tobytes()
