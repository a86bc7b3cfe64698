#!/usr/bin/env python
"""Export the student of a hybrid-forward mmseg checkpoint for the plain student config.

The clone's wrapper of hybridkt_ext/cli/export_seg_student.py, whose docstring has the examples;
installed, the same tool is the command ``hybridkt-export-seg-student``.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a plain checkout

from hybridkt_ext.cli.export_seg_student import main  # noqa: E402

if __name__ == "__main__":
    main()
