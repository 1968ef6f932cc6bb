"""A TCP proxy on loopback with toxiproxy's toxics, for fault drills where no Docker engine (and so no
toxiproxy) exists: latency, reset_peer, down, bandwidth and timeout (a half-open link that never answers).

It runs its own event loop in a thread, so the drill's client and the proxy do not share a loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from dataclasses import dataclass, field


@dataclass
class Toxics:
    latency_ms: int = 0
    bandwidth_kbps: int = 0  # 0 = unlimited
    timeout: bool = False  # accept and swallow data, never forward or answer (half-open link)
    down: bool = False  # refuse new connections and drop the existing ones


@dataclass(eq=False)  # identity: links live in a set
class _Link:
    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


class FaultProxy:
    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.toxics = Toxics()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="fault-proxy", daemon=True)
        self._server: asyncio.Server | None = None
        self._links: set[_Link] = set()
        self.port = 0

    # ---- lifecycle

    def start(self) -> FaultProxy:
        self._thread.start()
        self.port = self._call(self._listen())
        return self

    def stop(self) -> None:
        self._call(self._shutdown())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def _call(self, coroutine):  # type: ignore[no-untyped-def]
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=30)

    async def _listen(self) -> int:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port or 0)
        return int(self._server.sockets[0].getsockname()[1])

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        await asyncio.sleep(0.05)  # connections accepted just before the close become tasks first
        await self._drop_all(reset=True)
        # Links still being set up (or torn down) finish on their own (their `finally` closes the sockets; a
        # task cancelled before it ever ran would skip it), and only stragglers are cancelled.
        pending = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        if pending:
            _, stragglers = await asyncio.wait(pending, timeout=2)
            for task in stragglers:
                task.cancel()
            await asyncio.gather(*stragglers, return_exceptions=True)
        await asyncio.sleep(0.05)  # closing transports finish on the loop's next turns

    # ---- toxics, as the drills call them

    def set(self, **toxics: object) -> None:
        """Replace the toxics (e.g. set(latency_ms=200)); set() clears them."""
        self.toxics = Toxics(**toxics)  # type: ignore[arg-type]
        if self.toxics.down:
            self._call(self._go_down())
        elif self._server is None:
            self._call(self._listen())

    def reset_peers(self) -> None:
        """Cut every open connection with a TCP reset, in the middle of whatever it was doing."""
        self._call(self._drop_all(reset=True))

    async def _go_down(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        await self._drop_all(reset=True)

    async def _drop_all(self, *, reset: bool) -> None:
        for link in list(self._links):
            for writer in (link.client, link.upstream):
                sock = writer.get_extra_info("socket")
                if reset and sock is not None:
                    with contextlib.suppress(OSError):
                        # SO_LINGER 0: close() sends RST instead of FIN, like toxiproxy's reset_peer.
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                writer.close()
            for task in link.tasks:
                task.cancel()
        self._links.clear()

    # ---- the data path

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_writer: asyncio.StreamWriter | None = None
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
            link = _Link(client=writer, upstream=up_writer)
            self._links.add(link)
            link.tasks = [
                asyncio.create_task(self._pipe(reader, up_writer)),
                asyncio.create_task(self._pipe(up_reader, writer)),
            ]
            await asyncio.gather(*link.tasks, return_exceptions=True)
            self._links.discard(link)
        except OSError:
            pass
        finally:  # also when cancelled mid-connect by a shutdown: no socket is left open
            for stream in (writer, up_writer):
                if stream is not None:
                    stream.close()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.CancelledError, ConnectionError):
            while data := await reader.read(65536):
                toxics = self.toxics
                if toxics.timeout:  # dropped, as toxiproxy's timeout toxic with timeout=0: no answer, ever
                    continue
                if toxics.latency_ms:
                    await asyncio.sleep(toxics.latency_ms / 1000)
                if toxics.bandwidth_kbps:
                    await asyncio.sleep(len(data) / (toxics.bandwidth_kbps * 1024 / 8))
                writer.write(data)
                await writer.drain()
        with contextlib.suppress(OSError):
            writer.close()
