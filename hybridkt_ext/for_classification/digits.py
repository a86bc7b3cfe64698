"""scikit-learn's bundled digits (1797 8x8 images): the real dataset on every machine."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import TensorDataset


def load_digits_splits(image_size: int = 32, test_fraction: float = 0.3, seed: int = 0,
                       train_limit: int | None = None) -> tuple[TensorDataset, TensorDataset]:
    """Stratified train/test splits as (N, 3, S, S) normalised tensors and int64 labels.

    Args:
        image_size: images are upsampled from 8x8 so that 32x-reducing backbones keep a
            spatial map at their last stage.
        test_fraction: share of each class held out for testing.
        seed: fixes the split.
        train_limit: keep only this many training images (stratified), for low-data runs.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = torch.from_numpy(digits.images.astype(np.float32) / 16.0)[:, None]
    x = F.interpolate(x, size=(image_size, image_size), mode="bilinear", align_corners=False)
    y = torch.from_numpy(digits.target.astype(np.int64))
    idx = np.arange(len(y))
    train_idx, test_idx = train_test_split(idx, test_size=test_fraction, random_state=seed,
                                           stratify=digits.target)
    if train_limit is not None and train_limit < len(train_idx):
        train_idx, _ = train_test_split(train_idx, train_size=train_limit, random_state=seed,
                                        stratify=digits.target[train_idx])
    # Normalise with the training split's statistics; the test split never informs them.
    mean, std = x[train_idx].mean(), x[train_idx].std()
    x = ((x - mean) / std).expand(-1, 3, -1, -1).contiguous()
    return (TensorDataset(x[train_idx], y[train_idx]), TensorDataset(x[test_idx], y[test_idx]))
