#!/usr/bin/env python
"""Test (and evaluate) a detector checkpoint (mmdet's tools/test.py CLI).

The clone's wrapper of hybridkt_ext/cli/test_det.py, whose docstring has the examples; installed,
the same tool is the command ``hybridkt-test-det``.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a plain checkout

from hybridkt_ext.cli.test_det import main  # noqa: E402

if __name__ == "__main__":
    main()
