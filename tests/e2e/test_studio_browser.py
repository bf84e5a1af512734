"""`brickwork studio FILE` in headless Chromium: the file is drawn, a bad edit shows its compile
error at the right line (with no console error), a fix redraws the graph, Run shows outputs and
per-stage timings, and the file on disk changes only when Save is pressed.

BRICKWORK_DOCS_SCREENSHOTS=1 also writes docs/studio.png and docs/studio-error.png."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests.e2e.browser import CHROMIUM, Browser

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH (make test installs it)")


def _set_text(page, text: str) -> None:  # as typing does: the value changes, an input event fires
    page.evaluate(f"(() => {{ const t = document.getElementById('yaml'); t.value = {json.dumps(text)}; "
                  "t.dispatchEvent(new Event('input')); })()")


def test_studio_in_a_browser(tmp_path: Path) -> None:
    folder = tmp_path / "showcase"
    shutil.copytree(ROOT / "examples" / "showcase", folder)
    path = folder / "pipeline.yaml"
    original = path.read_text()
    proc = subprocess.Popen([sys.executable, "-m", "brickwork.cli", "studio", str(path), "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert " on http://" in line, line + (proc.stderr.read() if proc.poll() is not None else "")
        url = line.rsplit(" on ", 1)[1].strip()
        with Browser(tmp_path / "chromium", width=1500, height=900) as page:
            page.navigate(url)
            page.wait_for("document.getElementById('state').dataset.state === 'ok'")
            assert page.evaluate("document.querySelectorAll('#graph g.node.stage').length") == 7

            bad = original.replace("combiner: mean", "combiner: meen")
            bad_line = next(i + 1 for i, s in enumerate(bad.splitlines()) if "meen" in s)
            _set_text(page, bad)
            page.wait_for("document.getElementById('state').dataset.state === 'error'")
            err = page.evaluate("(() => { const li = document.querySelector('#errors li'); return "
                                "{line: li.dataset.line, text: li.textContent}; })()")
            assert err["line"] == str(bad_line), err
            assert "unknown combiner 'meen'" in err["text"] and "fix: use 'majority'" in err["text"]
            assert page.evaluate(f"document.querySelector('#gutter span[data-line=\"{bad_line}\"]').className") == "err"
            if os.environ.get("BRICKWORK_DOCS_SCREENSHOTS"):
                page.screenshot(ROOT / "docs" / "studio-error.png")
            assert path.read_text() == original  # not saved

            fixed = original.replace("members: [lexicon, emphasis, length]", "members: [lexicon, length]")
            _set_text(page, fixed)
            page.wait_for("document.getElementById('state').dataset.state === 'ok'")
            assert page.evaluate("document.querySelectorAll('#errors li').length") == 0
            drawn = page.evaluate("[...document.querySelectorAll('#graph g.node.stage')].map(g => g.dataset.stage)")
            assert "emphasis" not in drawn and "lexicon" in drawn and "decide" in drawn  # redrawn

            page.evaluate("document.getElementById('run').click()")
            page.wait_for("document.getElementById('outputs') !== null", 60)
            outputs = json.loads(page.evaluate("document.getElementById('outputs').textContent"))
            assert outputs["label"] == ["positive", "negative", "positive"]
            timed = page.evaluate("[...document.querySelectorAll('#timings tr[data-stage]')].map(r => r.dataset.stage)")
            assert set(timed) >= {"prepare", "lexicon", "length", "decide"}
            if os.environ.get("BRICKWORK_DOCS_SCREENSHOTS"):
                page.screenshot(ROOT / "docs" / "studio.png")
            assert path.read_text() == original  # still not saved

            page.evaluate("document.getElementById('save').click()")
            deadline = time.monotonic() + 10
            while path.read_text() != fixed and time.monotonic() < deadline:
                time.sleep(0.1)
            assert path.read_text() == fixed
            assert page.errors == [], page.errors
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(10)
