"""Seeded synthetic street scenes in the real Cityscapes and GTA5 folder layouts.

Real Cityscapes and GTA5 cannot be downloaded here, so tests and the demo train on small
generated datasets that the *real* loaders read unchanged:

* Cityscapes: ``leftImg8bit/{split}/<city>/<name>_leftImg8bit.png`` and
  ``gtFine/{split}/<city>/<name>_gtFine_labelTrainIds.png`` (train ids 0-18, 255 ignore),
  read by mmseg's own ``CityscapesDataset``, and ``<name>_gtFine_labelIds.png`` (label ids, as
  distributed, from which cityscapesscripts makes the train ids).
* GTA5: ``images/<name>.png`` and ``labels/<name>.png`` with Cityscapes *label ids* (0-33),
  which the GTA5 dataset maps to train ids; ``{split}.txt`` lists the names of each split.

A scene is a street seen from a car: sky, buildings, vegetation, road, sidewalks, poles,
cars and persons drawn as simple shapes. The ``style`` sets the domain: per-class colours
and a texture, so a model trained on one style sees a colour/texture shift on the other
(the domain gap of the paper's GTA5 -> Cityscapes setting) while the geometry is shared.
Only numpy and OpenCV (a dependency of mmcv) are needed.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# (name, Cityscapes label id, train id) of the classes the scenes contain.
SCENE_CLASSES: tuple[tuple[str, int, int], ...] = (
    ("road", 7, 0), ("sidewalk", 8, 1), ("building", 11, 2), ("pole", 17, 5),
    ("vegetation", 21, 8), ("sky", 23, 10), ("person", 24, 11), ("car", 26, 13),
)
_LABEL_ID = {name: label_id for name, label_id, _ in SCENE_CLASSES}
_TRAIN_ID = {name: train_id for name, _, train_id in SCENE_CLASSES}
# The Cityscapes label id -> train id table (cityscapesscripts' labels.py); others -> 255.
CITYSCAPES_ID_TO_TRAINID: dict[int, int] = {
    7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10, 24: 11,
    25: 12, 26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18,
}
COMPLETE_MARKER = ".synthetic_complete"
_CITIES = ("synthville", "pixelburg")


@dataclass(frozen=True)
class SceneStyle:
    """The look of a domain.

    Attributes:
        name: ``"cityscapes"`` (muted, smooth) or ``"gta5"`` (saturated, striped texture).
        colors: RGB colour per class name.
        noise: std of the per-pixel Gaussian noise, in 0-255 units.
        stripes: amplitude of a diagonal stripe texture (0: none), in 0-255 units.
    """

    name: str
    colors: dict[str, tuple[int, int, int]]
    noise: float
    stripes: float


STYLES: dict[str, SceneStyle] = {
    "cityscapes": SceneStyle("cityscapes", {
        "road": (128, 64, 128), "sidewalk": (200, 120, 200), "building": (90, 90, 90),
        "pole": (160, 160, 150), "vegetation": (107, 142, 35), "sky": (70, 130, 180),
        "person": (220, 20, 60), "car": (20, 20, 142),
    }, noise=12.0, stripes=0.0),
    "gta5": SceneStyle("gta5", {
        "road": (100, 90, 70), "sidewalk": (170, 170, 120), "building": (150, 100, 80),
        "pole": (230, 200, 80), "vegetation": (40, 180, 60), "sky": (150, 200, 250),
        "person": (250, 120, 40), "car": (200, 30, 30),
    }, noise=20.0, stripes=25.0),
}


def _draw_scene(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Returns an (H, W) array of class-name indices into SCENE_CLASSES."""
    index = {name: i for i, (name, _, _) in enumerate(SCENE_CLASSES)}
    scene = np.full((height, width), index["sky"], dtype=np.uint8)
    horizon = int(height * rng.uniform(0.40, 0.55))
    # Buildings: a skyline of blocks standing on the horizon.
    x = 0
    while x < width:
        w = int(width * rng.uniform(0.08, 0.22))
        top = int(horizon * rng.uniform(0.1, 0.7))
        scene[top:horizon, x:x + w] = index["building" if rng.random() < 0.75 else "vegetation"]
        x += w
    # Road: a trapezoid widening towards the bottom; sidewalks on both sides.
    rows = np.arange(height)[:, None]
    cols = np.arange(width)[None, :]
    centre = width * rng.uniform(0.4, 0.6)
    t = np.clip((rows - horizon) / max(height - horizon, 1), 0, 1)
    half_road = width * (0.05 + 0.45 * t)
    half_walk = half_road + width * (0.02 + 0.2 * t)
    below = rows >= horizon
    scene[below & (np.abs(cols - centre) < half_walk)] = index["sidewalk"]
    scene[below & (np.abs(cols - centre) < half_road)] = index["road"]
    outside = below & (np.abs(cols - centre) >= half_walk)
    scene[outside] = index["vegetation"]
    # Poles, cars (on the road) and persons (on the sidewalks), nearer ones larger.
    for _ in range(rng.integers(1, 4)):
        px = int(rng.uniform(0, width - 2))
        scene[int(horizon * rng.uniform(0.2, 0.6)):int(horizon + (height - horizon) * 0.3),
              px:px + max(1, width // 80)] = index["pole"]
    for _ in range(rng.integers(1, 4)):
        y = int(rng.uniform(horizon + 0.15 * (height - horizon), height - 2))
        s = (y - horizon) / max(height - horizon, 1)
        cw, ch = int(width * (0.06 + 0.18 * s)), int(height * (0.04 + 0.15 * s))
        cx = int(centre + rng.uniform(-0.8, 0.8) * (0.05 + 0.45 * s) * width - cw / 2)
        scene[max(y - ch, 0):y, max(cx, 0):max(cx + cw, 0)] = index["car"]
    for _ in range(rng.integers(1, 4)):
        y = int(rng.uniform(horizon + 0.1 * (height - horizon), height - 2))
        s = (y - horizon) / max(height - horizon, 1)
        side = 1 if rng.random() < 0.5 else -1
        pw, ph = max(2, int(width * (0.01 + 0.03 * s))), int(height * (0.08 + 0.3 * s))
        px = int(centre + side * (0.05 + 0.45 * s + rng.uniform(0.02, 0.15)) * width)
        scene[max(y - ph, 0):y, max(px, 0):max(px + pw, 0)] = index["person"]
    return scene


def _render(rng: np.random.Generator, scene: np.ndarray, style: SceneStyle) -> np.ndarray:
    """Colours a scene in ``style``: an (H, W, 3) uint8 RGB image."""
    palette = np.array([style.colors[name] for name, _, _ in SCENE_CLASSES], dtype=np.float32)
    # A per-image brightness jitter, so colour alone is not a lookup table.
    image = palette[scene] * rng.uniform(0.8, 1.2)
    height, width = scene.shape
    if style.stripes > 0:
        yy, xx = np.mgrid[0:height, 0:width]
        image += style.stripes * np.sin((xx + yy) * 0.9)[..., None]
    image += rng.normal(0.0, style.noise, size=image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def _to_ids(scene: np.ndarray, column: int) -> np.ndarray:
    table = np.array([row[column] for row in SCENE_CLASSES], dtype=np.uint8)
    return table[scene]


def _write_png(path: Path, array: np.ndarray) -> None:
    import cv2  # imported here: only generation needs OpenCV

    path.parent.mkdir(parents=True, exist_ok=True)
    if array.ndim == 3:
        array = array[..., ::-1]  # RGB -> BGR, OpenCV's order on disk
    if not cv2.imwrite(str(path), np.ascontiguousarray(array)):
        raise OSError(f"cannot write {path}")


def _check_args(style: str, num_train: int, num_val: int, size: tuple[int, int]) -> None:
    if style not in STYLES:
        raise ValueError(f"style={style!r} is not one of {sorted(STYLES)}; pick one of them.")
    if num_train < 1 or num_val < 1:
        raise ValueError(f"num_train and num_val must be >= 1, got {num_train}, {num_val}.")
    if len(size) != 2 or min(size) < 16:
        raise ValueError(f"size must be (height, width) with both >= 16, got {size}.")


def _generate(root: Path, layout: str, style: str, num_train: int, num_val: int,
              size: tuple[int, int], seed: int) -> None:
    rng = np.random.default_rng(seed)
    for split, count in (("train", num_train), ("val", num_val)):
        names = []
        for i in range(count):
            scene = _draw_scene(rng, *size)
            image = _render(rng, scene, STYLES[style])
            if layout == "cityscapes":
                city = _CITIES[i % len(_CITIES)]
                name = f"{city}_{i:06d}_000019"
                _write_png(root / "leftImg8bit" / split / city / f"{name}_leftImg8bit.png", image)
                _write_png(root / "gtFine" / split / city / f"{name}_gtFine_labelTrainIds.png",
                           _to_ids(scene, 2))
                # The label ids as distributed, which cityscapesscripts' own tools read.
                _write_png(root / "gtFine" / split / city / f"{name}_gtFine_labelIds.png",
                           _to_ids(scene, 1))
            else:
                name = f"{split}_{i:05d}"
                names.append(name)
                _write_png(root / "images" / f"{name}.png", image)
                _write_png(root / "labels" / f"{name}.png", _to_ids(scene, 1))
        if names:
            (root / f"{split}.txt").write_text("\n".join(names) + "\n")


def generate_synthetic_segmentation(root: str | os.PathLike, layout: str = "cityscapes",
                                    style: str | None = None, num_train: int = 64,
                                    num_val: int = 16, size: tuple[int, int] = (64, 128),
                                    seed: int = 0, overwrite: bool = False) -> Path:
    """Writes a synthetic dataset under ``root`` unless a complete one is already there.

    Generation writes into a temporary sibling folder and renames it into place, so an
    interrupted run leaves no half-written dataset and concurrent callers do not collide.

    Args:
        root: the dataset folder (the config's ``data_root``).
        layout: ``"cityscapes"`` or ``"gta5"``.
        style: the domain look (default: the layout's own, i.e. ``layout``).
        num_train: images in the train split.
        num_val: images in the val split.
        size: (height, width) of every image.
        seed: the random seed; equal arguments give identical files.
        overwrite: regenerate even if a complete dataset exists.

    Returns:
        ``root`` as a Path.
    """
    if layout not in ("cityscapes", "gta5"):
        raise ValueError(f"layout={layout!r} must be 'cityscapes' or 'gta5'.")
    style = style or layout
    _check_args(style, num_train, num_val, tuple(size))
    root = Path(root)
    if (root / COMPLETE_MARKER).exists() and not overwrite:
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.", dir=root.parent))
    try:
        _generate(tmp, layout, style, num_train, num_val, tuple(size), seed)
        (tmp / COMPLETE_MARKER).write_text(
            f"layout={layout} style={style} num_train={num_train} num_val={num_val} "
            f"size={tuple(size)} seed={seed}\n")
        if root.exists():
            if (root / COMPLETE_MARKER).exists() and not overwrite:
                return root  # another process finished first
            shutil.rmtree(root)
        os.replace(tmp, root)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return root
