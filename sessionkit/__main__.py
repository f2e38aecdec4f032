"""``python -m sessionkit``: the ``sessionkit`` command."""

import sys

from sessionkit.cli import main

if __name__ == "__main__":
    sys.exit(main())
