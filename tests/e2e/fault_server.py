"""A broken "sidecar" on 127.0.0.N:9400 whose way of failing the test switches at will.

asyncio in a thread of its own, so the operator under test (another thread of the same process) sees
it as just another endpoint. Every fault is bounded: ``stop()`` cancels whatever connection is still
hanging or flooding.
"""

from __future__ import annotations

import asyncio
import os
import socket
import struct
import threading
from collections.abc import Awaitable, Callable

Fault = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def _response(body: bytes, length: int | None = None, framed: bool = True) -> bytes:
    head = "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
    if framed:
        head += f"Content-Length: {len(body) if length is None else length}\r\n"
    head += "Connection: close\r\n\r\n"
    return head.encode() + body


class FaultServer:
    """Listens on ``address``:``port``; each connection is served by the current fault."""

    def __init__(self, address: str, port: int) -> None:
        self.address, self.port = address, port
        self.fault: Fault = self.hang
        self.connections = 0
        self._loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._stopping: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name=f"fault {address}", daemon=True)

    def start(self) -> FaultServer:
        self._thread.start()
        assert self._started.wait(10), "fault server did not start"
        return self

    def stop(self) -> None:
        if self._stopping is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)
        self._thread.join(10)
        assert not self._thread.is_alive(), "fault server did not stop"

    def _run(self) -> None:
        self._loop.run_until_complete(self._main())
        self._loop.close()

    async def _main(self) -> None:
        self._stopping = asyncio.Event()
        tasks: set[asyncio.Task[None]] = set()

        async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.connections += 1
            task = asyncio.current_task()
            assert task is not None
            tasks.add(task)
            try:
                await self.fault(reader, writer)
            except (ConnectionError, asyncio.CancelledError):
                pass
            finally:
                writer.close()
                tasks.discard(task)

        server = await asyncio.start_server(accept, self.address, self.port)
        self.port = server.sockets[0].getsockname()[1]  # port 0: the one the system picked
        self._started.set()
        await self._stopping.wait()
        server.close()
        for task in list(tasks):
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()

    # -- the faults ---------------------------------------------------------------------------

    @staticmethod
    async def _request(reader: asyncio.StreamReader) -> None:
        await reader.readuntil(b"\r\n\r\n")

    async def hang(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Accepts, reads the request, never answers."""
        await self._request(reader)
        assert self._stopping is not None
        await self._stopping.wait()

    async def stall(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Answers 200 and the first bytes of a long body, then never sends the rest."""
        await self._request(reader)
        writer.write(_response(b"# HELP vllm:num_requests_running", length=100_000))
        await writer.drain()
        assert self._stopping is not None
        await self._stopping.wait()

    async def reset(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Resets the connection (RST, not FIN) as soon as the request arrives."""
        await self._request(reader)
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()

    @staticmethod
    def serving(body: bytes, length: int | None = None, framed: bool = True) -> Fault:
        """Answers 200 with ``body`` (a lying ``length``, or no length at all), then closes."""

        async def fault(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await FaultServer._request(reader)
            writer.write(_response(body, length, framed))
            await writer.drain()

        return fault

    @staticmethod
    def garbage() -> Fault:
        return FaultServer.serving(os.urandom(4096))

    async def flood(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """A chunked body that never ends (until the client hangs up or the server stops)."""
        await self._request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n")
        line = b"# " + b"x" * 1021 + b"\n"
        chunk = b"%x\r\n%s\r\n" % (len(line) * 64, line * 64)
        while True:
            writer.write(chunk)
            await writer.drain()
