"""The local HTTP server of `bench/run.sh bodies` (aiohttp, its own process): GET / is "ok".

Prints `PORT <n>` once listening on 127.0.0.1 and serves until SIGTERM.
"""

from __future__ import annotations

import asyncio
import signal

from aiohttp import web


async def ok(request: web.Request) -> web.Response:
    return web.Response(text="ok")


async def serve() -> None:
    app = web.Application()
    app.router.add_get("/", ok)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    print(f"PORT {port}", flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await runner.cleanup()


if __name__ == "__main__":
    asyncio.run(serve())
