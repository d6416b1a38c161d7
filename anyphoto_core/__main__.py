"""``python -m anyphoto_core``: the ``anyphoto`` command (see :mod:`anyphoto_core.cli`)."""

import sys

from .cli import main

sys.exit(main())
