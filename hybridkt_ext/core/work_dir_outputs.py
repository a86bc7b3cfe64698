"""Before a run trains anything: every file it will write into its work dir can be written.

A tool that knows the files it will write (``hybridkt-train-cls``: the teacher, one checkpoint
and log per student, the plot) calls ``prepare_work_dir`` first, so minutes of training never
end in an error writing them, nor in a lost input or a previous run's files replaced unasked:

* no output is one of the run's inputs (``refuse_writing_onto_inputs``, ``--overwrite`` or not);
* the work dir is a folder (created if missing) this process may write in;
* no output is there from an earlier run, unless ``overwrite``.

Framework-neutral: the OpenMMLab tools' claim on a work dir of ``iter_N.pth`` checkpoints (with
a lock and ``--resume``) is ``work_dir_guard``'s.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Sequence

from .output_guard import PathLike, refuse_writing_onto_inputs


def prepare_work_dir(work_dir: PathLike, outputs: Sequence[PathLike],
                     inputs: Iterable[PathLike | None], overwrite: bool,
                     reader: str = "this tool") -> Path:
    """Creates ``work_dir`` and checks that the run may write each of ``outputs``.

    Args:
        work_dir: the run's folder (the ``--work-dir`` option).
        outputs: every file the run will write (in ``work_dir`` or elsewhere).
        inputs: the files and folders the run reads; ``None`` entries (an option not given)
            are skipped.
        overwrite: replace files of an earlier run (``--overwrite``).
        reader: how the messages name the tool, e.g. ``"train_cls"``.

    Returns:
        ``work_dir`` as a ``Path``, existing.

    Raises:
        OutputIsInputError: an output is an input, inside an input folder, or another output.
        NotADirectoryError: ``work_dir`` is a file.
        PermissionError: ``work_dir`` is not writable.
        FileExistsError: an output exists and ``overwrite`` is False; names the first few.
    """
    work_dir = Path(work_dir)
    # Checked first, before the folder is made: a refused run leaves the disk as it was.
    refuse_writing_onto_inputs(outputs, inputs, reader=reader)
    if work_dir.exists() and not work_dir.is_dir():
        raise NotADirectoryError(f"--work-dir {work_dir} is a file, not a folder; choose a "
                                 "folder.")
    work_dir.mkdir(parents=True, exist_ok=True)
    if not os.access(work_dir, os.W_OK | os.X_OK):
        raise PermissionError(f"--work-dir {work_dir} is not writable; choose another folder.")
    existing = [Path(p).name for p in outputs if Path(p).exists()]
    if existing and not overwrite:
        raise FileExistsError(
            f"{work_dir} holds the outputs of a previous run ({', '.join(existing[:4])}"
            f"{' ...' if len(existing) > 4 else ''}); pass --overwrite to replace them, or "
            "another --work-dir.")
    return work_dir
