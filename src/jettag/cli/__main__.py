"""``python -m jettag.cli``: the same as the ``jettag`` program."""

import sys

from jettag.cli import main

sys.exit(main())
