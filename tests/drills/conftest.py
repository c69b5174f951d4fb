"""The drills reuse the operator end-to-end helpers of tests/e2e (operator_env.py)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))
