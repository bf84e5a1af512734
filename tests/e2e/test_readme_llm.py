"""The README's LLM section works as written: its OpenAI-client block against `brickwork serve
examples/rag/pipeline.yaml` (a subprocess), its curl request's body through the same front, and
its MCP block (the official client launching `brickwork mcp` on examples/contracts) on a page."""

from __future__ import annotations

import contextlib
import io
import os
import re
import sys
from pathlib import Path

import httpx
import pytest
from tests.e2e.serve_helpers import served

ROOT = Path(__file__).resolve().parents[2]


def section() -> str:
    readme = (ROOT / "README.md").read_text()
    return readme.split("\n## LLMs: streaming, the OpenAI API, pipelines as tools\n", 1)[1].split("\n## ", 1)[0]


def test_readme_llm_section_runs_against_brickwork_serve() -> None:
    pytest.importorskip("openai")
    pytest.importorskip("transformers")
    from examples.rag.build import build_generator
    from examples.text_router.build import build as build_minilm

    build_minilm()
    build_generator()
    python = re.findall(r"```python\n(.*?)```", section(), re.S)[0]
    bash = re.findall(r"```bash\n(.*?)```", section(), re.S)[0]
    with served([ROOT / "examples/rag/pipeline.yaml"], cwd=ROOT) as server:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(python.replace("http://127.0.0.1:8000", server.url), {})
        assert "Sources: [1] faults" in out.getvalue()
        body = re.search(r"-d '(.*?)'", bash, re.S)
        assert body
        with httpx.stream("POST", server.url + "/v1/chat/completions", content=body.group(1)) as r:
            lines = [line for line in r.iter_lines() if line]
        assert r.status_code == 200 and lines[-1] == "data: [DONE]" and len(lines) > 3


def test_readme_mcp_block_calls_the_contracts_tool(tmp_path: Path) -> None:
    pytest.importorskip("mcp")
    pytest.importorskip("rapidocr")
    image = pytest.importorskip("PIL.Image")
    from examples.contracts import build
    from examples.contracts.pages import generate_pages

    build.build()
    page = generate_pages()[0]
    image.fromarray(page.image).save(tmp_path / "page.png")
    python = re.findall(r"```python\n(.*?)```", section(), re.S)[1]
    python = (python.replace('command="brickwork", args=["mcp", "examples/contracts/pipeline.yaml"]',
                             f'command={sys.executable!r}, args=["-m", "brickwork.cli", "mcp", '
                             f'{str(ROOT / "examples/contracts/pipeline.yaml")!r}], env=ENV')
              .replace('"page.png"', repr(str(tmp_path / "page.png"))))
    assert "brickwork.cli" in python and "tmp" in python  # the block still has the shape replaced
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(python, {"__name__": "readme", "ENV": dict(os.environ)})  # this checkout's PYTHONPATH
    f = page.fields
    assert out.getvalue().split() == [f.contract_no, f.iban, out.getvalue().split()[-1]]
    assert out.getvalue().split()[-1] in ("approve", "review")
