#!/usr/bin/env python
"""Reproduce the paper's claims at small scale: tables (mean ± std over seeds) and plots.

``hybridkt-reproduce`` run from the clone (hybridkt_ext/cli/reproduce.py has the examples); the
set-up installs the package editable, so this imports the checkout's code.
"""
import sys

from hybridkt_ext.cli.reproduce import main

if __name__ == "__main__":
    sys.exit(main())
