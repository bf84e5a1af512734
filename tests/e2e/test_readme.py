"""The README's quickstart runs as written and prints what it promises."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def quickstart_code() -> str:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Quickstart", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    assert code, "README has no python block under '## Quickstart'"
    return code.group(1)


def test_quickstart_is_short_and_runs_from_any_directory(tmp_path):
    code = quickstart_code()
    assert len(code.strip().splitlines()) < 20
    script = ROOT / "examples" / "quickstart" / "quickstart.py"
    assert script.read_text() == code  # the README shows the script as it is
    out = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "['positive' 'negative']" in out.stdout
    assert "adapter before decision.probability: cast probability to FP64" in out.stdout


def test_version():
    from brickwork import __version__

    out = subprocess.run([sys.executable, "-m", "brickwork.cli", "--version"], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == f"brickwork {__version__}"
