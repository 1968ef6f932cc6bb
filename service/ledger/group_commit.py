"""Group commit: concurrent posts coalesced into one database call (docs/adr/0006-group-commit-and-batches.md).

Each POST /v1/transactions hands its transaction to the committer and waits for its own outcome. A few
flusher tasks each take whatever is queued (up to `max_batch`) and post it with `posting.post_each`: one
round trip, one commit (one WAL flush) and one balance update per account for the lot, each transaction
still posted, replayed or refused on its own. Under light load a transaction goes alone at once (there is
no wait unless `max_wait_seconds` asks for one); under heavy load batches form by themselves while the
flushers are busy, which is when coalescing pays.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass

import asyncpg
from opentelemetry import context as otel_context
from opentelemetry import trace

from ledger import posting, telemetry

log = logging.getLogger(__name__)

Acquire = Callable[[], AbstractAsyncContextManager[asyncpg.Connection]]


@dataclass(slots=True)
class _Pending:
    submission: posting.Submission
    future: asyncio.Future[posting.Outcome]
    context: otel_context.Context


class GroupCommitter:
    def __init__(self, acquire: Acquire, *, max_batch: int, max_wait_seconds: float, flushers: int) -> None:
        self._acquire = acquire
        self.max_batch = max_batch
        self.max_wait_seconds = max_wait_seconds
        self.flushers = flushers
        self._queue: deque[_Pending] = deque()
        self._arrived = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def submit(self, submission: posting.Submission) -> posting.Outcome:
        """Post one transaction with whatever else is queued; its own outcome. Database trouble that
        concerns the whole call (unreachable, pool exhausted) is raised as for a single post."""
        future: asyncio.Future[posting.Outcome] = asyncio.get_running_loop().create_future()
        self._queue.append(_Pending(submission, future, otel_context.get_current()))
        self._arrived.set()
        return await future

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._flush_forever(), name=f"group-commit-{i}") for i in range(self.flushers)
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        while self._queue:  # nothing should be left: the HTTP server has drained before this runs
            pending = self._queue.popleft()
            if not pending.future.done():
                pending.future.cancel()

    async def _flush_forever(self) -> None:
        while True:
            while not self._queue:
                self._arrived.clear()
                await self._arrived.wait()
            if self.max_wait_seconds > 0 and len(self._queue) < self.max_batch:
                await asyncio.sleep(self.max_wait_seconds)
            batch = self._take()
            if batch:
                await self._flush(batch)

    def _take(self) -> list[_Pending]:
        """Up to `max_batch` queued transactions, at most one per idempotency key (a repeated key waits for
        the next call, where it is answered as a replay or waits for the first one's outcome)."""
        batch: list[_Pending] = []
        keys: set[tuple[str, str]] = set()
        skipped: list[_Pending] = []
        while self._queue and len(batch) < self.max_batch:
            pending = self._queue.popleft()
            if pending.future.done():  # the client went away before its turn came
                continue
            key = (pending.submission.idempotency.scope, pending.submission.idempotency.key)
            if key in keys:
                skipped.append(pending)
                continue
            keys.add(key)
            batch.append(pending)
        self._queue.extendleft(reversed(skipped))
        return batch

    async def _flush(self, batch: list[_Pending]) -> None:
        telemetry.group_commit_batch_size.observe(len(batch))
        # One transaction: its trace continues here. Several: the batch's span links to each request's.
        parent = batch[0].context if len(batch) == 1 else otel_context.Context()
        links = [] if len(batch) == 1 else _links(batch)
        token = otel_context.attach(parent)
        try:
            with telemetry.tracer.start_as_current_span("ledger.group_commit", links=links):
                async with self._acquire() as conn:
                    outcomes = await posting.post_each(conn, [p.submission for p in batch])
        except asyncio.CancelledError:
            for pending in batch:
                if not pending.future.done():
                    pending.future.cancel()
            raise
        except Exception as exc:  # the call failed as a whole: each caller gets the same error
            for pending in batch:
                if not pending.future.done():
                    pending.future.set_exception(exc)
            return
        finally:
            otel_context.detach(token)
        for pending, outcome in zip(batch, outcomes, strict=True):
            if not pending.future.done():
                pending.future.set_result(outcome)


def _links(batch: list[_Pending]) -> list[trace.Link]:
    links = []
    for pending in batch:
        span_context = trace.get_current_span(pending.context).get_span_context()
        if span_context.is_valid:
            links.append(trace.Link(span_context))
    return links


@contextlib.asynccontextmanager
async def running(
    acquire: Acquire, *, max_batch: int, max_wait_seconds: float, flushers: int
) -> AsyncIterator[GroupCommitter]:
    committer = GroupCommitter(acquire, max_batch=max_batch, max_wait_seconds=max_wait_seconds, flushers=flushers)
    committer.start()
    try:
        yield committer
    finally:
        await committer.stop()
