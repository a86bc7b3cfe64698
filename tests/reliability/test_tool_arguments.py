"""The tools refuse impossible arguments when they are parsed, and outputs they would replace
before any work: one line naming the flag, nothing measured, trained or written first."""
from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.conftest import REPO


def _tool(name: str):
    """The module behind tools/<name>.py and the hybridkt-<name> command."""
    if name == "benchmark":
        return importlib.import_module("hybridkt_ext.benchmark.training_cost")
    return importlib.import_module(f"hybridkt_ext.cli.{name}")


@pytest.fixture(scope="module")
def benchmark():
    return _tool("benchmark")


@pytest.mark.parametrize("args, message", [
    (["--repeats", "0"], "argument --repeats: must be an integer >= 1, got 0"),
    (["--warmup", "-1"], "argument --warmup: must be an integer >= 0, got -1"),
    (["--threads", "-1"], "argument --threads: must be an integer >= 0, got -1"),
    (["--device", "gpu0"], "argument --device: 'gpu0' is not a torch device"),
    (["--settings", ","], "--settings is empty"),
])
def test_benchmark_refuses_bad_arguments_before_measuring(benchmark, capsys, args, message):
    with pytest.raises(SystemExit) as stop:
        benchmark.main(args)
    assert stop.value.code == 2 and message in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal without a GPU")
def test_benchmark_refuses_cuda_on_a_machine_without_one(benchmark, capsys):
    with pytest.raises(SystemExit) as stop:
        benchmark.main(["--device", "cuda"])
    assert stop.value.code == 2
    assert "argument --device: cuda: this machine has no CUDA GPU" in capsys.readouterr().err


def test_benchmark_json_output_is_checked_before_measuring(benchmark, tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        benchmark.main(["--json", str(tmp_path)])
    assert stop.value.code == 2 and f"--json {tmp_path} is a folder" in capsys.readouterr().err
    (tmp_path / "perf.json").write_text("earlier results")
    with pytest.raises(SystemExit):
        benchmark.main(["--json", str(tmp_path / "perf.json")])
    assert "exists; pass --overwrite" in capsys.readouterr().err
    assert (tmp_path / "perf.json").read_text() == "earlier results"


def test_reproduce_writes_into_work_dirs_by_default_and_keeps_what_out_holds(tmp_path):
    reproduce = _tool("reproduce")
    assert reproduce.parse_args(["--quick"]).out == Path("work_dirs/reproduce/results")
    summary = tmp_path / "summary.json"
    summary.write_text(json.dumps({"classification": {"quick": False}}))
    with pytest.raises(SystemExit) as stop:
        reproduce.main(["--experiments", "classification", "--quick", "--out", str(tmp_path),
                        "--work-dir", str(tmp_path / "work")])
    assert stop.value.code == (
        f"reproduce: FileExistsError: {tmp_path} already holds the results of "
        "['classification']; pass --overwrite to replace them, or another --out.")
    assert json.loads(summary.read_text()) == {"classification": {"quick": False}}
    assert not (tmp_path / "work").exists()


def test_reproduce_refuses_bad_counts(capsys):
    reproduce = _tool("reproduce")
    for flag in ("--seeds", "--jobs", "--threads", "--iters"):
        with pytest.raises(SystemExit) as stop:
            reproduce.parse_args([flag, "0"])
        assert stop.value.code == 2
        assert f"argument {flag}: must be an integer >= 1, got 0" in capsys.readouterr().err


def test_train_cls_refuses_an_unwritable_work_dir_before_loading_data(tmp_path, monkeypatch):
    train_cls = _tool("train_cls")
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: False if Path(path) == tmp_path / "ro"
                        else real_access(path, mode))
    with pytest.raises(SystemExit) as stop:
        train_cls.main(["--modes", "none", "--work-dir", str(tmp_path / "ro")])
    assert stop.value.code == (f"train_cls: PermissionError: --work-dir {tmp_path / 'ro'} is "
                               "not writable; choose another folder.")
    assert not list((tmp_path / "ro").iterdir())


def test_demo_seg_refuses_a_folder_holding_a_previous_demo(tmp_path):
    pytest.importorskip("mmseg")
    demo_seg = _tool("demo_seg")
    (tmp_path / "results.json").write_text("[]")
    with pytest.raises(SystemExit) as stop:
        demo_seg.main(["--work-dir", str(tmp_path), "--iters", "1", "--teacher-iters", "1"])
    assert stop.value.code == (f"demo_seg: FileExistsError: {tmp_path} holds a previous demo "
                               "(results.json); pass --overwrite to replace it, or another "
                               "--work-dir.")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.json"]


def test_plot_alpha_refuses_to_replace_a_file_unless_asked(tmp_path):
    plot_alpha = _tool("plot_alpha")
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.json").write_text(json.dumps({"iteration": 1, "hkt_alpha": 1.0}) + "\n")
    (tmp_path / "mine.png").write_bytes(b"a plot of mine")
    with pytest.raises(SystemExit) as stop:
        plot_alpha.main([str(run), "--out", str(tmp_path / "mine.png")])
    assert "mine.png exists; pass --overwrite" in str(stop.value.code)
    assert (tmp_path / "mine.png").read_bytes() == b"a plot of mine"
    plot_alpha.main([str(run), "--out", str(tmp_path / "mine.png"), "--overwrite"])
    assert (tmp_path / "mine.png").read_bytes().startswith(b"\x89PNG")


@pytest.mark.parametrize("name", ["train_seg", "test_seg", "train_det", "test_det",
                                  "export_seg_student", "demo_seg", "train_cls", "reproduce",
                                  "plot_alpha"])
def test_every_tool_offers_debug_for_the_traceback(name, capsys):
    if name.endswith("_seg") or name == "export_seg_student":
        pytest.importorskip("mmseg")
    if name.endswith("_det"):
        pytest.importorskip("mmdet")
    tool = _tool(name)
    with pytest.raises(SystemExit) as stop:
        (getattr(tool, "parse_args", None) or tool.main)(["--help"])
    assert stop.value.code == 0 and "--debug" in capsys.readouterr().out


def _run_tool(name: str, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "tools" / f"{name}.py"), *args],
                          cwd=cwd or REPO, capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, PYTHONWARNINGS="ignore", MPLBACKEND="Agg"))


def _files(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (links as what they point to), by relative path."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


@pytest.mark.parametrize("onto", ["the log", "a symlink to it", "a hard link to it",
                                  "a newer log's place", "metrics.json"])
def test_plot_alpha_never_writes_onto_a_run_log(tmp_path, onto):
    run = tmp_path / "run"
    log = run / "20240101_000000" / "vis_data" / "scalars.json"
    log.parent.mkdir(parents=True)
    log.write_text(json.dumps({"step": 1, "hkt_alpha": 1.0}) + "\n")
    out = {"the log": log, "a symlink to it": tmp_path / "link.json",
           "a hard link to it": tmp_path / "hard.json",
           "a newer log's place": run / "20991231_000000" / "vis_data" / "scalars.json",
           "metrics.json": run / "metrics.json"}[onto]
    if onto == "a symlink to it":
        out.symlink_to(log)
    if onto == "a hard link to it":
        os.link(log, out)
    before = _files(tmp_path)
    done = _run_tool("plot_alpha", str(run), "--out", str(out), "--overwrite")
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"plot_alpha: OutputIsInputError: {out} is")
    assert str(run) in lines[0] and "Traceback" not in done.stderr
    assert _files(tmp_path) == before  # the log, and every link to it, byte for byte
    assert out.is_symlink() == (onto == "a symlink to it")


def test_reproduce_and_demo_seg_write_nothing_into_the_data_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HYBRIDKT_DATA", raising=False)
    (tmp_path / "data" / "synthetic_gta5").mkdir(parents=True)
    with pytest.raises(SystemExit) as stop:
        _tool("reproduce").main(["--experiments", "classification", "--quick", "--out",
                                 "data/synthetic_gta5", "--overwrite"])
    assert stop.value.code == (
        "reproduce: OutputIsInputError: data/synthetic_gta5 is inside data, a folder reproduce "
        "reads files from; write the output outside it (it could replace or be read as one of "
        "them).")
    assert not list((tmp_path / "data" / "synthetic_gta5").iterdir())
    assert not (tmp_path / "work_dirs").exists()
    pytest.importorskip("mmseg")
    with pytest.raises(SystemExit) as stop:
        _tool("demo_seg").main(["--work-dir", "data/synthetic_gta5/run", "--data-root", "data",
                                "--iters", "1", "--teacher-iters", "1", "--overwrite"])
    assert stop.value.code.startswith("demo_seg: OutputIsInputError: data/synthetic_gta5/run "
                                      "is inside data, a folder demo_seg reads files from")
    assert not list((tmp_path / "data" / "synthetic_gta5").iterdir())


def test_test_det_never_dumps_onto_its_checkpoint(tmp_path):
    pytest.importorskip("mmdet")
    checkpoint = tmp_path / "model.pkl"
    checkpoint.write_bytes(b"the only copy of the weights")
    os.link(checkpoint, tmp_path / "dets.pkl")
    config = (REPO / "configs" / "mmdet"
              / "faster-rcnn_mobilenetv1_fpn_hybrid-r18_synthetic-citypersons.py")
    for out in (checkpoint, tmp_path / "dets.pkl"):
        done = _run_tool("test_det", str(config), str(checkpoint), "--out", str(out),
                         "--work-dir", str(tmp_path / "work"))
        assert done.returncode == 1
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(
            f"test_det: OutputIsInputError: {out} is {checkpoint}")
    assert checkpoint.read_bytes() == b"the only copy of the weights"
    assert (tmp_path / "dets.pkl").read_bytes() == b"the only copy of the weights"
    assert not (tmp_path / "work").exists()
