"""tools/train_net.py as a user runs it: train a synthetic config, then --eval-only; and every
mistake in its arguments or config as one line on stderr, exit status 1, nothing written.

The cases that need no detectron2 (no arguments, a missing config file) also run with detectron2
blocked, so they run (and say what to install) where it is absent.
"""
from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

CONFIGS = REPO / "configs" / "detectron2"
SYNTHETIC = CONFIGS / "hybridkt-mobilenetv1-fpn-synthetic.yaml"
LAZY_SYNTHETIC = CONFIGS / "lazy" / "retinanet_R_50_FPN_hybrid_synthetic.py"
SETUPS = ("MR2_Reasonable", "MR2_Reasonable_small", "MR2_Reasonable_occ=heavy", "MR2_All")
needs_detectron2 = pytest.mark.skipif(
    importlib.util.find_spec("detectron2") is None,
    reason="detectron2 is not installed (source-only; see README)")
# Runs tools/train_net.py as `python tools/train_net.py`, with detectron2 unimportable.
WITHOUT_DETECTRON2 = ("import runpy, sys; sys.modules['detectron2'] = None; "
                      "sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')")
DETECTRON2 = [pytest.param("installed", marks=needs_detectron2), "blocked"]


def _env(tmp_path: Path) -> dict[str, str]:
    # pkg_resources' deprecation warning (printed by an import in detectron2's LazyConfig
    # loader) is the environment's, not the tool's: it is not part of the one line checked.
    return dict(os.environ, HYBRIDKT_DATA=str(tmp_path / "data"), OMP_NUM_THREADS="1",
                PYTHONPATH=str(REPO), PYTHONWARNINGS="ignore:pkg_resources is deprecated")


def _train_net(*args, env):
    done = subprocess.run([sys.executable, str(REPO / "tools" / "train_net.py"), *args],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout + done.stderr


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


TORCH_NO_CUDA_NOTICE = re.compile(r"^W\d{4} .*cpp_extension\.py:\d+\] No CUDA runtime is found")


def _refused(tmp_path: Path, *args: str, detectron2: str = "installed") -> str:
    """Runs the tool in ``tmp_path`` (its default ./output included); returns its one line.

    Checks exit status 1, a single stderr line starting ``train_net:`` (no traceback) and that
    no file in ``tmp_path`` was created, changed or removed.
    """
    before = _files(tmp_path)
    launcher = ["-c", WITHOUT_DETECTRON2] if detectron2 == "blocked" else []
    done = subprocess.run([sys.executable, *launcher, str(REPO / "tools" / "train_net.py"),
                           *args], cwd=tmp_path, env=_env(tmp_path), capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 1, done.stderr[-3000:]
    # torch's own notice on a machine with a CUDA toolkit but no GPU (detectron2's import of
    # cpp_extension prints it): the machine's, not the tool's output.
    lines = [line for line in done.stderr.splitlines() if not TORCH_NO_CUDA_NOTICE.match(line)]
    assert len(lines) == 1 and lines[0].startswith("train_net: "), done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    assert _files(tmp_path) == before  # nothing written, the inputs byte for byte
    return lines[0]


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _say_install(line: str) -> None:
    assert "needs detectron2" in line and "install" in line, line


@pytest.mark.parametrize("detectron2", DETECTRON2)
def test_no_arguments_is_one_line(tmp_path, detectron2):
    line = _refused(tmp_path, detectron2=detectron2)
    if detectron2 == "blocked":
        return _say_install(line)
    assert "no --config-file given" in line, line


@pytest.mark.parametrize("detectron2", DETECTRON2)
def test_a_missing_config_file_is_one_line(tmp_path, detectron2):
    line = _refused(tmp_path, "--config-file", "nope.yaml", detectron2=detectron2)
    if detectron2 == "blocked":
        return _say_install(line)
    assert line == "train_net: FileNotFoundError: --config-file nope.yaml: no such file"


@pytest.mark.parametrize("name", ["nope.yaml", "nope.py"])
@needs_detectron2
def test_a_missing_yaml_or_lazy_config_says_which_file(tmp_path, name):
    assert f"--config-file {name}: no such file" in _refused(tmp_path, "--config-file", name)


@needs_detectron2
def test_a_yaml_syntax_error_names_the_file_and_line(tmp_path):
    _write(tmp_path / "bad.yaml", "MODEL:\n  HYBRIDKT:\n    SWITCH_POINTS: [1\n")
    line = _refused(tmp_path, "--config-file", "bad.yaml")
    assert line.startswith("train_net: ValueError: not a valid YAML config: bad.yaml, line "), line


@pytest.mark.parametrize("text, holds", [("", "nothing"), ("- 1\n- 2\n", "a list")])
@needs_detectron2
def test_a_yaml_that_is_no_mapping_is_one_line(tmp_path, text, holds):
    _write(tmp_path / "odd.yaml", text)
    line = _refused(tmp_path, "--config-file", "odd.yaml")
    assert "odd.yaml: a detectron2 YAML config is a mapping" in line and holds in line, line


@needs_detectron2
def test_a_yaml_python_tag_is_refused_without_running_it(tmp_path):
    # detectron2's merge_from_file would retry with yaml.unsafe_load, which runs os.system.
    marker = tmp_path / "PWNED"
    _write(tmp_path / "evil.yaml", f'MODEL: !!python/object/apply:os.system ["touch {marker}"]\n')
    line = _refused(tmp_path, "--config-file", "evil.yaml")
    assert "not a valid YAML config: evil.yaml, line 1" in line and "python/object" in line
    assert not marker.exists()


@needs_detectron2
def test_an_unknown_key_on_the_command_line_names_the_closest_key(tmp_path):
    line = _refused(tmp_path, "--config-file", str(SYNTHETIC), "MODEL.HYBRIDKT.SWTICH_POINTS",
                    "[1]", "OUTPUT_DIR", str(tmp_path / "out"))
    assert line == ("train_net: KeyError: command line: 'MODEL.HYBRIDKT.SWTICH_POINTS' is not a "
                    "config key. Did you mean 'MODEL.HYBRIDKT.SWITCH_POINTS'?")


@pytest.mark.parametrize("key, closest", [
    ("MODEL.HYBRIDKY.TRANSFER", "MODEL.HYBRIDKT.TRANSFER"),      # a typo above the leaf
    ("model.hybridkt.switch_points", "MODEL.HYBRIDKT.SWITCH_POINTS"),  # yacs is case-sensitive
    ("SOLVER.MAX_ITERS", "SOLVER.MAX_ITER"),                     # not only MODEL.HYBRIDKT.*
])
@needs_detectron2
def test_any_unknown_command_line_key_names_the_closest_key(tmp_path, key, closest):
    line = _refused(tmp_path, "--config-file", str(SYNTHETIC), key, "1")
    assert f"{key!r} is not a config key. Did you mean {closest!r}?" in line, line


@needs_detectron2
def test_an_unknown_key_without_a_close_one_lists_its_siblings(tmp_path):
    line = _refused(tmp_path, "--config-file", str(SYNTHETIC), "MODEL.HYBRIDKT.ZZZ", "1")
    assert "The keys under MODEL.HYBRIDKT are ['AB_MARGIN'," in line, line


@needs_detectron2
def test_an_unknown_hybridkt_key_in_the_yaml_names_the_closest_key(tmp_path):
    _write(tmp_path / "typo.yaml", f'_BASE_: "{SYNTHETIC}"\nOUTPUT_DIR: "{tmp_path / "out"}"\n'
                                   "MODEL:\n  HYBRIDKT:\n    SWTICH_POINTS: [1]\n")
    line = _refused(tmp_path, "--config-file", "typo.yaml")
    assert line == ("train_net: KeyError: typo.yaml: 'MODEL.HYBRIDKT.SWTICH_POINTS' is not a "
                    "config key. Did you mean 'MODEL.HYBRIDKT.SWITCH_POINTS'?")


@needs_detectron2
def test_an_odd_number_of_key_value_items_is_one_line(tmp_path):
    line = _refused(tmp_path, "--config-file", str(SYNTHETIC), "MODEL.HYBRIDKT.SWITCH_POINTS")
    assert "command line: Override list has odd length" in line, line


@needs_detectron2
def test_a_lazy_config_with_a_python_syntax_error_names_the_line(tmp_path):
    _write(tmp_path / "bad.py", "from detectron2.config import LazyCall as L\nmodel = dict(\n")
    line = _refused(tmp_path, "--config-file", "bad.py")
    assert line.startswith("train_net: ValueError: bad.py: not a valid Python LazyConfig: line "
                           "2: "), line


@pytest.mark.parametrize("override, says", [
    ("model.backbone.bottom_up.swtich_points=[1]",
     "ValueError: model.backbone.bottom_up: hybrid_bottom_up() takes no keyword 'swtich_points'. "
     "Did you mean 'switch_points'?"),
    ("model.backbone.bottom_up.teacher.wieghts=t.pth",
     "ValueError: model.backbone.bottom_up.teacher: teacher key 'wieghts' is not one of"),
    # detectron2 itself would add train.max_itr and train train.max_iter iterations.
    ("train.max_itr=4",
     "ValueError: override 'train.max_itr=4': the config has no key 'train.max_itr'. Did you "
     "mean 'train.max_iter'? Write +train.max_itr=4 to add it."),
])
@needs_detectron2
def test_an_unknown_lazy_config_key_names_the_closest_one(tmp_path, override, says):
    line = _refused(tmp_path, "--config-file", str(LAZY_SYNTHETIC), override,
                    f"train.output_dir={tmp_path / 'out'}")
    assert line.startswith(f"train_net: {says}"), line
    assert "teacher" not in override or line.endswith("Did you mean 'weights'?"), line


@pytest.mark.parametrize("config", [SYNTHETIC, LAZY_SYNTHETIC])
@needs_detectron2
def test_an_option_after_the_overrides_is_named(tmp_path, config):
    pairs = ["OUTPUT_DIR", str(tmp_path / "out")] if config == SYNTHETIC else [
        f"train.output_dir={tmp_path / 'out'}"]
    line = _refused(tmp_path, "--config-file", str(config), *pairs, "--debug")
    assert line == ("train_net: ValueError: --debug comes after the config's overrides, where it "
                    "is read as one: put the options before them")


@needs_detectron2
def test_debug_shows_the_traceback_instead(tmp_path):
    done = subprocess.run([sys.executable, str(REPO / "tools" / "train_net.py"), "--debug",
                           "--config-file", "nope.yaml"], cwd=tmp_path, env=_env(tmp_path),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode != 0 and "Traceback" in done.stderr
    assert "FileNotFoundError: --config-file nope.yaml: no such file" in done.stderr


@needs_detectron2
def test_train_four_iterations_then_evaluate_only(tmp_path):
    from tests.for_detectron2.d2_helpers import TINY

    env = _env(tmp_path)
    config = str(SYNTHETIC)
    out = tmp_path / "out"
    _train_net("--config-file", config, "SOLVER.MAX_ITER", "4", "OUTPUT_DIR", str(out), *TINY,
               env=env)
    rows = [json.loads(line) for line in (out / "metrics.json").read_text().splitlines()]
    trained = [r for r in rows if "hkt_alpha" in r]
    assert trained and trained[-1]["iteration"] == 3
    assert all(v > 0 for r in trained for v in (r["hkt_alpha"], r["hkt_L1"], r["hkt_L2"]))

    log = _train_net("--config-file", config, "--eval-only", "MODEL.WEIGHTS",
                     str(out / "model_final.pth"), "OUTPUT_DIR", str(tmp_path / "eval"), *TINY,
                     env=env)
    header = next(line for line in log.splitlines() if "copypaste: MR2_" in line)
    assert header.split("copypaste: ")[1].split(",") == list(SETUPS)
    values = log.splitlines()[log.splitlines().index(header) + 1].split("copypaste: ")[1]
    assert all(0.0 <= float(v) <= 100.0 for v in values.split(","))


@needs_detectron2
def test_export_student_never_writes_onto_its_config_or_weights(tmp_path):
    # The export writes <out>.pth and <out>.yaml: student.yaml is the config itself here.
    _write(tmp_path / "student.yaml", f'_BASE_: "{SYNTHETIC}"\n')
    line = _refused(tmp_path, "--config-file", "student.yaml", "--export-student", "student.pth")
    assert line.startswith("train_net: OutputIsInputError: student.yaml is student.yaml"), line
    (tmp_path / "weights.pth").write_bytes(b"the run's only weights")
    os.link(tmp_path / "weights.pth", tmp_path / "linked.pth")
    line = _refused(tmp_path, "--config-file", "student.yaml", "--export-student", "linked.pth",
                    "MODEL.WEIGHTS", "weights.pth")
    assert line.startswith("train_net: OutputIsInputError: linked.pth is weights.pth"), line
