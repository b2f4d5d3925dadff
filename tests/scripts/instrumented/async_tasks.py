import asyncio

import etwtrace


async def leaf(name):
    await asyncio.sleep(0)
    etwtrace._mark_stack("leaf-" + name)
    await asyncio.sleep(0.001)
    etwtrace._mark_stack("leaf-" + name)
    return name


async def worker(name):
    return await leaf(name)


async def main():
    results = await asyncio.gather(asyncio.create_task(worker("a")), asyncio.create_task(worker("b")))
    etwtrace._mark_stack("main")
    return results


asyncio.run(main())
