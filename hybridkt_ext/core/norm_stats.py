"""Keeping student norm-layer running statistics to the student path alone.

The hybrid paths feed student stages with teacher features (through adapters). If those
batches updated BatchNorm running mean/var, evaluation -- which runs the student path on the
running statistics -- would see statistics of a mixture it never runs on. DESIGN.md records a
student whose accuracy fell from 0.96 to 0.34 for exactly this reason while its training
trajectory was unchanged. Hybrid-path student stages therefore normalise with batch
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
    return isinstance(getattr(module, "running_mean", None), torch.Tensor)


class RunningStatsGuard:
    """Freezes the running statistics of every norm layer inside a module, on demand.

    Built once per module (the scan is not on the hot path). Modules whose forward honours
    ``track_running_stats`` are toggled; any other module with running buffers (e.g. a custom
    synchronised BN that updates them by hand) has them saved and restored instead.

    Args:
        module: the student backbone (or any part of it).
    """

    def __init__(self, module: nn.Module) -> None:
        self._toggle: list[_BatchNorm] = []
        self._restore: list[nn.Module] = []
        for m in module.modules():
            if not _has_running_stats(m):
                continue
            if isinstance(m, _BatchNorm) and type(m).forward in _TOGGLE_SAFE_FORWARDS:
                self._toggle.append(m)
            else:
                self._restore.append(m)

    @contextlib.contextmanager
    def frozen(self) -> Iterator[None]:
        """Within the block, training-mode norm layers use batch stats and update nothing."""
        toggled = [m for m in self._toggle if m.training and m.track_running_stats]
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
