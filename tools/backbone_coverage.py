#!/usr/bin/env python
"""Which backbones of the configs mmseg ships hybrid forward can use, as a markdown table.

``hybridkt-backbone-coverage`` run from the clone (hybridkt_ext/cli/backbone_coverage.py has the
examples); the set-up installs the package editable, so this imports the checkout's code.
"""
from hybridkt_ext.cli.backbone_coverage import main

if __name__ == "__main__":
    main()
