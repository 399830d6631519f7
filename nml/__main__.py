"""``python -m nml`` entry point (see :mod:`nml.cli`)."""

import sys

from .cli import main

sys.exit(main())
