#!/usr/bin/env python
"""Training-cost benchmark of the hybrid step against student-only, naive hybrid, FitNet, AT.

The clone's wrapper of hybridkt_ext/benchmark/training_cost.py, whose docstring has the examples;
installed, the same tool is the command ``hybridkt-benchmark``.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a plain checkout

from hybridkt_ext.benchmark.training_cost import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
