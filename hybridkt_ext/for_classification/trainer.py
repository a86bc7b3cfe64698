"""Training and evaluation loops of the classification setting, with per-step logs."""
from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from ..core import NonFiniteLossError, save_atomically, write_text_atomically


@dataclass
class TrainConfig:
    """Optimisation settings, shared by every mode so that comparisons are fair."""

    epochs: int = 10          # passes over the training set
    batch_size: int = 64      # images per step
    lr: float = 0.05          # peak SGD learning rate (cosine decay to 0)
    momentum: float = 0.9     # SGD momentum
    weight_decay: float = 5e-4  # L2 on trainable parameters
    seed: int = 0             # fixes initialisation, shuffling and the data split

    def __post_init__(self) -> None:
        if not (isinstance(self.epochs, int) and self.epochs >= 1):
            raise ValueError(f"TrainConfig.epochs={self.epochs!r}: give an integer >= 1")
        if not (isinstance(self.batch_size, int) and self.batch_size >= 1):
            raise ValueError(f"TrainConfig.batch_size={self.batch_size!r}: give an integer >= 1")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"TrainConfig.lr={self.lr!r}: give a finite number > 0")


def evaluate(model: nn.Module, dataset: Dataset, batch_size: int = 256) -> float:
    """Top-1 accuracy of ``model(x)`` (the student path only)."""
    was_training = model.training
    model.eval()
    correct = total = 0
    with torch.no_grad():
        for x, y in DataLoader(dataset, batch_size=batch_size):
            correct += (model(x).argmax(1) == y).sum().item()
            total += len(y)
    model.train(was_training)
    return correct / max(total, 1)


def training_flops_per_step(model: nn.Module, step_fn, dataset: Dataset, batch_size: int,
                            steps: int = 2) -> float:
    """Mean FLOPs (torch.utils.flop_counter: matmuls and convolutions, forward and backward)
    of ``steps`` training steps of ``fit`` on the first batches of ``dataset``.

    Two steps by default: a mode that alternates paths by step (``hybrid_alternate``) costs
    the mean of its even and odd steps. The weights change (plain SGD, lr 1e-3, as a step of
    ``fit`` does): pass a model built for counting, not the one to train.
    """
    from torch.utils.flop_counter import FlopCounterMode

    loader = DataLoader(dataset, batch_size=batch_size, drop_last=True)
    if len(loader) < steps:
        raise ValueError(f"{len(dataset)} samples hold fewer than {steps} batches of "
                         f"{batch_size}: lower the batch size.")
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    model.train()
    batches = iter(loader)
    with FlopCounterMode(display=False) as counter:
        for _ in range(steps):
            x, y = next(batches)
            loss, _ = step_fn(x, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return counter.get_total_flops() / steps


def steps_per_epoch(dataset: Dataset, batch_size: int) -> int:
    """The optimiser steps ``fit`` takes per epoch (its loader drops the last partial batch)."""
    return len(dataset) // batch_size


def fit(model: nn.Module, step_fn, dataset: Dataset, cfg: TrainConfig,
        test_set: Dataset | None = None) -> list[dict]:
    """Trains ``model`` with ``loss, logs = step_fn(x, y)``; returns one log row per step.

    Each row holds the epoch, step, learning rate and every value ``step_fn`` logs (for the
    hybrid modes: hkt_alpha, hkt_L1, hkt_L2, hkt_L3). With a ``test_set`` the test accuracy is
    added to the last row of every epoch.

    Raises:
        ValueError: the dataset holds fewer samples than one batch (no step would run).
        NonFiniteLossError: a path loss became NaN/inf (the core LossBalancer's policy); the
            message names the epoch and step, and that step was not applied.
    """
    generator = torch.Generator().manual_seed(cfg.seed)
    loader = DataLoader(dataset, batch_size=cfg.batch_size, shuffle=True, drop_last=True,
                        generator=generator)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum,
                                weight_decay=cfg.weight_decay)
    if len(loader) == 0:  # drop_last: a smaller set would end "trained" without one step
        raise ValueError(f"{len(dataset)} training samples are fewer than one batch "
                         f"({cfg.batch_size}): no step would train; lower the batch size.")
    total_steps = cfg.epochs * len(loader)
    rows: list[dict] = []
    step = 0
    model.train()
    for epoch in range(cfg.epochs):
        for x, y in loader:
            lr = 0.5 * cfg.lr * (1 + math.cos(math.pi * step / total_steps))
            for group in optimizer.param_groups:
                group["lr"] = lr
            try:
                loss, logs = step_fn(x, y)
            except NonFiniteLossError as err:
                # Raised before backward: the weights are those of the last good step.
                raise NonFiniteLossError(f"epoch {epoch}, step {step}: {err}") from err
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            rows.append({"epoch": epoch, "step": step, "lr": lr, "loss": loss.item(), **logs})
            step += 1
        if test_set is not None and rows:
            rows[-1]["test_acc"] = evaluate(model, test_set)
    return rows


def write_csv(rows: list[dict], path: str | Path, overwrite: bool = False) -> Path:
    """The log rows as CSV, written atomically (an existing file only with ``overwrite``)."""
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=list(dict.fromkeys(k for row in rows for k in row)))
    writer.writeheader()
    writer.writerows(rows)
    return write_text_atomically(path, text.getvalue(), overwrite)


def save_classifier(model: nn.Module, path: str | Path, overwrite: bool = False) -> Path:
    """Saves a plain classifier's state dict atomically."""
    return save_atomically(model.state_dict(), path, overwrite=overwrite)
