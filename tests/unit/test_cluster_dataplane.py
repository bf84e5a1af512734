"""The ingress side of the data plane's wire (``cluster/_dataplane.py``), fed bytes by hand: an
answer split anywhere across reads, or several in one read, comes out whole and in order; the
handshake's ACK is not an answer; a lost connection fails the handshake and is reported."""

from __future__ import annotations

import asyncio

import pytest

from brickwork.cluster._dataplane import ACK, BATCH, FRAME, HEADER, HELD, ClientProtocol


class _Transport:
    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.closed = False

    def writelines(self, chunks: list[bytes]) -> None:
        self.sent.append(b"".join(chunks))

    def close(self) -> None:
        self.closed = True


def _wire() -> bytes:
    return (HEADER.pack(0, ACK) + HEADER.pack(5, FRAME) + b"hello" + HEADER.pack(8, HELD)
            + (7).to_bytes(8, "little") + HEADER.pack(0, FRAME))


@pytest.mark.parametrize("step", [1, 3, 8, 13, 1000])
def test_answers_come_out_whole_and_in_order_however_the_bytes_arrive(step: int) -> None:
    async def go() -> tuple[list[tuple[int, bytes]], bool]:
        answers: list[tuple[int, bytes]] = []
        proto = ClientProtocol(lambda tag, body: answers.append((tag, body)), lambda p: None)
        wire = _wire()
        for i in range(0, len(wire), step):
            proto.data_received(wire[i:i + step])
        return answers, proto.acked.done() and proto.acked.exception() is None

    answers, acked = asyncio.run(go())
    assert acked
    assert answers == [(FRAME, b"hello"), (HELD, (7).to_bytes(8, "little")), (FRAME, b"")]


def test_a_batch_is_sent_as_header_and_frame() -> None:
    async def go() -> list[bytes]:
        proto = ClientProtocol(lambda tag, body: None, lambda p: None)
        transport = _Transport()
        proto.connection_made(transport)
        proto.send(b"frame-bytes")
        proto.close()
        assert transport.closed
        return transport.sent

    assert asyncio.run(go()) == [HEADER.pack(11, BATCH) + b"frame-bytes"]


def test_a_lost_connection_fails_the_handshake_and_is_reported() -> None:
    async def go() -> tuple[list[object], BaseException | None]:
        lost: list[object] = []
        proto = ClientProtocol(lambda tag, body: None, lost.append)
        proto.data_received(HEADER.pack(5, FRAME) + b"he")  # half an answer, then nothing
        proto.connection_lost(None)
        return lost, proto.acked.exception()

    lost, exc = asyncio.run(go())
    assert len(lost) == 1 and isinstance(exc, ConnectionError)
