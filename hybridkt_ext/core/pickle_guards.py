"""Stand-ins for the callables a checkpoint's pickle may call, building only what files hold.

An allowed callable is called with the file's own arguments: ``bytes(8_000_000_000)`` in a
60-byte file allocates 8 GB. Each stand-in accepts exactly what legitimate checkpoints ask for
and raises ``RefusedCall`` (naming the call as the file made it) for anything else, before
anything is allocated. ``checkpoint_file`` installs them under the names pickles record.
"""
from __future__ import annotations

import functools
import math
import pickle
import types
from typing import Any, Callable

_HISTORY_BUFFER = "mmengine.logging.history_buffer.HistoryBuffer"
_HISTORY_BUFFER_METHODS = frozenset({"min", "max", "mean", "current"})


# How a refused call is named in messages; torch's unpickler keeps only the message of what a
# callable raises, so the marker lets the refusal be told apart from corruption.
REFUSED_CALL = "refusing to call "


class RefusedCall(pickle.UnpicklingError):
    """An allowed callable was asked for something legitimate checkpoints never ask."""

    def __init__(self, call: str) -> None:
        super().__init__(REFUSED_CALL + call)
        self.call = call


def describe(value: Any) -> str:
    if id(value) in _GUARDED_NAMES:
        return _GUARDED_NAMES[id(value)]
    if isinstance(value, (type, types.FunctionType, types.BuiltinFunctionType)):
        return f"{value.__module__}.{value.__qualname__}"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def history_buffer_getattr(obj: Any, name: str) -> Any:
    """``getattr`` for unpickling: only HistoryBuffer's own statistics methods.

    An unrestricted getattr would let a pickle reach any attribute of any object it can name
    (``getattr(getattr, "__self__")`` is the builtins module).
    """
    if f"{getattr(obj, '__module__', '')}.{getattr(obj, '__qualname__', '')}" == _HISTORY_BUFFER \
            and name in _HISTORY_BUFFER_METHODS:
        return getattr(obj, name, None)  # None on the placeholder: nothing to call there
    raise RefusedCall(f"getattr({describe(obj)}, {describe(name)})")


def empty_bytes(*args: Any) -> bytes:
    """``bytes`` for unpickling: protocol-2 pickles write an empty ``b''`` as ``bytes()``.

    Any argument is refused: ``bytes(8_000_000_000)`` would allocate what the file asks for.
    """
    if args:
        raise RefusedCall(f"bytes({', '.join(map(describe, args))})")
    return b""


def empty_array_reconstruct(reconstruct: Callable[..., Any], subtype: Any, shape: Any,
                             dtype: Any) -> Any:
    """numpy's ``_reconstruct`` for unpickling, for the empty array every pickle starts from.

    numpy pickles an array as ``_reconstruct(ndarray, (0,), b'b')`` and then sets its data
    from the file's bytes (``__setstate__`` checks their size); a larger shape here would
    allocate memory the file does not hold.
    """
    try:
        elements = math.prod(int(n) for n in shape)
    except (TypeError, ValueError):
        elements = -1
    if elements != 0:
        raise RefusedCall(f"numpy _reconstruct(shape={describe(shape)})")
    return reconstruct(_numpy_array_class(subtype), shape, dtype)


def _numpy_array_class(subtype: Any) -> Any:
    import numpy as np

    return np.ndarray if subtype is NdarrayName or subtype is np.ndarray else subtype


class NdarrayName:
    """What the ``.pkl`` reader gives for ``numpy.ndarray``: a name, not a constructor.

    Pickles pass the class to ``_reconstruct`` (which maps it back); calling it, as a hostile
    file does to allocate ``ndarray((10**12,))``, is refused.
    """

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        raise RefusedCall(f"numpy.ndarray({', '.join(map(describe, args))})")


def file_sized_scalar(scalar: Callable[..., Any], dtype: Any, *data: Any) -> Any:
    """numpy's ``scalar`` for unpickling: the value's bytes must be in the file."""
    if getattr(dtype, "hasobject", False):
        return scalar(dtype, *data)
    if len(data) != 1 or not isinstance(data[0], bytes) \
            or len(data[0]) != getattr(dtype, "itemsize", -1):
        raise RefusedCall(f"numpy scalar({describe(dtype)}, {len(data)} argument(s))")
    return scalar(dtype, data[0])


# The stand-ins, by the name a pickle gives them: messages say what the file asked for.
_GUARDED_NAMES = {id(history_buffer_getattr): "getattr", id(empty_bytes): "bytes",
                  id(NdarrayName): "numpy.ndarray"}


@functools.lru_cache(maxsize=None)  # one object per function: torch's allowlist is a set
def guarded(guard: Callable[..., Any], real: Callable[..., Any]) -> Callable[..., Any]:
    """``guard`` bound to the numpy function ``real`` it checks the arguments of."""
    return functools.partial(guard, real)
