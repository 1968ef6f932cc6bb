"""The real app served on a loopback port from a background thread, for synchronous clients
(hypothesis' state machines and schemathesis)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from aiohttp import web

from ledger.app import create_app
from ledger.config import Settings


class LiveServer:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="live-server", daemon=True)
        self._runner: web.AppRunner | None = None
        self.url = ""

    def _call(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=60)

    async def _start(self) -> int:
        self._runner = web.AppRunner(create_app(self._settings), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None and server.sockets
        port: int = server.sockets[0].getsockname()[1]
        return port

    def __enter__(self) -> LiveServer:
        self._thread.start()
        self.url = f"http://127.0.0.1:{self._call(self._start())}"
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._runner is not None:
            self._call(self._runner.cleanup())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()
