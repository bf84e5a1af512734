"""examples/contracts as a tool for agents: ``brickwork mcp examples/contracts/pipeline.yaml``
driven by the official ``mcp`` client over stdio and streamable HTTP. The tool's input schema
comes from the pipeline's typed signature (the UINT8 (H, W, 3) page is a base64 PNG string) with
the YAML's descriptions; a call OCRs a real contract page from the example and answers its
fields, which must equal the page's ground truth. ``/v1/tools`` on ``brickwork serve`` shows the
same schema in OpenAI tool format."""

from __future__ import annotations

import asyncio
import base64
import io
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.e2e.serve_helpers import _read_line, served, stop

mcp = pytest.importorskip("mcp")
pytest.importorskip("rapidocr")
pytest.importorskip("onnxruntime")
pytest.importorskip("skl2onnx")
Image = pytest.importorskip("PIL.Image")

from examples.contracts import build  # noqa: E402
from examples.contracts.fields import ContractFields  # noqa: E402
from examples.contracts.pages import Page, generate_pages  # noqa: E402

ROOT = Path(build.__file__).resolve().parents[2]
YAML = Path(build.__file__).parent / "pipeline.yaml"
MAIN = "import sys; from brickwork.cli import main; sys.exit(main())"
ENV = {**os.environ, "PYTHONWARNINGS": "ignore", "PYTHONUNBUFFERED": "1"}


@pytest.fixture(scope="module")
def pages() -> list[Page]:
    build.build()
    by_name = {p.name: p for p in generate_pages()}
    return [by_name["clean_large"], by_name["rotated_noisy"]]


def _png_base64(page: Page) -> str:
    buf = io.BytesIO()
    Image.fromarray(page.image).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _fields(out: dict[str, Any]) -> ContractFields:
    def get(name: str) -> str | None:
        return out[name] or None

    parties = tuple(p for p in (get("supplier"), get("customer")) if p)
    return ContractFields(get("contract_no"), parties, get("amount"), get("currency"),
                          get("signed"), get("due"), get("iban"), get("email"))


def _check_schema(tool: Any) -> None:
    assert tool.description.startswith("Read a scanned contract page (OCR)")
    schema = tool.input_schema
    assert schema["required"] == ["image"] and schema["additionalProperties"] is False
    image = schema["properties"]["image"]
    assert image["type"] == "string" and image["contentEncoding"] == "base64"
    assert image["description"].startswith("the contract page")
    assert tool.output_schema["properties"]["iban"]["description"].startswith("the payee IBAN")
    assert tool.output_schema["properties"]["risk"]["type"] == "number"


async def _exercise(client: Any, pages: list[Page]) -> dict[str, Any]:
    tools = {t.name: t for t in (await client.list_tools()).tools}
    assert set(tools) == {"contracts"}
    _check_schema(tools["contracts"])
    calls = [client.call_tool("contracts", {"image": _png_base64(p)}) for p in pages]
    for page, out in zip(pages, await asyncio.gather(*calls), strict=True):
        assert not out.is_error, out.content
        got = out.structured_content
        assert _fields(got) == page.fields, page.name
        assert got["text"].splitlines() == list(page.lines), page.name
        assert 0.0 <= got["risk"] <= 1.0 and got["decision"] in ("approve", "review")
    data_url = await client.call_tool("contracts", {"image": "data:image/png;base64," + _png_base64(pages[0])})
    assert not data_url.is_error and _fields(data_url.structured_content) == pages[0].fields
    bad = await client.call_tool("contracts", {"image": "not an image"})
    assert bad.is_error and "InvalidInput" in bad.content[0].text and "not base64" in bad.content[0].text
    junk = await client.call_tool("contracts", {"image": base64.b64encode(b"GIF89a junk").decode()})
    assert junk.is_error and "not an image" in junk.content[0].text
    return dict(tools["contracts"].input_schema)


def test_contracts_tool_over_stdio(pages: list[Page]) -> None:
    params = mcp.StdioServerParameters(command=sys.executable, args=["-c", MAIN, "mcp", str(YAML)],
                                       cwd=str(ROOT), env=ENV)

    async def main() -> None:
        async with mcp.Client(params) as client:
            await _exercise(client, pages)

    asyncio.run(asyncio.wait_for(main(), 240))


def test_contracts_tool_over_streamable_http_and_v1_tools(pages: list[Page]) -> None:
    proc = subprocess.Popen([sys.executable, "-c", MAIN, "mcp", "--http", "--port", "0", str(YAML)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV,
                            start_new_session=True)
    try:
        line = _read_line(proc, time.monotonic() + 120)
        assert line and " on http://" in line, (line, proc.stderr.read() if proc.poll() is not None else "")
        url = line.rsplit(" on ", 1)[1].strip()

        async def main() -> dict[str, Any]:
            async with mcp.Client(url) as client:
                return await _exercise(client, pages)

        mcp_schema = asyncio.run(asyncio.wait_for(main(), 240))
    finally:
        stop(proc)
    with served([YAML], cwd=ROOT) as s:
        tools = httpx.get(s.url + "/v1/tools", timeout=30).json()["data"]
    assert [t["function"]["name"] for t in tools] == ["contracts"]
    assert tools[0]["type"] == "function"
    assert tools[0]["function"]["parameters"] == mcp_schema
    assert tools[0]["function"]["description"].startswith("Read a scanned contract page (OCR)")
