#!/usr/bin/env python
"""Overlays alpha and the path losses of several runs (e.g. hybrid against a baseline).

``hybridkt-plot-alpha`` run from the clone (hybridkt_ext/cli/plot_alpha.py has the examples); the
set-up installs the package editable, so this imports the checkout's code.
"""
import sys

from hybridkt_ext.cli.plot_alpha import main

if __name__ == "__main__":
    sys.exit(main())
