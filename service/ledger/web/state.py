"""Typed application state shared by the handlers, and per-request values."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import asyncpg
from aiohttp import web

from ledger import db
from ledger.audit import Chainer
from ledger.config import Settings
from ledger.group_commit import GroupCommitter
from ledger.keys import KeyCache

settings_key = web.AppKey("settings", Settings)
pool_key = web.AppKey("pool", asyncpg.Pool)
chainer_key = web.AppKey("chainer", Chainer)
key_cache_key = web.AppKey("key_cache", KeyCache)
committer_key = web.AppKey("committer", GroupCommitter)


@contextlib.asynccontextmanager
async def connection(request: web.Request) -> AsyncIterator[asyncpg.Connection]:
    settings = request.app[settings_key]
    async with db.connection(request.app[pool_key], timeout_seconds=settings.db_acquire_timeout_seconds) as conn:
        yield conn
