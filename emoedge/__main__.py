"""``python -m emoedge ...``: the ``emoedge`` command."""

import sys

from emoedge.cli import main

if __name__ == "__main__":
    sys.exit(main())
