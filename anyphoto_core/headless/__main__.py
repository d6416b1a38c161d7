"""``python -m anyphoto_core.headless``: see cli.py."""

import sys

from .cli import main

sys.exit(main())
