"""Dynamic micro-batching: the texts of concurrent requests grouped into length-sorted model calls.

::

    request A (3 texts) ─┐
    request B (1 text)  ─┼─▶ waiting texts ─▶ worker: after the first text, wait up to max_wait_ms
    request C (5 texts) ─┘                    for more (only while requests come together); take
                                              texts in arrival order up to batch_tokens; sort them
                                              by length; one model call in the model thread
                                              ─▶ each result to its request

The wait pays only under concurrency: it runs while the last model call held texts of more than
one request, and only until as many texts wait as that call held, so a lone client is answered at
once (no added latency) and concurrent clients share full calls without idle waits.

One worker per served model; every model call runs in one shared thread (PyTorch uses its own
threads inside a call), so the event loop keeps reading requests while a batch runs. The queue is
bounded in texts: :meth:`MicroBatcher.submit` refuses a request that would pass ``max_queue``.
A text whose request was cancelled (the client went away) is skipped, not computed.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any


class QueueFull(Exception):
    """More texts are waiting than ``max_queue`` allows."""


@dataclass
class Waiting:
    example: Any  # what the model's call takes for one text
    length: int  # its tokens
    future: asyncio.Future
    request: int  # which submit() it came from


class MicroBatcher:
    """Groups ``submit``-ted examples into calls of ``run(examples) -> results`` (same order)."""

    def __init__(self, run: Callable[[list], list], executor: Executor, max_queue: int, max_wait_ms: float,
                 batch_tokens: int):  # fmt: skip
        self.run, self.executor = run, executor
        self.max_queue, self.max_wait, self.batch_tokens = max_queue, max_wait_ms / 1000, batch_tokens
        self.waiting: deque[Waiting] = deque()
        self.waiting_tokens = 0  # the padded tokens of ``waiting`` (kept, not summed at each wake-up)
        self.running = 0  # texts in the model call now
        self.arrived = asyncio.Event()
        self.idle = asyncio.Event()
        self.idle.set()
        self.batches = self.texts = 0  # model calls made and texts they ran (/metadata, the load benchmark)
        self.requests = 0  # submit() calls so far (each text records its own)
        self.together = False  # the last model call held texts of more than one request
        self.last_size = 1  # texts in the last model call
        self.task: asyncio.Task | None = None

    @property
    def pending(self) -> int:
        """Texts accepted and not answered yet."""
        return len(self.waiting) + self.running

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self.work())

    async def submit(self, examples: list, lengths: list[int]) -> list:
        """The model's result for each example, once its batch has run."""
        if self.pending + len(examples) > self.max_queue:
            raise QueueFull(f"{self.pending} texts are waiting; the queue holds {self.max_queue} (--max-queue)")
        loop = asyncio.get_running_loop()
        self.requests += 1
        items = [Waiting(e, n, loop.create_future(), self.requests) for e, n in zip(examples, lengths)]
        self.waiting.extend(items)
        self.waiting_tokens += sum(w.length + 2 for w in items)
        self.idle.clear()
        self.arrived.set()
        return list(await asyncio.gather(*(w.future for w in items)))

    async def work(self) -> None:
        while True:
            batch = await self.next_batch()
            if batch:
                await self.call(batch)
            if not self.waiting:
                self.idle.set()

    async def next_batch(self) -> list[Waiting]:
        """The next texts to run: wait for one, then (under concurrency) up to ``max_wait`` for as
        many as the last call held (less once they fill ``batch_tokens``); texts of cancelled
        requests dropped."""
        while not self.waiting:
            self.arrived.clear()
            await self.arrived.wait()
        deadline = asyncio.get_running_loop().time() + (self.max_wait if self.together else 0.0)
        while len(self.waiting) < self.last_size and self.waiting_tokens < self.batch_tokens:
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                break
            self.arrived.clear()
            try:
                await asyncio.wait_for(self.arrived.wait(), left)
            except asyncio.TimeoutError:  # TimeoutError itself from Python 3.11
                break
        batch: list[Waiting] = []
        tokens = 0
        while self.waiting and (not batch or tokens + self.waiting[0].length + 2 <= self.batch_tokens):
            w = self.waiting.popleft()
            self.waiting_tokens -= w.length + 2
            if not w.future.done():  # done: its request was cancelled
                batch.append(w)
                tokens += w.length + 2
        return batch

    async def call(self, batch: list[Waiting]) -> None:
        """One model call for ``batch`` (sorted by length), each result set on its future."""
        batch.sort(key=lambda w: w.length)
        self.running = len(batch)
        self.together = len({w.request for w in batch}) > 1
        self.last_size = len(batch)
        try:
            loop = asyncio.get_running_loop()
            results = await loop.run_in_executor(self.executor, self.run, [w.example for w in batch])
        except Exception as e:  # the request handlers turn it into a JSON error
            for w in batch:
                if not w.future.done():
                    w.future.set_exception(e)
        else:
            for w, r in zip(batch, results):
                if not w.future.done():
                    w.future.set_result(r)
        finally:
            self.running = 0
            self.batches += 1
            self.texts += len(batch)

    async def drain(self) -> None:
        """Wait until every accepted text is answered, then stop the worker."""
        while self.pending:
            await self.idle.wait()
            await asyncio.sleep(0)
        if self.task is not None:
            self.task.cancel()
