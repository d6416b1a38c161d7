"""``python -m anyphoto_core``: the ``anyphoto`` command (see :mod:`anyphoto_core.app.cli`)."""

import sys

from .app.cli import main

sys.exit(main())
