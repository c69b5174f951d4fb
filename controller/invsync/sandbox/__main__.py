"""``python -m invsync.sandbox --config FILE``: the same as ``invsync sandbox``."""

import sys

from .server import main

sys.exit(main())
