from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# examples/ import as a package in tests (examples.quickstart.steps, ...)
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
