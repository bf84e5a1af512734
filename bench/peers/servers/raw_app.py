"""The load generator's ceiling: a minimal HTTP/1.1 keep-alive server on raw asyncio streams.

No framework at all (hand-parsed request line, headers and Content-Length), so its throughput
tells how fast the load generator itself can go on this machine.
POST /predict {"x": [64 floats]} -> {"y": [...]};  GET /health -> 200.
"""
import asyncio
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402

from common import make_model, parse_args  # noqa: E402

args = parse_args()
model = make_model(args.model, args.cache)


def response(status: str, body: bytes, ctype: bytes = b"application/json") -> bytes:
    return (b"HTTP/1.1 " + status.encode() + b"\r\ncontent-type: " + ctype +
            b"\r\ncontent-length: " + str(len(body)).encode() + b"\r\n\r\n" + body)


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.split(b"\r\n")
            method, path, _ = lines[0].split(b" ", 2)
            n = 0
            for ln in lines[1:]:
                if ln[:15].lower() == b"content-length:":
                    n = int(ln[15:])
            body = await reader.readexactly(n) if n else b""
            if method == b"GET":
                out = response("200 OK", b"ok", b"text/plain")
            else:
                x = np.asarray(json.loads(body)["x"], dtype=np.float32).reshape(1, -1)
                out = response("200 OK", json.dumps({"y": model(x)[0].tolist()}).encode())
            writer.write(out)
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", args.port, backlog=1024)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        import uvloop  # noqa: F401 - not required

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(main())
