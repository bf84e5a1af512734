"""The README's LLM section works as written: its OpenAI-client block against `brickwork serve
examples/rag/pipeline.yaml` (a subprocess), and its curl request's body through the same front."""

from __future__ import annotations

import contextlib
import io
import re
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
