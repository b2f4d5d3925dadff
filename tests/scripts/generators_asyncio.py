"""Generators, send/throw/close, yield from, async generators and asyncio: output must not change
when traced."""
import asyncio


def counter(n):
    received = []
    try:
        for i in range(n):
            got = yield i
            if got is not None:
                received.append(got)
    except KeyError as ex:
        yield f"caught {ex!r} after {received}"
    finally:
        print("counter finally", received)


def delegate():
    result = yield from counter(3)
    return result


def generators():
    g = counter(5)
    print(next(g), g.send("x"), g.send("y"))
    print(g.throw(KeyError("k")))
    g.close()
    print(list(delegate()))
    print(sum(x * x for x in range(10)), [y for y in (z + 1 for z in range(4))])
    g2 = counter(2)
    next(g2)
    try:
        g2.throw(ValueError("boom"))
    except ValueError as ex:
        print("propagated", ex)


async def ticker(n):
    for i in range(n):
        await asyncio.sleep(0)
        yield i


async def worker(name, delay_steps):
    total = 0
    async for i in ticker(delay_steps):
        total += i
    if name == "bad":
        raise RuntimeError("worker failed")
    return f"{name}:{total}"


async def main():
    results = await asyncio.gather(worker("a", 3), worker("b", 5), worker("bad", 2), return_exceptions=True)
    print([repr(r) if isinstance(r, Exception) else r for r in results])
    task = asyncio.ensure_future(worker("c", 4))
    await asyncio.sleep(0)
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        print("cancelled")
    agen = ticker(3)
    print(await agen.__anext__(), await agen.__anext__())
    await agen.aclose()
    try:
        await asyncio.wait_for(asyncio.sleep(10), 0.01)
    except asyncio.TimeoutError:
        print("timeout")


generators()
asyncio.run(main())
print("done")
