"""Reading checkpoint files never runs code from them unless the caller opts in.

Each hostile file below carries a pickle that would create a marker file when unpickled. The
tests check that reading it refuses with a message naming the class and the opt-in, that the
marker never appears, and (so the payload is known to be live) that it does appear once the
caller passes ``trust=True``.
"""
from __future__ import annotations

import errno
import os
import pickle
import subprocess
import sys
import types

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from hybridkt_ext.core import (CheckpointFileError, CheckpointNotFoundError, HybridKTError,
                               TeacherCheckpointError, UntrustedCheckpointError,
                               allow_framework_checkpoints, load_teacher_weights, read_checkpoint,
                               read_checkpoint_file)
from hybridkt_ext.core.checkpoint_file import FRAMEWORK_GLOBALS


class _CreatesFile:
    """Unpickling this runs ``os.system("touch <marker>")``: what a hostile checkpoint does."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _weights() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return nn.Linear(3, 2).state_dict()


def _hostile(tmp_path, suffix: str, **save_kwargs) -> tuple[str, str]:
    marker = str(tmp_path / "code_ran")
    path = str(tmp_path / f"teacher{suffix}")
    content = {"state_dict": _weights(), "meta": {"note": _CreatesFile(marker)}}
    if suffix == ".pkl":
        content["state_dict"] = {k: v.numpy() for k, v in content["state_dict"].items()}
        with open(path, "wb") as f:
            pickle.dump(content, f, **save_kwargs)
    else:
        torch.save(content, path, **save_kwargs)
    return path, marker


@pytest.mark.parametrize("suffix, save_kwargs", [
    (".pth", {}),
    (".pth", {"_use_new_zipfile_serialization": False}),  # torch's legacy format
    (".pkl", {"protocol": 2}),  # detectron2 model-zoo pickles
    (".pkl", {"protocol": 4}),
])
def test_a_hostile_checkpoint_runs_no_code(tmp_path, suffix, save_kwargs):
    path, marker = _hostile(tmp_path, suffix, **save_kwargs)
    with pytest.raises(UntrustedCheckpointError) as info:
        load_teacher_weights(nn.Linear(3, 2), path)
    message = str(info.value)
    assert not os.path.exists(marker)
    assert path in message and "system" in message  # os.system pickles as posix.system
    assert "trust_checkpoint=True" in message and "--trust-checkpoint" in message
    assert isinstance(info.value, HybridKTError)
    # The payload is live: the explicit opt-in runs it, which is what the refusal prevents.
    read_checkpoint(path, trust=True)
    assert os.path.exists(marker)


def test_trust_must_be_a_real_boolean(tmp_path):
    path = tmp_path / "w.pth"
    torch.save(_weights(), path)
    with pytest.raises(ValueError, match="True or False"):
        read_checkpoint_file(path, trust="False")


def test_a_whole_pickled_module_is_refused_with_the_state_dict_fix(tmp_path):
    torch.save(nn.Linear(2, 2), tmp_path / "m.pth")
    with pytest.raises(UntrustedCheckpointError, match=r"torch\.nn\.modules\.linear\.Linear"):
        read_checkpoint(tmp_path / "m.pth")
    with pytest.raises(UntrustedCheckpointError, match=r"state_dict\(\)"):
        read_checkpoint(tmp_path / "m.pth")


# ----------------------------------------------------------------------------- what is allowed
def test_numpy_values_in_a_torch_checkpoint_are_read(tmp_path):
    torch.save({"state_dict": _weights(), "meta": {"seed": np.int64(3), "lr": np.float64(0.1),
                                                    "hist": np.arange(4.0)}}, tmp_path / "c.pth")
    saved = read_checkpoint_file(tmp_path / "c.pth")
    assert saved["meta"]["seed"] == 3 and saved["meta"]["hist"].tolist() == [0, 1, 2, 3]


def test_a_detectron2_pkl_with_containers_is_read(tmp_path):
    model = {k: v.numpy() for k, v in _weights().items()}
    content = {"model": model, "__author__": "Detectron2 Model Zoo", "matching_heuristics": True,
               "extra": {"ids": {1, 2}, "frozen": frozenset({3}), "raw": b"\x00\xff"}}
    with open(tmp_path / "m.pkl", "wb") as f:
        pickle.dump(content, f, protocol=2)
    saved = read_checkpoint_file(tmp_path / "m.pkl")
    assert saved["extra"]["ids"] == {1, 2} and saved["extra"]["raw"] == b"\x00\xff"
    assert np.array_equal(saved["model"]["weight"], model["weight"])


def _history_buffer_module(monkeypatch) -> type:
    """A class recorded under mmengine's HistoryBuffer name, importable while saving."""
    name = "mmengine.logging.history_buffer"
    module = sys.modules.get(name)
    if module is not None:
        return module.HistoryBuffer
    fake = types.ModuleType(name)

    class HistoryBuffer:
        def __init__(self) -> None:
            self._log_history = np.array([0.5, 0.4])

    HistoryBuffer.__module__ = name
    fake.HistoryBuffer = HistoryBuffer
    monkeypatch.setitem(sys.modules, name, fake)
    return HistoryBuffer


def test_an_mmengine_checkpoint_is_read_without_trust(tmp_path, monkeypatch):
    assert "mmengine.logging.history_buffer.HistoryBuffer" in FRAMEWORK_GLOBALS
    buffer_cls = _history_buffer_module(monkeypatch)
    path = tmp_path / "iter_80000.pth"
    torch.save({"meta": {"iter": 80000}, "message_hub": {"log_scalars": {"loss": buffer_cls()}},
                "state_dict": {f"backbone.{k}": v for k, v in _weights().items()}}, path)
    dst = nn.Linear(3, 2)
    load_teacher_weights(dst, path, prefix="backbone.")
    assert torch.equal(dst.weight, _weights()["weight"])


def test_an_mmengine_checkpoint_is_read_where_mmengine_is_missing(tmp_path, monkeypatch):
    buffer_cls = _history_buffer_module(monkeypatch)
    path = tmp_path / "iter_4.pth"
    torch.save({"message_hub": {"buf": buffer_cls()}, "state_dict": _weights()}, path)
    # None in sys.modules makes `import mmengine.logging.history_buffer` raise ImportError;
    # an mmseg adapter imported earlier in this process registered the real class: unregister.
    monkeypatch.setitem(sys.modules, "mmengine.logging.history_buffer", None)
    registered = torch.serialization.get_safe_globals()
    torch.serialization.clear_safe_globals()
    try:
        saved = read_checkpoint_file(path)
    finally:
        torch.serialization.add_safe_globals(registered)
    placeholder = saved["message_hub"]["buf"]
    assert type(placeholder).__name__ == "HistoryBuffer" and isinstance(placeholder, dict)
    assert torch.equal(saved["state_dict"]["weight"], _weights()["weight"])


def test_safetensors_files_are_read(tmp_path):
    save_file(_weights(), str(tmp_path / "model.safetensors"))
    dst = nn.Linear(3, 2)
    report = load_teacher_weights(dst, tmp_path / "model.safetensors")
    assert sorted(report.loaded) == ["bias", "weight"]
    assert torch.equal(dst.weight, _weights()["weight"])


def test_a_corrupt_safetensors_file_says_so(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}")
    with pytest.raises(CheckpointFileError, match="cannot read it as a checkpoint"):
        read_checkpoint(tmp_path / "model.safetensors")


# ----------------------------------------------------------------------------- values
def test_integer_weights_for_a_float_teacher_are_refused(tmp_path):
    torch.save({k: (v * 10).to(torch.int8) for k, v in _weights().items()}, tmp_path / "q.pth")
    with pytest.raises(TeacherCheckpointError, match=r"'(weight|bias)' holds torch\.int8"):
        load_teacher_weights(nn.Linear(3, 2), tmp_path / "q.pth")


def test_non_finite_weights_are_refused_naming_the_key(tmp_path):
    weights = _weights()
    weights["bias"][1] = float("nan")
    torch.save(weights, tmp_path / "nan.pth")
    dst = nn.Linear(3, 2)
    before = dst.weight.clone()
    with pytest.raises(TeacherCheckpointError, match=r"'bias' holds 1 non-finite value"):
        load_teacher_weights(dst, tmp_path / "nan.pth")
    assert torch.equal(dst.weight, before)  # nothing was loaded


def test_integer_buffers_stay_integers(tmp_path):
    bn = nn.BatchNorm2d(2)
    torch.save(bn.state_dict(), tmp_path / "bn.pth")
    report = load_teacher_weights(nn.BatchNorm2d(2), tmp_path / "bn.pth")
    assert "num_batches_tracked" in report.loaded


# ----------------------------------------------------------------------------- file errors
def test_a_missing_file_is_also_a_file_not_found_error(tmp_path):
    with pytest.raises(CheckpointNotFoundError, match="no such file") as info:
        read_checkpoint_file(tmp_path / "nope.pth")
    assert isinstance(info.value, FileNotFoundError)


def test_a_symlink_loop_is_named(tmp_path):
    os.symlink(tmp_path / "b.pth", tmp_path / "a.pth")
    os.symlink(tmp_path / "a.pth", tmp_path / "b.pth")
    with pytest.raises(CheckpointFileError, match="symbolic-link loop"):
        read_checkpoint_file(tmp_path / "a.pth")


def test_an_unreadable_file_is_permission_denied_not_corrupt(tmp_path, monkeypatch):
    path = tmp_path / "w.pth"
    torch.save(_weights(), path)
    # The suite may run as root, for whom chmod does not deny reads: deny through os.access.
    monkeypatch.setattr(os, "access", lambda p, mode: os.fspath(p) != str(path))
    with pytest.raises(CheckpointFileError, match="permission denied") as info:
        read_checkpoint_file(path)
    assert "corrupt" not in str(info.value)


def test_an_unsearchable_folder_is_permission_denied(tmp_path, monkeypatch):
    real_stat = os.stat

    def denied(path, *args, **kwargs):
        if os.fspath(path).startswith(str(tmp_path / "locked")):
            raise PermissionError(errno.EACCES, "Permission denied", os.fspath(path))
        return real_stat(path, *args, **kwargs)

    monkeypatch.setattr(os, "stat", denied)
    with pytest.raises(CheckpointFileError, match="permission denied while looking"):
        read_checkpoint_file(tmp_path / "locked" / "w.pth")


class _GetattrGadget:
    """``getattr(getattr, "__self__")`` is the builtins module: a first step to eval/exec."""

    def __reduce__(self):
        return getattr, (getattr, "__self__")


@pytest.mark.parametrize("suffix", [".pth", ".pkl"])
def test_getattr_is_allowed_only_for_history_buffer_methods(tmp_path, suffix):
    path = tmp_path / f"g{suffix}"
    if suffix == ".pkl":
        model = {k: v.numpy() for k, v in _weights().items()}
        path.write_bytes(pickle.dumps({"model": model, "x": _GetattrGadget()}, protocol=2))
    else:
        torch.save({"state_dict": _weights(), "x": _GetattrGadget()}, path)
    with pytest.raises(UntrustedCheckpointError) as info:
        read_checkpoint_file(path)
    # Untrusted, naming what was asked for; not "corrupt, re-download it".
    assert str(info.value).startswith(
        f"{path}: untrusted file: its pickle asks for getattr(getattr, '__self__'), which no "
        "legitimate checkpoint does")
    assert "corrupt" not in str(info.value)


class _Call:
    """Unpickles as ``function(*args)``: how a pickle calls an allowed callable."""

    def __init__(self, function, *args) -> None:
        self.function, self.args = function, args

    def __reduce__(self):
        return self.function, self.args


def _mmengine_history_buffer():
    return pytest.importorskip("mmengine.logging.history_buffer").HistoryBuffer


@pytest.mark.parametrize("gadget, asked", [
    (lambda: _Call(getattr, _mmengine_history_buffer(), "__init__"),
     "getattr(mmengine.logging.history_buffer.HistoryBuffer, '__init__')"),
    (lambda: _Call(getattr, _Call(getattr, _mmengine_history_buffer(), "mean"), "__globals__"),
     "getattr(mmengine.logging.history_buffer.HistoryBuffer.mean, '__globals__')"),
])
def test_history_buffer_gadgets_are_untrusted_naming_the_lookup(tmp_path, gadget, asked):
    path = tmp_path / "g.pkl"
    path.write_bytes(pickle.dumps({"x": gadget()}, protocol=2))
    with pytest.raises(UntrustedCheckpointError) as info:
        read_checkpoint_file(path)
    assert f"untrusted file: its pickle asks for {asked}" in str(info.value)


def test_reading_keeps_the_process_wide_allowlist(tmp_path):
    allow_framework_checkpoints()
    before = set(torch.serialization.get_safe_globals())
    torch.save(_weights(), tmp_path / "w.pth")
    read_checkpoint_file(tmp_path / "w.pth")
    assert set(torch.serialization.get_safe_globals()) == before


# ------------------------------------------------------------------- no memory bomb from a file
class _Amplified:
    """``_codecs.encode(text, 'latin1')`` of text the pickle holds once and passes many times."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __reduce__(self):
        import codecs
        return codecs.encode, (self.text, "latin1")


def _bombs() -> dict[str, object]:
    text = "x" * 100_000  # pickled once, referenced by every call: 20,000 calls ask for 2 GB
    return {
        "bytes": _Call(bytes, 8_000_000_000),
        "hex": _Call(__import__("codecs").encode, _Call(bytes, 10**9), "hex"),
        "ndarray": _Call(np.ndarray, (10**12,)),
        "reconstruct": _Call(np._core.multiarray._reconstruct, np.ndarray, (10**12,), b"b"),
        "scalar": _Call(np._core.multiarray.scalar, np.dtype(("V", 10**9)), b""),
        "encode": [_Amplified(text) for _ in range(20_000)],
    }


_MEASURE = """
import resource, sys
from hybridkt_ext.core import UntrustedCheckpointError, read_checkpoint_file
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
for path in sys.argv[1:]:
    try:
        read_checkpoint_file(path)
        print("read")
    except UntrustedCheckpointError as err:
        print(err)
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)
"""
_ASKED = {
    "bytes": "bytes(8000000000)",
    "hex": "bytes(1000000000)",
    "ndarray": "numpy.ndarray((1000000000000,))",
    "reconstruct": "numpy _reconstruct(shape=(1000000000000,))",
    "scalar": "numpy scalar(dtype('V1000000000'), 1 argument(s))",
    "encode": "_codecs.encode for more bytes than the file holds",
}


def test_a_pickle_that_asks_for_gigabytes_is_refused_before_allocating(tmp_path):
    paths = []
    for name, bomb in _bombs().items():
        paths.append(tmp_path / f"{name}.pkl")
        paths[-1].write_bytes(pickle.dumps({"model": bomb}, protocol=2))
        assert paths[-1].stat().st_size < 1_000_000  # for gigabytes
    # One process for all: its peak memory is measured, and importing torch takes seconds.
    done = subprocess.run([sys.executable, "-c", _MEASURE, *map(str, paths)],
                          capture_output=True, text=True, timeout=300, check=True)
    *messages, grown_mib = done.stdout.strip().splitlines()
    for path, message in zip(paths, messages, strict=True):
        assert message.startswith(f"{path}: untrusted file: its pickle asks for "
                                  f"{_ASKED[path.stem]}, which no legitimate checkpoint does")
    assert int(grown_mib) < 100, f"reading grew the peak RSS by {grown_mib} MiB"


def test_a_raw_pickle_named_pth_is_refused_as_untrusted_naming_the_call(tmp_path):
    marker = tmp_path / "code_ran"
    path = tmp_path / "teacher.pth"
    path.write_bytes(pickle.dumps({"x": _CreatesFile(str(marker))}, protocol=2))
    with pytest.raises(UntrustedCheckpointError) as info:
        read_checkpoint_file(path)
    assert str(info.value).startswith(f"{path}: refusing to unpickle `posix.system`")
    assert "corrupt" not in str(info.value) and not marker.exists()


def test_a_torch_file_named_pkl_is_read_as_a_torch_file(tmp_path):
    torch.save({"model": _weights()}, tmp_path / "model_final.pkl")
    saved = read_checkpoint_file(tmp_path / "model_final.pkl")
    assert torch.equal(saved["model"]["weight"], _weights()["weight"])


def test_complex_weights_for_a_real_teacher_are_refused(tmp_path):
    complex_weights = {k: torch.complex(v, torch.ones_like(v)) for k, v in _weights().items()}
    torch.save(complex_weights, tmp_path / "c.pth")
    with pytest.raises(TeacherCheckpointError, match=r"'weight' holds torch\.complex64 values "
                       r"where the teacher has torch\.float32 weights"):
        load_teacher_weights(nn.Linear(3, 2), tmp_path / "c.pth")
