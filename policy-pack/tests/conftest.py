"""The pack's tests import lab_guardrails from the pack's folder, never the entry file."""

import sys
from pathlib import Path

PACK = Path(__file__).resolve().parent.parent
if str(PACK) not in sys.path:
    sys.path.insert(0, str(PACK))
