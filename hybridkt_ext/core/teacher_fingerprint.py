"""A teacher's fingerprint: one SHA-256 over its weights, equal iff they are bit-equal.

Both framework adapters use it to tell whether the teacher a run resumes with is the one its
checkpoint was trained with (and that training left the frozen teacher untouched).
"""
from __future__ import annotations

import hashlib
from typing import Mapping

import torch
from torch import nn


def tensor_digests(state: Mapping[str, torch.Tensor]) -> dict[str, str]:
    """SHA-256 of every tensor (dtype, shape and bytes), keyed like ``state``."""
    digests = {}
    for key, tensor in state.items():
        t = tensor.detach().cpu().contiguous()
        h = hashlib.sha256(f"{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy())
        digests[key] = h.hexdigest()
    return digests


def teacher_fingerprint(teacher: nn.Module | Mapping[str, torch.Tensor]) -> str:
    """One SHA-256 over a module's (or state dict's) keys and tensors."""
    state = teacher.state_dict() if isinstance(teacher, nn.Module) else teacher
    h = hashlib.sha256()
    for key, digest in sorted(tensor_digests(state).items()):
        h.update(f"{key}:{digest}\n".encode())
    return h.hexdigest()
