"""Reading checkpoint files without running code from them.

A teacher checkpoint is, by definition, a file someone else wrote, and unpickling a file can
run any code it names (``os.system`` included). So every file is read with an allowlist:

* ``.safetensors``: read natively (tensors only; nothing to unpickle);
* ``.pkl`` (detectron2's model zoo): a restricted unpickler that rebuilds plain containers and
  numpy arrays and refuses every other class;
* anything else: ``torch.load(weights_only=True)`` plus the classes legitimate mmengine and
  detectron2 checkpoints hold next to the weights (``FRAMEWORK_GLOBALS``).

A file that needs any other class is refused with ``UntrustedCheckpointError``, which names the
class and the explicit opt-in (``trust=True``) for a file the user trusts. There is no
process-wide switch: torch's own protection stays on for every other load.

Allowed callables are no way in either: a pickle calls them with arguments of its choosing, so
``bytes``, numpy's array reconstruction and ``_codecs.encode`` are replaced by versions
(``pickle_guards``) that build only what legitimate checkpoints hold (an empty ``bytes()``,
arrays whose data comes from the file itself, latin-1 text no larger in all than the file). ``bytes(8_000_000_000)`` in a
60-byte file is refused before anything is allocated.
"""
from __future__ import annotations

import _compat_pickle
import errno
import functools
import importlib
import os
import pickle
import pickletools
import re
import types
import zipfile
from typing import Any, Callable, Sequence

import torch

from .errors import HybridKTError
from .pickle_guards import (REFUSED_CALL, NdarrayName, RefusedCall, describe,
                            empty_array_reconstruct, empty_bytes, file_sized_scalar, guarded,
                            history_buffer_getattr)

__all__ = [
    "CheckpointFileError", "CheckpointNotFoundError", "FRAMEWORK_GLOBALS",
    "UntrustedCheckpointError", "allow_framework_checkpoints", "read_checkpoint_file",
]

# Classes that legitimate framework checkpoints pickle next to their tensors, by the name a
# pickle records. mmengine keeps its logging buffers in ``message_hub``; numpy arrays and
# scalars appear in mmengine's runtime info and are detectron2's model-zoo weights. The
# numpy 1.x names (``numpy.core``) are those older files carry.
FRAMEWORK_GLOBALS: tuple[str, ...] = (
    "mmengine.logging.history_buffer.HistoryBuffer",
    # HistoryBuffer pickles its statistics methods as getattr(HistoryBuffer, "mean") and an
    # empty bytes(); getattr is replaced by one that allows exactly those lookups.
    "builtins.getattr",
    "builtins.bytes",
    "numpy.ndarray",
    "numpy.dtype",
    "numpy._core.multiarray._reconstruct",
    "numpy._core.multiarray.scalar",
    "numpy.core.multiarray._reconstruct",
    "numpy.core.multiarray.scalar",
) + tuple(f"numpy.dtypes.{kind}DType" for kind in (
    # numpy >= 1.25 gives every dtype instance a class of its own, which torch's weights-only
    # unpickler must be allowed to build; numbers, booleans and strings only.
    "Bool", "Int8", "Int16", "Int32", "Int64", "UInt8", "UInt16", "UInt32", "UInt64",
    "Float16", "Float32", "Float64", "LongDouble", "Complex64", "Complex128", "Str", "Bytes"))
# What the ``.pkl`` unpickler rebuilds besides FRAMEWORK_GLOBALS: containers and the byte
# decoding of protocol-2 pickles (``_codecs.encode``), none of which runs code of the file's.
_PKL_EXTRA_GLOBALS = ("collections.OrderedDict", "builtins.set", "builtins.frozenset",
                      "_codecs.encode")
# numpy 2 renamed numpy.core to numpy._core (same objects); numpy 1.x has only the old name.
_NUMPY_MODULES = {"numpy.core.multiarray": ("numpy._core.multiarray", "numpy.core.multiarray"),
                  "numpy._core.multiarray": ("numpy._core.multiarray", "numpy.core.multiarray")}
_TRUST_HINT = (
    "If you trust this file, opt in explicitly: trust_checkpoint=True (mmseg teacher spec "
    "`teacher.trust_checkpoint=True`, detectron2 `MODEL.HYBRIDKT.TEACHER.TRUST_CHECKPOINT True`, "
    "or --trust-checkpoint on the tools); better, re-save its weights with "
    "torch.save(model.state_dict(), path) or as .safetensors."
)


class CheckpointFileError(HybridKTError, ValueError):
    """A checkpoint file is missing, unreadable, corrupt, unsafe, or not a checkpoint at all."""


class CheckpointNotFoundError(CheckpointFileError, FileNotFoundError):
    """No file at the checkpoint path (a FileNotFoundError too, as mmengine's loader raises)."""


class UntrustedCheckpointError(CheckpointFileError):
    """Reading the file would unpickle a class outside the allowlist (code could run)."""


class _Placeholder(dict):
    """Stands in for an allowlisted framework class that is not importable here.

    A user with mmseg weights but no mmengine must still get the tensors. Subclassing ``dict``
    and offering ``append``/``extend`` lets pickle rebuild dict- and list-like objects; no
    method runs anything of the file's.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()
        self.args, self.kwargs = args, kwargs
        self.items_list: list[Any] = []
        self.state: Any = None

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def append(self, item: Any) -> None:
        self.items_list.append(item)

    def extend(self, items: Sequence[Any]) -> None:
        self.items_list.extend(items)


def _resolve(qualified: str) -> Any | None:
    if qualified == "builtins.getattr":
        return history_buffer_getattr
    if qualified == "builtins.bytes":
        return empty_bytes
    module, _, name = qualified.rpartition(".")
    if name in ("_reconstruct", "scalar") and module in _NUMPY_MODULES:
        real = _resolve_importable(module, name)
        if real is None:
            return None
        guard = empty_array_reconstruct if name == "_reconstruct" else file_sized_scalar
        return guarded(guard, real)
    return _resolve_importable(module, name)


def _resolve_importable(module: str, name: str) -> Any | None:
    for candidate in _NUMPY_MODULES.get(module, (module,)):
        try:
            return getattr(importlib.import_module(candidate), name)
        except (ImportError, AttributeError):
            continue
    return None


def _placeholder(qualified: str) -> type:
    module, _, name = qualified.rpartition(".")
    return type(name, (_Placeholder,), {"__module__": module})


def _safe_globals(use_placeholders: bool) -> list[tuple[Any, str]]:
    """(object, recorded name) pairs of FRAMEWORK_GLOBALS; placeholders where not importable."""
    pairs = []
    for qualified in FRAMEWORK_GLOBALS:
        obj = _resolve(qualified)
        if obj is None and use_placeholders:
            obj = _placeholder(qualified)
        if obj is not None:
            pairs.append((obj, qualified))
    return pairs


def allow_framework_checkpoints() -> None:
    """Lets the frameworks' own ``torch.load`` calls read their checkpoints with weights_only.

    mmengine 0.10.7 calls ``torch.load`` without ``weights_only`` (resume, ``load_from``), which
    torch >= 2.6 turns on; its checkpoints then fail on ``HistoryBuffer``. Adding exactly the
    allowlisted classes keeps torch's protection for everything else, instead of switching it
    off with ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD``. Idempotent.
    """
    torch.serialization.add_safe_globals(_safe_globals(use_placeholders=False))


class _RestrictedUnpickler(pickle.Unpickler):
    """Rebuilds containers and numpy arrays; refuses every other global the pickle names.

    Args:
        file: the open pickle.
        size: the file's size in bytes: what ``_codecs.encode`` may produce in all.
    """

    _allowed = frozenset(FRAMEWORK_GLOBALS + _PKL_EXTRA_GLOBALS)

    def __init__(self, file: Any, size: int, **kwargs: Any) -> None:
        super().__init__(file, **kwargs)
        self._encode_budget = size

    def find_class(self, module: str, name: str) -> Any:
        # Python 2 names (protocol <= 2 pickles), mapped as pickle.Unpickler maps them; no
        # Python 3 name is a key of these tables.
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        elif module in _compat_pickle.IMPORT_MAPPING:
            module = _compat_pickle.IMPORT_MAPPING[module]
        qualified = f"{module}.{name}"
        if qualified not in self._allowed:
            raise _Refused([qualified])
        if qualified == "_codecs.encode":
            return self._latin1_encode
        if qualified == "numpy.ndarray":
            return NdarrayName
        obj = _resolve(qualified)
        return obj if obj is not None else _placeholder(qualified)

    def _latin1_encode(self, text: Any, encoding: Any = "utf-8", *rest: Any) -> bytes:
        """``_codecs.encode`` as protocol-2 pickles use it: latin-1 text the file holds.

        Each call copies its text, and a pickle can pass the same text to thousands of calls:
        what all calls produce together may not exceed the file's own size.
        """
        if rest or not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
            raise RefusedCall(f"_codecs.encode({describe(text)}, {describe(encoding)})")
        self._encode_budget -= len(text)
        if self._encode_budget < 0:
            raise RefusedCall("_codecs.encode for more bytes than the file holds")
        return text.encode("latin1")


class _TolerantUnpickler(pickle.Unpickler):
    """Full unpickling (trusted files only); unimportable classes become placeholders."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return super().find_class(module, name)
        except (ImportError, AttributeError):
            return _placeholder(f"{module}.{name}")


# torch.load's ``pickle_module`` only needs ``Unpickler``, ``load`` and ``__name__``.
_tolerant_pickle = types.ModuleType("_tolerant_pickle")
_tolerant_pickle.Unpickler = _TolerantUnpickler  # type: ignore[attr-defined]
_tolerant_pickle.load = lambda f, **kw: _TolerantUnpickler(f, **kw).load()  # type: ignore


class _Refused(Exception):
    def __init__(self, names: Sequence[str]) -> None:
        super().__init__(", ".join(names))
        self.names = list(names)


def _call_refusal(path: str, call: str) -> UntrustedCheckpointError:
    return UntrustedCheckpointError(
        f"{path}: untrusted file: its pickle asks for {call}, which no legitimate checkpoint "
        "does (it reaches beyond the weights or allocates more than the file holds), so "
        f"nothing of it was run or allocated. {_TRUST_HINT}"
    )


def _refusal(path: str, names: Sequence[str]) -> UntrustedCheckpointError:
    shown = ", ".join(f"`{n}`" for n in names[:5])
    more = f" (and {len(names) - 5} more)" if len(names) > 5 else ""
    return UntrustedCheckpointError(
        f"{path}: refusing to unpickle {shown}{more}: only tensors, plain containers and the "
        "classes of mmengine/detectron2 checkpoints are read, because unpickling any other "
        f"class can run code from the file. {_TRUST_HINT}"
    )


def _first_sentence(err: BaseException) -> str:
    # torch's weights-only failure goes on for lines and advises weights_only=False, which is
    # exactly the unsafe load this reader exists to avoid: keep only what went wrong.
    text = str(err).strip().split("\n")[0]
    return text.split(". In PyTorch 2.6")[0]


def _not_a_checkpoint(path: str, err: BaseException, error: type[CheckpointFileError]
                      ) -> CheckpointFileError:
    return error(
        f"{path}: cannot read it as a checkpoint ({type(err).__name__}: "
        f"{_first_sentence(err)}). The file is "
        "corrupt, truncated (re-download or re-save it) or not a checkpoint at all; pass a "
        "file written by torch.save, safetensors, mmengine or detectron2 (detectron2 "
        "model-zoo pickles must keep their .pkl suffix)."
    )


def _check_file(path: str, error: type[CheckpointFileError]) -> None:
    """A readable, non-empty regular file, or an error that says which of those it is not."""
    try:
        info = os.stat(path)
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise error(f"{path}: the path is a symbolic-link loop; point it at the real "
                        "checkpoint file.") from None
        if err.errno == errno.EACCES:
            raise error(f"{path}: permission denied while looking the file up; make its "
                        "folder readable (chmod) or copy the file elsewhere.") from None
        missing = CheckpointNotFoundError if error is CheckpointFileError else error
        raise missing(f"{path}: no such file; check the checkpoint path (it is resolved "
                      f"relative to {os.getcwd()}).") from None
    if not os.path.isfile(path):
        raise error(f"{path}: not a file; pass the checkpoint file itself.")
    if not os.access(path, os.R_OK):
        raise error(f"{path}: permission denied (the file exists but is not readable by this "
                    "user); make it readable (chmod u+r) or copy it elsewhere.")
    if info.st_size == 0:
        raise error(f"{path}: the file is empty (0 bytes), probably an interrupted download "
                    "or save; download or save the checkpoint again.")


def _refused_call_in(err: BaseException) -> str | None:
    """What a guarded callable refused, when that is why torch's unpickler failed."""
    found = re.search(REFUSED_CALL + r"(.+?)(?:\n|$)", str(err))
    return found.group(1).strip() if found else None


def _globals_in_pickle(path: str) -> list[str]:
    """The globals a raw pickle names, read by disassembling it (nothing is run)."""
    names: list[str] = []
    strings: list[str] = []
    try:
        with open(path, "rb") as f:
            # torch's legacy format is several pickles in a row, then raw tensor bytes (on
            # which disassembly stops).
            while f.peek(1):
                for opcode, arg, _ in pickletools.genops(f):
                    if opcode.name == "GLOBAL":
                        names.append(str(arg).replace(" ", "."))
                    elif opcode.name == "STACK_GLOBAL" and len(strings) >= 2:
                        names.append(f"{strings[-2]}.{strings[-1]}")
                    elif isinstance(arg, str):
                        strings.append(arg)
    except Exception:  # noqa: BLE001 - not (or no longer) a pickle: keep what was found
        pass
    return list(dict.fromkeys(names))


def _torch_allowed_globals() -> set[str]:
    try:  # private in torch 2.13; without it, torch's own names are simply not filtered
        from torch._weights_only_unpickler import _get_allowed_globals
        return set(_get_allowed_globals())
    except Exception:  # noqa: BLE001
        return set()


def _unsafe_globals(path: str, err: pickle.UnpicklingError) -> list[str]:
    if zipfile.is_zipfile(path):
        names = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    else:  # torch's legacy format or a raw pickle: disassemble it
        names = _globals_in_pickle(path) or re.findall(r"GLOBAL ([\w.]+)", str(err))
    safe = set(FRAMEWORK_GLOBALS) | _torch_allowed_globals()
    return [n for n in names if n not in safe]


def _read_torch(path: str, trust: bool, map_location: Any,
                error: type[CheckpointFileError]) -> Any:
    if trust:
        try:
            return torch.load(path, map_location=map_location, weights_only=False,
                              pickle_module=_tolerant_pickle)
        except Exception as err:
            raise _not_a_checkpoint(path, err, error) from err
    # The context removes what it added on exit: add only what is not registered process-wide
    # (allow_framework_checkpoints), or leaving it would unregister those.
    registered = set(torch.serialization.get_safe_globals())
    extra = [g for g in _safe_globals(use_placeholders=True) if g not in registered]
    try:
        with torch.serialization.safe_globals(extra):
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        refused_call = _refused_call_in(err)
        if refused_call is not None:
            raise _call_refusal(path, refused_call) from None
        names = _unsafe_globals(path, err)
        if names:
            raise _refusal(path, names) from None
        raise _not_a_checkpoint(path, err, error) from err
    except Exception as err:  # e.g. RuntimeError for a truncated zip, KeyError for text
        raise _not_a_checkpoint(path, err, error) from err


def _read_pickle(path: str, trust: bool, error: type[CheckpointFileError]) -> Any:
    # detectron2's model-zoo format, read as detectron2's Checkpointer reads it (latin1 lets
    # Python 3 read numpy arrays pickled by Python 2), but with the restricted unpickler.
    size = os.path.getsize(path)
    unpickler: Callable[..., pickle.Unpickler] = _TolerantUnpickler if trust \
        else functools.partial(_RestrictedUnpickler, size=size)
    try:
        with open(path, "rb") as f:
            return unpickler(f, encoding="latin1").load()
    except _Refused as refused:
        raise _refusal(path, refused.names) from None
    except RefusedCall as refused:
        raise _call_refusal(path, refused.call) from None
    except Exception as err:  # pickle reports corruption with many exception types
        raise _not_a_checkpoint(path, err, error) from err


def _read_safetensors(path: str, error: type[CheckpointFileError]) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(path, device="cpu")
    except (SafetensorError, OSError, ValueError) as err:
        raise _not_a_checkpoint(path, err, error) from err


def read_checkpoint_file(path: str | os.PathLike[str], trust: bool = False,
                         map_location: Any = "cpu",
                         error: type[CheckpointFileError] = CheckpointFileError) -> Any:
    """Reads a whole checkpoint file without running code from it (unless ``trust``).

    Args:
        path: a ``.safetensors`` file, a detectron2 ``.pkl``, or a file written by
            ``torch.save`` (plain state dicts, mmengine and detectron2 checkpoints).
        trust: unpickle any class the file names. Only for files you trust: a pickle can run
            arbitrary code.
        map_location: as ``torch.load``'s (tensors land on the CPU by default).
        error: the error class to raise (callers pass a subclass such as the teacher's).

    Returns:
        The file's content: a ``{name: tensor}`` dict for safetensors, otherwise whatever was
        saved (numpy arrays stay numpy arrays).

    Raises:
        CheckpointNotFoundError: no file at ``path`` (``error`` itself for subclasses).
        UntrustedCheckpointError: the file names a class outside the allowlist and ``trust``
            is False; the message names the class and the opt-in.
        CheckpointFileError: the path is unreadable, empty, corrupt or not a checkpoint.
    """
    path = os.fspath(path)
    if not isinstance(trust, bool):  # bool("False") is True: refuse a quoted flag
        raise ValueError(f"trust_checkpoint must be True or False, got {trust!r}.")
    _check_file(path, error)
    if path.endswith(".safetensors"):
        return _read_safetensors(path, error)
    # A torch file is a zip archive whatever its name: read it as one (unpickling its
    # data.pkl alone fails on the tensors' persistent ids, which reads as corruption).
    if path.endswith(".pkl") and not zipfile.is_zipfile(path):
        return _read_pickle(path, trust, error)
    return _read_torch(path, trust, map_location, error)
