"""refuse_writing_onto_inputs: an output is never an input, by path, symlink or hard link."""
from __future__ import annotations

import os

import pytest

from hybridkt_ext.core.output_guard import OutputIsInputError, refuse_writing_onto_inputs


@pytest.fixture
def log(tmp_path):
    path = tmp_path / "run" / "scalars.json"
    path.parent.mkdir()
    path.write_text('{"hkt_alpha": 1.0}\n')
    return path


def _refused(outputs, inputs) -> str:
    with pytest.raises(OutputIsInputError) as refused:
        refuse_writing_onto_inputs(outputs, inputs, reader="the tool")
    message = str(refused.value)
    assert "\n" not in message and isinstance(refused.value, ValueError)
    return message


def test_an_output_that_is_an_input_is_refused_naming_both(log, tmp_path):
    spelled = tmp_path / "run" / ".." / "run" / "scalars.json"
    message = _refused([spelled], [log])
    assert message == (f"{spelled} is {log}, which the tool reads or writes; write each output "
                       "to a path of its own (it would be lost, --overwrite or not).")


def test_a_symlink_and_a_hard_link_to_an_input_are_refused(log, tmp_path):
    (tmp_path / "link.json").symlink_to(log)
    assert "(the same file through a symbolic link)" in _refused([tmp_path / "link.json"], [log])
    # The input given through the link, the output by its real name: the same refusal.
    assert "symbolic link" in _refused([log], [tmp_path / "link.json"])
    os.link(log, tmp_path / "hard.json")
    assert "(the same file under another name: a hard link)" in _refused(
        [tmp_path / "hard.json"], [log])


def test_an_output_inside_an_input_folder_is_refused(log, tmp_path):
    message = _refused([tmp_path / "run" / "new" / "plot.png"], [tmp_path / "run"])
    assert message.startswith(f"{tmp_path / 'run' / 'new' / 'plot.png'} is inside "
                              f"{tmp_path / 'run'}, a folder the tool reads files from")
    refuse_writing_onto_inputs([tmp_path / "runs.png"], [tmp_path / "run"])  # a sibling: fine


def test_two_outputs_on_one_file_are_refused(tmp_path):
    (tmp_path / "a.py").write_text("")
    (tmp_path / "b.py").symlink_to(tmp_path / "a.py")
    assert "symbolic link" in _refused([tmp_path / "a.py", tmp_path / "b.py"], [])


def test_distinct_and_missing_paths_pass(log, tmp_path):
    refuse_writing_onto_inputs([tmp_path / "plot.png", None], [log, None, tmp_path / "gone"])
    # A missing input is compared by path only: the same path is still refused.
    assert "gone.pth is" in _refused([tmp_path / "gone.pth"], [tmp_path / "gone.pth"])
    # A folder that does not exist yet holds nothing to lose.
    refuse_writing_onto_inputs([tmp_path / "data" / "x.png"], [tmp_path / "data"])
