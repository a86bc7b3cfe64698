#!/usr/bin/env python
"""Train an mmseg segmentor, hybrid-forward configs included (mmseg's tools/train.py CLI).

``hybridkt-train-seg`` run from the clone (hybridkt_ext/cli/train_seg.py has the examples); the
set-up installs the package editable, so this imports the checkout's code.
"""
from hybridkt_ext.cli.train_seg import main

if __name__ == "__main__":
    main()
