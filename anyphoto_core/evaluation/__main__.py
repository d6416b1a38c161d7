"""Run the evaluation CLI: ``python -m anyphoto_core.evaluation --help``."""

import sys

from .cli import main

sys.exit(main())
