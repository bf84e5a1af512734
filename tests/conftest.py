from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# examples/ import as a package in tests (examples.quickstart.steps, ...)
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# Property tests are derandomized by default, so a CI run is reproducible: the same examples
# every time. HYPOTHESIS_EXPLORE=1 draws fresh ones (how the UINT64 wire bug was found).
try:
    import os

    from hypothesis import settings

    settings.register_profile("ci", derandomize=True, database=None)
    settings.register_profile("explore", derandomize=False)
    settings.load_profile("explore" if os.environ.get("HYPOTHESIS_EXPLORE") == "1" else "ci")
except ImportError:  # hypothesis is in the dev extra; the suite's other tests run without it
    pass

from tests.ray_kit import ray_cluster  # noqa: E402,F401  (the session's one Ray instance)
