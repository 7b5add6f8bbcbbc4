"""``python -m vilem ...`` (what torchrun launches) is the ``vilem`` command."""

import sys

from vilem.cli import main

sys.exit(main())
