"""``brickwork mcp`` driven by the official ``mcp`` client: over stdio (the client launches the
command) and over streamable HTTP (a subprocess on a free port). Tool schemas come from the
pipelines' typed signatures; a call runs through the engine; bad arguments are tool errors."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests.e2e.serve_helpers import _read_line, stop, write_models

mcp = pytest.importorskip("mcp")

MAIN = "import sys; from brickwork.cli import main; sys.exit(main())"


async def _exercise(client: object) -> None:
    tools = {t.name: t for t in (await client.list_tools()).tools}  # type: ignore[attr-defined]
    assert set(tools) == {"calc", "echo"}
    calc = tools["calc"].input_schema
    assert calc["required"] == ["x"]
    assert calc["properties"]["x"]["type"] == "array" and calc["properties"]["x"]["minItems"] == 4
    assert calc["properties"]["x"]["items"]["type"] == "number"
    assert tools["echo"].input_schema["properties"]["text"]["type"] == "string"
    out = await client.call_tool("calc", {"x": [1, 2, 3, 4]})  # type: ignore[attr-defined]
    assert not out.is_error and out.structured_content == {"y": [2.0, 4.0, 6.0, 8.0], "total": 10.0}
    said = await client.call_tool("echo", {"text": "hi"})  # type: ignore[attr-defined]
    assert said.structured_content == {"upper": "HI", "n": 2}
    bad = await client.call_tool("calc", {"x": [1, 2]})  # type: ignore[attr-defined]
    assert bad.is_error and "InvalidInput" in bad.content[0].text
    busy = await client.call_tool("calc", {"x": [503, 0, 0, 0]})  # type: ignore[attr-defined]
    assert busy.is_error and "Overloaded" in busy.content[0].text


def test_mcp_over_stdio(tmp_path: Path) -> None:
    files = write_models(tmp_path)
    params = mcp.StdioServerParameters(command=sys.executable, args=["-c", MAIN, "mcp", *map(str, files)],
                                       cwd=str(tmp_path), env={**os.environ, "PYTHONWARNINGS": "ignore"})

    async def main() -> None:
        async with mcp.Client(params) as client:
            await _exercise(client)

    asyncio.run(asyncio.wait_for(main(), 120))


def test_mcp_over_streamable_http(tmp_path: Path) -> None:
    files = write_models(tmp_path)
    proc = subprocess.Popen([sys.executable, "-c", MAIN, "mcp", "--http", "--port", "0", *map(str, files)],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONWARNINGS": "ignore", "PYTHONUNBUFFERED": "1"},
                            start_new_session=True)
    try:
        line = _read_line(proc, time.monotonic() + 60)
        assert line and " on http://" in line, (line, proc.stderr.read() if proc.poll() is not None else "")
        url = line.rsplit(" on ", 1)[1].strip()

        async def main() -> None:
            async with mcp.Client(url) as client:
                await _exercise(client)

        asyncio.run(asyncio.wait_for(main(), 120))
    finally:
        stop(proc)
