#!/usr/bin/env python
"""Reproduce the paper's claims at small scale: tables (mean ± std over seeds) and plots.

The clone's wrapper of hybridkt_ext/cli/reproduce.py, whose docstring has the examples;
installed, the same tool is the command ``hybridkt-reproduce``.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a plain checkout

from hybridkt_ext.cli.reproduce import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
