"""The raw floor: the fastest a Python HTTP front can answer a v2 infer request on this box.

The same stack as brickwork's server (an asyncio protocol over httptools' parser, on uvloop,
orjson), no framework and no model: it parses the request line, headers and the v2 JSON body
(``orjson.loads``, then takes the first input's ``data`` and checks it has 64 numbers, as any
server must look at what it was sent) and answers a fixed, pre-encoded v2 response (the model's
answer to one fixed vector). What brickwork adds on top of this floor is its whole per-request
cost: v2 decoding into tensors, validation, the engine, batching, the model, encoding.

POST /v2/models/<m>/infer -> 200, the fixed answer (400 on a body that is not a v2 request);
GET /v2/health/ready -> 200. Keep-alive HTTP/1.1; requests on one connection answered in order.
Runs in the bench venv (httptools, uvloop, orjson, numpy).
"""
import asyncio
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import httptools  # noqa: E402
import numpy as np  # noqa: E402
import orjson  # noqa: E402
import uvloop  # noqa: E402

from common import IN_DIM, make_model, parse_args  # noqa: E402

args = parse_args()
_y = make_model(args.model, args.cache)(np.ones((1, IN_DIM), np.float32))[0]
_ANSWER = orjson.dumps({"model_name": args.model, "model_version": "1", "outputs": [
    {"name": "y", "datatype": "FP32", "shape": [1, int(_y.shape[0])], "data": _y.tolist()}]})


def _reply(status: bytes, body: bytes, ctype: bytes = b"application/json") -> bytes:
    return (b"HTTP/1.1 " + status + b"\r\ncontent-type: " + ctype + b"\r\ncontent-length: "
            + str(len(body)).encode() + b"\r\n\r\n" + body)


OK_INFER = _reply(b"200 OK", _ANSWER)
OK_EMPTY = _reply(b"200 OK", b"", b"text/plain")
BAD = _reply(b"400 Bad Request", b'{"error":"not a v2 infer request with 64 FP32 numbers"}')
NOT_FOUND = _reply(b"404 Not Found", b"", b"text/plain")


class Conn(asyncio.Protocol):
    __slots__ = ("parser", "transport", "url", "chunks")

    def __init__(self) -> None:
        self.parser = httptools.HttpRequestParser(self)
        self.transport = None
        self.url = b""
        self.chunks: list[bytes] = []

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.transport.write(BAD)
            self.transport.close()

    def on_url(self, url: bytes) -> None:
        self.url = url

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)

    def on_message_complete(self) -> None:
        url, chunks = self.url, self.chunks
        self.chunks = []
        if url.endswith(b"/infer"):
            try:
                data = orjson.loads(chunks[0] if len(chunks) == 1 else b"".join(chunks))
                ok = len(data["inputs"][0]["data"]) == IN_DIM
            except (orjson.JSONDecodeError, KeyError, IndexError, TypeError):
                ok = False
            out = OK_INFER if ok else BAD
        elif url.startswith(b"/v2/health"):
            out = OK_EMPTY
        else:
            out = NOT_FOUND
        self.transport.write(out)
        if not self.parser.should_keep_alive():
            self.transport.close()


async def main() -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Conn, "127.0.0.1", args.port, backlog=1024)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    uvloop.run(main())
