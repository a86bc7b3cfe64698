"""Keeping student norm-layer running statistics to the student path alone.

The hybrid paths feed student stages with teacher features (through adapters). If those
batches updated BatchNorm running mean/var, evaluation -- which runs the student path on the
running statistics -- would see statistics of a mixture it never runs on. docs/design.md
records a student whose accuracy fell from 0.96 to 0.34 for exactly this reason while its
training trajectory was unchanged. Hybrid-path student stages therefore normalise with batch
statistics but leave the running buffers untouched.
"""
from __future__ import annotations

import contextlib
from typing import Iterator

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

# These forwards read `track_running_stats` at call time: switching it off makes a module in
# training mode use batch statistics and skip the buffer update, at no cost.
_TOGGLE_SAFE_FORWARDS = {nn.BatchNorm1d.forward, nn.BatchNorm2d.forward, nn.BatchNorm3d.forward,
                         nn.SyncBatchNorm.forward, _BatchNorm.forward}


def _has_running_stats(module: nn.Module) -> bool:
    # FrozenBatchNorm2d (torchvision's and detectron2's) never updates its buffers: nothing to
    # guard, and skipping it spares a buffer copy per stage call.
    return isinstance(getattr(module, "running_mean", None), torch.Tensor) \
        and type(module).__name__ != "FrozenBatchNorm2d"


def uses_batch_statistics(module: nn.Module) -> bool:
    """Whether some norm layer inside ``module`` would, called now, couple the samples of a
    batch: normalise with batch statistics or update running buffers from them.

    False for LayerNorm/GroupNorm (per sample), FrozenBatchNorm2d, BatchNorm in eval mode with
    running statistics (mmdet's ``norm_eval=True``), and InstanceNorm that tracks nothing while
    training. Any other module with running buffers in training mode counts as coupling: a
    custom synchronised BN cannot be told apart from one that updates its buffers. Read from the
    modules' current state, so a later ``train()`` or SyncBN conversion is respected.
    """
    for m in module.modules():
        if isinstance(m, _BatchNorm):
            if m.training or m.running_mean is None:
                return True
        elif isinstance(m, nn.modules.instancenorm._InstanceNorm):
            if m.training and m.track_running_stats:
                return True
        elif m.training and _has_running_stats(m):
            return True
    return False


class RunningStatsGuard:
    """Freezes the running statistics of every norm layer inside a module, on demand.

    Modules whose forward honours ``track_running_stats`` are toggled; any other module with
    running buffers (e.g. a custom synchronised BN that updates them by hand) has them saved
    and restored instead. The scan is redone whenever the module's norm layers were replaced
    (mmengine reverts SyncBN after building a model, DDP set-ups convert to it), so a guard
    never protects discarded layers while the live ones absorb hybrid-path statistics.

    Args:
        module: the student backbone (or any part of the student, e.g. its heads).
        exclude: a part of ``module`` whose norm layers are left alone (the hybrid engine
            inside a whole model: it guards its student stages itself, and the student path
            must keep updating them).
    """

    def __init__(self, module: nn.Module, exclude: nn.Module | None = None) -> None:
        self._module = module
        self._exclude = (exclude,)
        self._ids: tuple[int, ...] = ()
        self._toggle: list[_BatchNorm] = []
        self._restore: list[nn.Module] = []
        self._scan()

    def _norm_layers(self) -> list[nn.Module]:
        exclude = self._exclude[0]
        skipped = {id(m) for m in exclude.modules()} if exclude is not None else set()
        return [m for m in self._module.modules() if _has_running_stats(m)
                and id(m) not in skipped]

    def _scan(self) -> None:
        layers = self._norm_layers()
        self._ids = tuple(id(m) for m in layers)
        self._toggle = [m for m in layers if isinstance(m, _BatchNorm)
                        and type(m).forward in _TOGGLE_SAFE_FORWARDS]
        self._restore = [m for m in layers if not any(m is t for t in self._toggle)]

    @contextlib.contextmanager
    def frozen(self) -> Iterator[None]:
        """Within the block, training-mode norm layers use batch stats and update nothing."""
        if tuple(id(m) for m in self._norm_layers()) != self._ids:  # one cheap module walk
            self._scan()
        # BatchNorm subclasses with a forward of their own (detectron2's NaiveSyncBatchNorm)
        # are toggled too: on one process they call BatchNorm's forward, which would otherwise
        # save the running buffers for backward, and the restore below would then bump their
        # version under autograd's feet.
        toggled = [m for m in self._toggle + [r for r in self._restore if isinstance(r, _BatchNorm)]
                   if m.training and m.track_running_stats]
        saved = [
            (m, {k: b.clone() for k, b in m.named_buffers(recurse=False) if b is not None})
            for m in self._restore if m.training
        ]
        for m in toggled:
            m.track_running_stats = False
        try:
            yield
        finally:
            for m in toggled:
                m.track_running_stats = True
            with torch.no_grad():
                for m, buffers in saved:
                    for name, value in buffers.items():
                        getattr(m, name).copy_(value)
