"""asyncio with many tasks: gather, cancellation, timeouts, queues, async generators
(aclose, athrow), coroutine send/throw/close by hand, an exception out of a task."""
import asyncio
import sys

from _scale import scale

TASKS = scale(2000, 100000)


async def leaf(i):
    await asyncio.sleep(0)
    if i % 97 == 0:
        raise ValueError(i)
    return i * 2


async def agen(n):
    try:
        for i in range(n):
            yield i
            await asyncio.sleep(0)
    finally:
        pass


async def ticker():
    try:
        while True:
            await asyncio.sleep(0)
    except asyncio.CancelledError:
        return "cancelled"


async def producer(queue, n):
    for i in range(n):
        await queue.put(i)
    await queue.put(None)


async def consumer(queue):
    total = 0
    while (item := await queue.get()) is not None:
        total += item
    return total


async def main():
    results = await asyncio.gather(*(leaf(i) for i in range(TASKS)), return_exceptions=True)
    print("ok", sum(r for r in results if isinstance(r, int)), "errors", sum(isinstance(r, ValueError) for r in results))
    tickers = [asyncio.ensure_future(ticker()) for _ in range(50)]
    await asyncio.sleep(0)
    for t in tickers:
        t.cancel()
    print("cancelled", sum(1 for t in await asyncio.gather(*tickers, return_exceptions=True) if t == "cancelled" or isinstance(t, asyncio.CancelledError)))
    try:
        await asyncio.wait_for(asyncio.sleep(10), 0.01)
    except asyncio.TimeoutError:
        print("timed out")
    print("agen", [x async for x in agen(20)])
    g = agen(10)
    print("first", await g.__anext__())
    await g.aclose()
    g = agen(10)
    await g.__anext__()
    try:
        await g.athrow(KeyError("in agen"))
    except KeyError as e:
        print("athrow propagated", e)
    queue = asyncio.Queue(maxsize=16)
    _, total = await asyncio.gather(producer(queue, scale(5000, 200000)), consumer(queue))
    print("queue total", total)
    coro = leaf(1)
    try:
        coro.send(None)
    except StopIteration:
        pass
    coro.close()
    coro = leaf(2)
    coro.send(None)
    try:
        coro.throw(RuntimeError("thrown into coroutine"))
    except RuntimeError as e:
        print("coroutine throw", e)
    await asyncio.ensure_future(leaf(97))


asyncio.run(main())  # ends with the task's ValueError: exit 1 and its traceback
