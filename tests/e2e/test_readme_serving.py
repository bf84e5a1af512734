"""The README's Serving section works as written: its build commands, its `brickwork serve`
line (on a free port instead of 8000), its curl body and the answer it shows, and its Python
client snippet with the line it says it prints."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from tests.e2e.serve_helpers import served

ROOT = Path(__file__).resolve().parents[2]
README_URL = "http://127.0.0.1:8000"


def section() -> str:
    readme = (ROOT / "README.md").read_text()
    assert "\n## Serving\n" in readme, "README has no '## Serving' section"
    return readme.split("\n## Serving\n", 1)[1].split("\n## ", 1)[0]


def blocks(kind: str) -> list[str]:
    return re.findall(rf"```{kind}\n(.*?)```", section(), re.S)


@pytest.fixture(scope="module")
def server():
    setup = blocks("bash")[0].splitlines()
    build = next(line for line in setup if ".build" in line)
    for cmd in build.split("&&"):  # `.venv/bin/python -m examples.X.build`, as this interpreter
        argv = shlex.split(cmd)
        assert argv[0] == ".venv/bin/python", cmd
        done = subprocess.run([sys.executable, *argv[1:]], cwd=ROOT, capture_output=True, text=True,
                              timeout=240)
        assert done.returncode == 0, done.stderr
    argv = shlex.split(next(line for line in setup if " serve " in line))
    assert argv[:2] == [".venv/bin/brickwork", "serve"]
    shown = next(line for line in setup if line.startswith("# brickwork: serving"))
    assert shown.endswith(f"on {README_URL}")
    with served([ROOT / f for f in argv[2:]], cwd=ROOT) as s:
        assert shown[2:].replace(README_URL, s.url) == s.output[-1].strip()
        yield s


def test_the_curl_request_answers_what_the_readme_shows(server):
    curl = blocks("bash")[1]
    m = re.match(r"curl -s localhost:8000(\S+) -d '(.*?)'\n", curl, re.S)
    assert m, curl
    path, body = m.groups()
    r = httpx.post(server.url + path, content=body.encode(), timeout=30)
    assert r.status_code == 200, r.text
    shown = "".join(line[1:].strip() for line in curl.splitlines() if line.startswith("# "))
    # the comment abridges the answer with `...`; every piece it does show is in the real one
    pieces = [p for p in re.split(r"\.\.\.", shown) if p.strip("{}")]
    assert len(pieces) >= 3
    for piece in pieces:
        assert piece.strip("{}[],") in r.text, (piece, r.text)


def test_the_python_client_prints_what_the_readme_shows(server):
    (code,) = blocks("python")
    assert README_URL in code
    printed = re.search(r"print\(.*\)  # (.*)$", code, re.M)
    assert printed, code
    done = subprocess.run([sys.executable, "-c", code.replace(README_URL, server.url)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == printed.group(1)
