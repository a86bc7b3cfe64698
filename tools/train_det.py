#!/usr/bin/env python
"""Train an mmdet detector, hybrid-forward configs included (mmdet's tools/train.py CLI).

``hybridkt-train-det`` run from the clone (hybridkt_ext/cli/train_det.py has the examples); the
set-up installs the package editable, so this imports the checkout's code.
"""
from hybridkt_ext.cli.train_det import main

if __name__ == "__main__":
    main()
