"""prepare_work_dir: every refusal comes before the work dir is made or anything is written."""
from __future__ import annotations

import pytest

from hybridkt_ext.core.output_guard import OutputIsInputError
from hybridkt_ext.core.work_dir_outputs import prepare_work_dir


def test_a_missing_work_dir_is_made_and_a_new_run_passes(tmp_path):
    work = tmp_path / "a" / "b"
    assert prepare_work_dir(work, [work / "x.pth"], [None], overwrite=False) == work
    assert work.is_dir() and not list(work.iterdir())


def test_outputs_of_a_previous_run_are_refused_unless_overwrite(tmp_path):
    outputs = [tmp_path / f"{i}.pth" for i in range(6)]
    for path in outputs[1:]:
        path.write_bytes(b"earlier")
    with pytest.raises(FileExistsError) as refused:
        prepare_work_dir(tmp_path, outputs, [], overwrite=False, reader="t")
    assert str(refused.value) == (
        f"{tmp_path} holds the outputs of a previous run (1.pth, 2.pth, 3.pth, 4.pth ...); pass "
        "--overwrite to replace them, or another --work-dir.")
    prepare_work_dir(tmp_path, outputs, [], overwrite=True)
    assert all(p.read_bytes() == b"earlier" for p in outputs[1:])  # checks only, writes nothing


def test_an_output_onto_an_input_is_refused_before_the_work_dir_is_made(tmp_path):
    teacher = tmp_path / "teacher.pth"
    teacher.write_bytes(b"weights")
    work = tmp_path / "new"
    with pytest.raises(OutputIsInputError, match="which t reads or writes"):
        prepare_work_dir(work, [work / "a.pth", teacher], [teacher], overwrite=True, reader="t")
    assert not work.exists()


def test_a_work_dir_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "f").write_text("mine")
    with pytest.raises(NotADirectoryError, match="is a file, not a folder"):
        prepare_work_dir(tmp_path / "f", [tmp_path / "f" / "a.pth"], [], overwrite=True)
    assert (tmp_path / "f").read_text() == "mine"
