"""Measuring the memory autograd keeps for backward, independent of the allocator and device.

Peak RSS on CPU moves with the allocator's caching and with whatever else the process holds;
the tensors saved for backward are what activation checkpointing and shared prefixes change,
and they can be counted exactly with ``torch.autograd.graph.saved_tensors_hooks``.
"""

from __future__ import annotations

from typing import Iterable

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle


class SavedActivationMeter:
    """Counts the bytes of the tensors autograd saves for backward while the meter is active.

    Each storage counts once (a ReLU output that the ReLU and the next conv both save is held
    once) and parameters not at all (they are held whatever autograd does). A non-reentrant
    ``torch.utils.checkpoint`` keeps its input outside the saved-tensor hooks, so the inputs
    that ``watched`` modules receive with autograd count as held too, as they are when the
    module's first op saves them. Use the meter around a forward pass; a checkpoint's
    recomputation during backward is not counted (it lives only while its stage's backward
    runs).

    Args:
        parameters: tensors never counted (the model's parameters).
        watched: modules (e.g. teacher stages) whose inputs count as held, and whose own saved
            bytes and outputs are also summed apart.

    Attributes:
        total_bytes: bytes of all distinct storages saved for backward.
        bytes_saved_inside_watched: of those, the bytes first saved while a watched module ran.
        watched_output_bytes: bytes of the outputs watched modules produced with autograd.
    """

    def __init__(
        self, parameters: Iterable[torch.Tensor], watched: Iterable[nn.Module] = ()
    ) -> None:
        self._excluded = {p.untyped_storage().data_ptr() for p in parameters}
        self._watched = list(watched)
        self._sizes: dict[int, int] = {}
        self._depth = 0  # > 0 while a watched module's forward runs
        self._handles: list[RemovableHandle] = []
        self._hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, self._unpack)
        self.bytes_saved_inside_watched = 0
        self.watched_output_bytes = 0

    @property
    def total_bytes(self) -> int:
        return sum(self._sizes.values())

    def __enter__(self) -> "SavedActivationMeter":
        for module in self._watched:
            self._handles.append(module.register_forward_pre_hook(self._enter_watched))
            self._handles.append(module.register_forward_hook(self._leave_watched))
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc_info) -> None:
        self._hooks.__exit__(*exc_info)
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def _pack(self, tensor: torch.Tensor) -> torch.Tensor:
        self._count(tensor, inside_watched=self._depth > 0)
        return tensor

    @staticmethod
    def _unpack(tensor: torch.Tensor) -> torch.Tensor:
        return tensor

    def _count(self, tensor: torch.Tensor, inside_watched: bool) -> None:
        storage = tensor.untyped_storage()
        key = storage.data_ptr()
        if key in self._excluded or key in self._sizes:
            return
        self._sizes[key] = storage.nbytes()
        if inside_watched:
            self.bytes_saved_inside_watched += storage.nbytes()

    def _enter_watched(self, _module: nn.Module, args: tuple) -> None:
        held = args[0] if args else None
        if torch.is_grad_enabled() and isinstance(held, torch.Tensor) and held.requires_grad:
            self._count(held, inside_watched=False)
        self._depth += 1

    def _leave_watched(self, _module: nn.Module, _args: tuple, output: object) -> None:
        self._depth -= 1
        if torch.is_grad_enabled() and isinstance(output, torch.Tensor) and output.requires_grad:
            self.watched_output_bytes += output.untyped_storage().nbytes()
