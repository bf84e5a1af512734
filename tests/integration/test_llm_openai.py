"""The OpenAI-compatible front and Triton's generate extension on the real HTTP server, driven
by the official ``openai`` client (streaming and not), httpx for SSE and bad requests."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import httpx
import numpy as np
import orjson
import pytest
from tests.integration.llm_kit import generator_dir

import brickwork as bw
from brickwork.llm import LlmBrick
from brickwork.server import serve_in_thread

openai = pytest.importorskip("openai")


def shout(text: str) -> str:
    return text.upper()



def embed(text: np.ndarray) -> np.ndarray:
    return np.array([[len(str(t)), str(t).count(" "), 1.0, -0.5] for t in text], dtype=np.float32)


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, LlmBrick]]:
    brick = LlmBrick(generator_dir(), max_tokens=24, max_batch_size=8, kv_budget_tokens=2000)
    gen = bw.brick(brick).compile(name="gen")
    plain = bw.function(shout).compile(name="shout")
    emb = bw.function(embed, batch=True, inputs=[("text", "BYTES", (-1,))],
                      outputs=[("embedding", "FP32", (-1, 4))]).compile(name="embed")
    with serve_in_thread([gen, plain, emb]) as s:
        yield s.url, brick


@pytest.fixture(scope="module")
def client(server: tuple[str, LlmBrick]) -> openai.OpenAI:
    return openai.OpenAI(base_url=server[0] + "/v1", api_key="unused", max_retries=0, timeout=60)


def test_models_lists_what_fits(client: openai.OpenAI) -> None:
    ids = {m.id for m in client.models.list().data}
    assert ids == {"gen", "shout", "embed"}


def test_chat_streamed_equals_not_streamed(client: openai.OpenAI, server: tuple[str, LlmBrick]) -> None:
    messages = [{"role": "user", "content": "What is a brick?"}]
    whole = client.chat.completions.create(model="gen", messages=messages, max_tokens=20)
    text = whole.choices[0].message.content
    assert whole.choices[0].finish_reason in ("stop", "length")
    assert whole.usage.completion_tokens > 0 and whole.usage.prompt_tokens > 0
    parts, usage = [], None
    for chunk in client.chat.completions.create(model="gen", messages=messages, max_tokens=20, stream=True,
                                                stream_options={"include_usage": True}):
        if chunk.choices and chunk.choices[0].delta.content:
            parts.append(chunk.choices[0].delta.content)
        usage = chunk.usage or usage
    assert "".join(parts) == text and len(parts) > 1
    assert usage is not None and usage.completion_tokens == whole.usage.completion_tokens


def test_completions_and_a_plain_pipeline(client: openai.OpenAI) -> None:
    out = client.completions.create(model="gen", prompt="## batching\nEvery stage", max_tokens=12)
    assert out.choices[0].text and out.usage.completion_tokens <= 12
    streamed = "".join(c.choices[0].text for c in client.completions.create(
        model="gen", prompt="## batching\nEvery stage", max_tokens=12, stream=True))
    assert streamed == out.choices[0].text
    # a non-streaming text -> text pipeline answers too (one chunk)
    said = client.chat.completions.create(model="shout", messages=[{"role": "user", "content": "hi there"}])
    assert said.choices[0].message.content == "HI THERE"


def test_embeddings_float_and_base64(client: openai.OpenAI) -> None:
    out = client.embeddings.create(model="embed", input=["a b", "abc"])
    assert [d.embedding for d in out.data] == [[3.0, 1.0, 1.0, -0.5], [3.0, 0.0, 1.0, -0.5]]
    raw = httpx.post(str(client.base_url) + "embeddings",
                     json={"model": "embed", "input": "a b", "encoding_format": "base64"}).json()
    decoded = np.frombuffer(base64.b64decode(raw["data"][0]["embedding"]), dtype="<f4")
    assert decoded.tolist() == [3.0, 1.0, 1.0, -0.5]
    # the client's default (base64 on the wire, decoded by the client) agrees
    assert client.embeddings.create(model="embed", input="a b").data[0].embedding == decoded.tolist()


def test_triton_generate_and_generate_stream(server: tuple[str, LlmBrick]) -> None:
    url = server[0]
    whole = httpx.post(f"{url}/v2/models/gen/generate",
                       json={"text_input": "A brick is", "parameters": {"max_tokens": 10}}).json()
    assert whole["model_name"] == "gen" and whole["text_output"]
    parts = []
    with httpx.stream("POST", f"{url}/v2/models/gen/generate_stream",
                      json={"text_input": "A brick is", "parameters": {"max_tokens": 10}}) as r:
        assert r.headers["content-type"] == "text/event-stream"
        for line in r.iter_lines():
            if line.startswith("data: "):
                parts.append(orjson.loads(line[6:])["text_output"])
    assert "".join(parts) == whole["text_output"]


def test_sse_ends_with_done(server: tuple[str, LlmBrick]) -> None:
    with httpx.stream("POST", f"{server[0]}/v1/chat/completions",
                      json={"model": "gen", "stream": True, "max_tokens": 5,
                            "messages": [{"role": "user", "content": "hi"}]}) as r:
        lines = [line for line in r.iter_lines() if line]
    assert lines[-1] == "data: [DONE]"


@pytest.mark.parametrize(("body", "status", "says"), [
    ({"model": "nope", "messages": [{"role": "user", "content": "x"}]}, 404, "unknown model"),
    ({"model": "gen", "messages": []}, 400, "non-empty list"),
    ({"model": "gen", "messages": [{"role": "user", "content": "x"}], "max_tokens": 10**9}, 400, "context"),
    ({"model": "gen", "messages": [{"role": "user", "content": 5}]}, 400, "must be a string"),
    ({"model": "gen", "messages": [{"role": "user", "content": "x"}], "temperature": "hot"}, 400, "number"),
    ({"model": "gen", "messages": [{"role": "user", "content": "x"}], "max_tokens": -3}, 400, "positive"),
    ({"model": "embed", "messages": [{"role": "user", "content": "x"}]}, 400, "does not fit"),
])
def test_bad_requests_get_4xx_with_a_reason(server: tuple[str, LlmBrick], body: dict, status: int,
                                            says: str) -> None:
    for stream in (False, True):
        r = httpx.post(f"{server[0]}/v1/chat/completions", json={**body, "stream": stream})
        assert r.status_code == status, r.text
        assert says in r.json()["error"]["message"]


@pytest.mark.parametrize(("path", "body", "status", "says"), [
    ("/v2/models/nope/generate", {"text_input": "x"}, 404, "unknown model"),
    ("/v2/models/embed/generate", {"text_input": "x"}, 400, "does not fit generate"),
    ("/v2/models/gen/generate", {"text_input": 5}, 400, "as a string"),
    ("/v2/models/gen/generate", {"text_input": "x", "parameters": {"max_tokens": "a"}}, 400, "positive integer"),
    ("/v2/models/gen/generate_stream", {"text_input": "x", "parameters": {"bogus": 1}}, 400,
     "unknown generation parameter(s) ['bogus']"),
    ("/v2/models/gen/generate_stream", {"text_input": "x", "parameters": [1]}, 400, "must be an object"),
    ("/v1/completions", {"model": "gen", "prompt": 7}, 400, "'prompt' must be a string"),
    ("/v1/completions", {"model": "gen", "prompt": "x", "max_tokens": 1.5}, 400, "positive integer"),
    ("/v1/embeddings", {"model": "embed", "input": 5}, 400, "non-empty list of strings"),
    ("/v1/embeddings", {"model": "embed", "input": ["a"], "encoding_format": "hex"}, 400, "'float' or 'base64'"),
    ("/v1/embeddings", {"model": "nope", "input": ["a"]}, 404, "unknown model"),
])
def test_bad_requests_on_the_other_endpoints_get_4xx_with_a_reason(server: tuple[str, LlmBrick], path: str,
                                                                   body: dict, status: int, says: str) -> None:
    r = httpx.post(f"{server[0]}{path}", json=body)
    assert r.status_code == status, r.text
    assert says in r.json()["error"]["message"]
    r = httpx.post(f"{server[0]}{path}", content=b"not json")
    assert r.status_code == 400 and "not JSON" in r.json()["error"]["message"]


def test_the_openai_client_sees_the_errors(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError, match="unknown model"):
        client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.BadRequestError):
        client.embeddings.create(model="embed", input=[])


def test_a_client_that_hangs_up_frees_its_slot(server: tuple[str, LlmBrick], client: openai.OpenAI) -> None:
    url, brick = server
    before = brick.stream_stats()["cancelled"]
    with httpx.stream("POST", f"{url}/v1/completions",
                      json={"model": "gen", "prompt": "A brick is", "max_tokens": 200, "stream": True}) as r:
        for line in r.iter_lines():
            if line.startswith("data: "):
                break  # leave after the first token
    import time

    for _ in range(300):
        stats = brick.stream_stats()
        if stats["active"] == 0 and stats["cancelled"] > before:
            break
        time.sleep(0.02)
    assert stats["active"] == 0 and stats["cancelled"] == before + 1 and stats["kv_reserved_tokens"] == 0


def test_metrics_count_usage_and_ttft(server: tuple[str, LlmBrick], client: openai.OpenAI) -> None:
    client.chat.completions.create(model="gen", messages=[{"role": "user", "content": "hi"}], max_tokens=8,
                                   stream=True).close()
    client.chat.completions.create(model="gen", messages=[{"role": "user", "content": "hi"}], max_tokens=8)
    text = httpx.get(f"{server[0]}/metrics").text
    assert 'brickwork_llm_completion_tokens_total{model="gen"}' in text
    assert 'brickwork_llm_time_to_first_token_seconds_count{model="gen"}' in text
    assert 'brickwork_llm_requests_total{model="gen",endpoint="chat"}' in text
    assert 'brickwork_llm_kv_reserved_tokens{model="gen",stage="llm"} ' in text


def test_overloaded_is_503_with_retry_after(server: tuple[str, LlmBrick]) -> None:
    r = httpx.post(f"{server[0]}/v1/completions",
                   json={"model": "gen", "prompt": "x", "max_tokens": 250, "stream": True})
    assert r.status_code in (200, 400)  # fits alone (context 256) or not: never a crash
    big = LlmBrick(generator_dir(), kv_budget_tokens=250)
    with serve_in_thread([bw.brick(big).compile(name="small")]) as s:
        statuses = []
        for seed in range(3):  # the held stream must still be running when the second arrives
            # hot seeded sampling: 200 tokens of noise (end-of-text is 1 token in 512)
            held = httpx.stream("POST", f"{s.url}/v1/completions",
                                json={"model": "small", "prompt": "A brick is", "max_tokens": 200,
                                      "stream": True, "temperature": 5.0, "seed": seed})
            with held as r:
                lines = r.iter_lines()
                next(lines)
                second = httpx.post(f"{s.url}/v1/completions",
                                    json={"model": "small", "prompt": "A brick is", "max_tokens": 60})
                rest = list(lines)
            statuses.append((second.status_code, len(rest), rest[-6:], big.stream_stats()))
            if second.status_code == 503:
                assert second.headers["retry-after"] == "1"
                assert "KV budget" in second.json()["error"]["message"]
                break
        assert 503 in [st[0] for st in statuses], statuses
        # alone, the same request fits
        assert httpx.post(f"{s.url}/v1/completions",
                          json={"model": "small", "prompt": "A brick is", "max_tokens": 60}).status_code == 200


def test_v1_tools_lists_every_model_in_openai_tool_format(server: tuple[str, LlmBrick]) -> None:
    tools = {t["function"]["name"]: t for t in httpx.get(f"{server[0]}/v1/tools").json()["data"]}
    assert set(tools) == {"gen", "shout", "embed"}
    assert tools["shout"]["type"] == "function"
    params = tools["gen"]["function"]["parameters"]
    assert params["properties"]["prompt"]["type"] == "string" and params["required"] == ["prompt"]
