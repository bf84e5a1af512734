"""Tool schemas from typed signatures: the YAML's description and descriptions reach them (a
description of no input or output is refused), image inputs are base64 strings decoded to
the declared shape, with the reason when they cannot be."""

from __future__ import annotations

import asyncio
import base64
import io
from pathlib import Path

import numpy as np
import pytest

from brickwork.errors import ConfigError, InvalidInput
from brickwork.graph import parse_pipeline
from brickwork.server._tools import call_tool, input_schema, output_schema, tool_description

Image = pytest.importorskip("PIL.Image")

STEPS = '''
from typing import Annotated
import numpy as np
import brickwork as bw

def mean(image: Annotated[np.ndarray, bw.Tensor("UINT8", (-1, -1))]) -> float:
    return float(image.mean())
'''
YAML = '''
name: grey
description: the mean of a grey page
descriptions: {image: a page, DESCRIBED: its mean}
bricks:
  m: {python: "steps:mean", outputs: level}
graph: m
'''


def _parse(tmp_path: Path, text: str):  # type: ignore[no-untyped-def]
    (tmp_path / "steps.py").write_text(STEPS)
    return parse_pipeline(text, base_dir=tmp_path)


def _png(pixels: np.ndarray) -> str:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def test_descriptions_reach_the_schema_and_images_decode(tmp_path: Path) -> None:
    pipe = _parse(tmp_path, YAML.replace("DESCRIBED", "level")).compile()
    assert tool_description(pipe) == "the mean of a grey page"
    image = input_schema(pipe)["properties"]["image"]
    assert image["type"] == "string" and image["contentEncoding"] == "base64"
    assert image["description"].startswith("a page. A PNG or JPEG") and "grey" in image["description"]
    assert output_schema(pipe)["properties"]["level"] == {"type": "number", "description": "its mean"}
    pixels = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    rgb = np.repeat(pixels[..., None], 3, axis=2)  # an RGB file read as grey gives the grey values

    async def run() -> None:
        async with pipe:
            assert (await call_tool(pipe, {"image": _png(pixels)}))["level"] == pytest.approx(pixels.mean())
            assert (await call_tool(pipe, {"image": _png(rgb)}))["level"] == pytest.approx(pixels.mean())
            with pytest.raises(InvalidInput, match="not base64"):
                await call_tool(pipe, {"image": "??"})
            with pytest.raises(InvalidInput, match="not an image"):
                await call_tool(pipe, {"image": base64.b64encode(b"plain text").decode()})

    asyncio.run(run())


def test_a_description_of_no_tensor_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"descriptions name \['levle'\]"):
        _parse(tmp_path, YAML.replace("DESCRIBED", "levle")).compile()


def test_an_image_bomb_is_refused_from_its_header(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # 3,000 x 2,000 black pixels compress to a few KiB of PNG; the cap is lowered so the test
    # stays small, and the refusal comes from the header, before any pixel is decoded
    import brickwork.server._tools as tools

    monkeypatch.setattr(tools, "MAX_IMAGE_PIXELS", 1_000_000)
    bomb = _png(np.zeros((2000, 3000), dtype=np.uint8))
    assert len(bomb) < 100_000
    decoded: list[object] = []
    monkeypatch.setattr(Image.Image, "convert", lambda *a, **k: decoded.append(a) or None)
    pipe = _parse(tmp_path, YAML.replace("DESCRIBED", "level")).compile()

    async def run() -> None:
        async with pipe:
            with pytest.raises(InvalidInput, match=r"3000x2000 pixels, more than 1,000,000"):
                await call_tool(pipe, {"image": bomb})

    asyncio.run(run())
    assert decoded == []
