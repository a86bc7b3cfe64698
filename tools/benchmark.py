#!/usr/bin/env python
"""Training-cost benchmark of the hybrid step against student-only, naive hybrid, FitNet, AT.

``hybridkt-benchmark`` run from the clone (hybridkt_ext/benchmark/training_cost.py has the
examples); the set-up installs the package editable, so this imports the checkout's code.
"""
import sys

from hybridkt_ext.benchmark.training_cost import main

if __name__ == "__main__":
    sys.exit(main())
