#!/usr/bin/env python
"""Overlays alpha and the path losses of several runs (e.g. hybrid against a baseline).

The clone's wrapper of hybridkt_ext/cli/plot_alpha.py, whose docstring has the examples;
installed, the same tool is the command ``hybridkt-plot-alpha``.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a plain checkout

from hybridkt_ext.cli.plot_alpha import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
