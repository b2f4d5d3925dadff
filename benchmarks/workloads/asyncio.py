"""asyncio: producer and consumer tasks over queues, gather, many short coroutine steps."""

import asyncio as _asyncio


async def produce(queue, n):
    for i in range(n):
        await queue.put(i)
    await queue.put(None)


async def consume(queue):
    total = 0
    while True:
        item = await queue.get()
        if item is None:
            return total
        total += await square(item)


async def square(x):
    await _asyncio.sleep(0)
    return x * x


async def main(pairs, n):
    queues = [_asyncio.Queue(maxsize=8) for _ in range(pairs)]
    tasks = [produce(q, n) for q in queues] + [consume(q) for q in queues]
    return sum(r for r in await _asyncio.gather(*tasks) if r)


def run(scale):
    return _asyncio.run(main(20, max(5, int(400 * scale))))
