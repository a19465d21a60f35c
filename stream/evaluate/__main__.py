"""``python -m stream.evaluate``: the same as ``likeguard eval``."""

import sys

from stream.evaluate.cli import main

sys.exit(main())
