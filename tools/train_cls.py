#!/usr/bin/env python
"""Classification with hybrid forward: the paper's model-gap setting (Table 1, Fig. 5-6, 9).

``hybridkt-train-cls`` run from the clone (hybridkt_ext/cli/train_cls.py has the examples); the
set-up installs the package editable, so this imports the checkout's code.
"""
import sys

from hybridkt_ext.cli.train_cls import main

if __name__ == "__main__":
    sys.exit(main())
