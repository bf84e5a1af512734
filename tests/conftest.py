from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Before any test module imports Ray (it reads these at import): a Ray instance started by the
# suite keeps every listener and advertised address on 127.0.0.1 and reports no usage.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
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
