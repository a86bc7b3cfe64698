"""The package as a user installs it: a normal wheel (configs inside), in a fresh virtual
environment beside the already-installed stack, used from outside the clone.

The wheel is built from this checkout without network (``--no-build-isolation``) and installed
with ``--no-deps``; the stack (torch, mmcv, mmseg, ...) is this environment's, seen through a
``.pth`` line, so nothing is downloaded. The clone's editable install is not visible there
(its finder is a ``.pth`` of this environment, which a plain path line does not run).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

pytest.importorskip("mmseg.models", reason="MMSegmentation (with mmcv ops) is not installed")

REPO = Path(__file__).resolve().parents[1]
HYBRID = "mmseg/deeplabv3_r18w8-d8_hybrid-r18w16-d8_1xb4-400_synthetic-cityscapes-64x128.py"
TWO_ITERATIONS = ["--cfg-options", "train_cfg.max_iters=2", "train_cfg.val_interval=2",
                  "default_hooks.logger.interval=1"]


def _run(command: list, cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(PYTHONWARNINGS="ignore", OMP_NUM_THREADS="1", MPLBACKEND="Agg")
    done = subprocess.run([str(c) for c in command], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)
    assert done.returncode == 0, f"{command}:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    return done


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A fresh venv with the wheel of this checkout; returns the venv's folder."""
    root = tmp_path_factory.mktemp("wheel")
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
          "-w", root / "dist", REPO], cwd=root)
    (wheel,) = (root / "dist").glob("hybridkt_ext-*.whl")
    venv = root / "venv"
    _run([sys.executable, "-m", "venv", venv], cwd=root)
    python = venv / "bin" / "python"
    site = Path(_run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                     cwd=root).stdout.strip())
    stack = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (site / "the_stack.pth").write_text("\n".join(sorted(stack)) + "\n")
    _run([python, "-m", "pip", "install", "--no-deps", "--no-index", "-q", wheel], cwd=root)
    return venv


def _scalars(work_dir: Path) -> list[dict]:
    (path,) = work_dir.glob("*/vis_data/scalars.json")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_the_wheel_holds_the_configs_and_the_console_commands(installed, tmp_path):
    where = _run([installed / "bin" / "python", "-c",
                  "import hybridkt_ext, hybridkt_ext.shipped_configs as s; "
                  f"print(hybridkt_ext.__file__); print(s.config_file({HYBRID!r}))"],
                 cwd=tmp_path).stdout.split()
    for path in where:  # the installed copy, not the clone
        assert Path(path).resolve().is_relative_to(installed.resolve()), path
    for command in ("train-seg", "test-seg", "train-det", "test-det", "train-net", "train-cls",
                    "demo-seg", "export-seg-student", "plot-alpha", "reproduce", "benchmark",
                    "backbone-coverage"):
        assert (installed / "bin" / f"hybridkt-{command}").is_file(), command


def test_the_installed_command_trains_a_shipped_config_from_outside_the_clone(installed,
                                                                            tmp_path):
    ask = f"from hybridkt_ext.shipped_configs import config_file as f; print(f({HYBRID!r}))"
    config = _run([installed / "bin" / "python", "-c", ask], cwd=tmp_path).stdout.strip()
    _run([installed / "bin" / "hybridkt-train-seg", config, "--work-dir", tmp_path / "run",
          *TWO_ITERATIONS], cwd=tmp_path)
    assert (tmp_path / "run" / "iter_2.pth").is_file()
    assert [r["hkt_alpha"] > 0 for r in _scalars(tmp_path / "run") if "hkt_alpha" in r] == \
        [True, True]
    assert (tmp_path / "data" / "synthetic_cityscapes").is_dir()  # generated where the user is


def test_mmsegs_own_train_tool_trains_a_converted_config_through_custom_imports(installed,
                                                                              tmp_path):
    import mmseg

    train = Path(mmseg.__file__).parent / ".mim" / "tools" / "train.py"
    assert train.is_file(), "mmseg ships tools/train.py inside its package"
    config = REPO / "configs" / HYBRID  # custom_imports = ['hybridkt_ext.for_mmseg']
    _run([installed / "bin" / "python", train, config, "--work-dir", tmp_path / "run",
          *TWO_ITERATIONS], cwd=tmp_path)
    rows = [r for r in _scalars(tmp_path / "run") if "hkt_alpha" in r]
    assert len(rows) == 2 and all({"hkt_L1", "hkt_L2", "hkt_L3"} <= set(r) for r in rows)
    assert (tmp_path / "run" / "iter_2.pth").is_file()
