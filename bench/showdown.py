#!/usr/bin/env python3
"""The showdown: one command that measures jwt-validator against the Node baseline and its peers.

    python3 bench/showdown.py [--quick] [--out DIR] [--render-only]

The harness is the package bench/showdown/ (see its __init__ and bench/README.md); this file keeps the
command. Python 3.11 standard library only.
"""

import sys

from showdown.cli import main  # the package next to this file (a directory wins over this module)

if __name__ == "__main__":
    sys.exit(main())
