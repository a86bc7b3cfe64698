"""Datasets of the classification setting: built-in digits, or an ImageFolder tree."""
from __future__ import annotations

from pathlib import Path

from torch.utils.data import Dataset

from .digits import load_digits_splits

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def load_datasets(data_root: Path | None, image_size: int | None, seed: int,
                  train_limit: int | None = None) -> tuple[Dataset, Dataset, int]:
    """Returns (train, test, num_classes).

    ``data_root=None`` gives scikit-learn's digits (32x32 by default). Otherwise
    ``data_root/train`` and ``data_root/val`` are torchvision ImageFolder trees with the usual
    ImageNet augmentation and normalisation (224x224 by default).
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
    return train, test, len(train.classes)
