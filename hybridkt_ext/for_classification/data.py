"""Datasets of the classification setting: built-in digits, or an ImageFolder tree."""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

from torch.utils.data import Dataset

from .digits import load_digits_splits

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def load_datasets(data_root: Path | None, image_size: int | None, seed: int,
                  train_limit: int | None = None) -> tuple[Dataset, Dataset, int]:
    """Returns (train, test, num_classes).

    ``data_root=None`` gives scikit-learn's digits (32x32 by default). Otherwise
    ``data_root/train`` and ``data_root/val`` are torchvision ImageFolder trees with the usual
    ImageNet augmentation and normalisation (224x224 by default), of at least two classes and
    with every image's header checked (``check_image_headers``).

    Raises:
        FileNotFoundError: ``train`` or ``val`` is missing (or has no images).
        ValueError: the class folders differ or are fewer than two, or an image is unreadable.
    """
    if data_root is None:
        train, test = load_digits_splits(image_size or 32, seed=seed, train_limit=train_limit)
        return train, test, 10
    from torchvision import datasets, transforms

    size = image_size or 224
    missing = [d for d in ("train", "val") if not (Path(data_root) / d).is_dir()]
    if missing:
        raise FileNotFoundError(
            f"{data_root} lacks {missing}: an ImageFolder root needs train/<class>/ and "
            "val/<class>/ folders of images"
        )
    normalize = transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)
    train = datasets.ImageFolder(Path(data_root) / "train", transforms.Compose([
        transforms.RandomResizedCrop(size), transforms.RandomHorizontalFlip(),
        transforms.ToTensor(), normalize]))
    test = datasets.ImageFolder(Path(data_root) / "val", transforms.Compose([
        transforms.Resize(int(size * 256 / 224)), transforms.CenterCrop(size),
        transforms.ToTensor(), normalize]))
    if train.classes != test.classes:
        raise ValueError(f"train and val classes differ under {data_root}")
    if len(train.classes) < 2:
        # One class: every prediction is right, and the run would report accuracy 1.0.
        raise ValueError(
            f"{Path(data_root) / 'train'} has {len(train.classes)} class folder "
            f"({', '.join(train.classes)}); classification needs at least two, one folder of "
            "images per class in both train/ and val/.")
    check_image_headers(path for path, _ in (*train.samples, *test.samples))
    return train, test, len(train.classes)


def check_image_headers(paths: Iterable[str | Path]) -> None:
    """Opens every image's header (PIL's ``verify``, no decoding), before any training.

    A file that is no image would otherwise stop the run when the loader first reaches it, for
    a val/ file after a whole epoch of training, with nothing saved. ``verify`` checks a PNG's
    chunk checksums too; a JPEG truncated after its header passes (finding that needs a full
    decode of every image).

    Raises:
        ValueError: one line naming the first file PIL cannot read, and why.
    """
    from PIL import Image, UnidentifiedImageError

    for path in paths:
        try:
            with Image.open(path) as image:
                image.verify()
        # PIL reports a damaged file with whatever its parser hits (OSError, SyntaxError,
        # struct.error, EOFError, ...): any of them means the loader would fail on this file.
        except Exception as err:  # noqa: BLE001
            reason = ("not an image format PIL reads" if isinstance(err, UnidentifiedImageError)
                      else f"{type(err).__name__}: {err}")
            raise ValueError(f"{path} is not a readable image ({reason}); replace or remove it "
                             "(every image under train/ and val/ is checked before training).")
