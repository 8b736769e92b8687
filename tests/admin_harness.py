"""The admin API's test pieces: tokens, a served app on a loopback port, a caller."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import jobfleet
from aiohttp import web


def new_token() -> str:
    # Letters that log text hardly ever holds four of in a row, so a leak test that looks
    # for any 4-character piece of a token cannot be fooled by chance (96 bits each).
    return "".join(secrets.choice("QXZJKVWY") for _ in range(32))


@dataclass
class Tokens:
    admin: str = field(default_factory=new_token)
    viewer: str = field(default_factory=new_token)
    wrong: str = field(default_factory=new_token)

    def file_text(self) -> str:
        return f"# role token\nadmin {self.admin}\nviewer {self.viewer}\n"

    def header(self, who: str | None) -> dict[str, str]:
        """The Authorization header of `who`: admin, viewer, wrong, or None (no header)."""
        if who is None:
            return {}
        token = {"admin": self.admin, "viewer": self.viewer, "wrong": self.wrong}[who]
        return {"Authorization": f"Bearer {token}"}


@dataclass
class Server:
    url: str
    tokens: Tokens
    session: aiohttp.ClientSession
    client: jobfleet.Client

    async def call(
        self,
        method: str,
        path: str,
        *,
        who: str | None = "admin",
        json: Any = None,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any, aiohttp.ClientResponse]:
        """(status, parsed JSON body or text, response)."""
        async with self.session.request(
            method,
            self.url + path,
            json=json,
            data=data,
            headers={**self.tokens.header(who), **(headers or {})},
        ) as resp:
            text = await resp.text()
            body: Any = text
            if resp.content_type.endswith("json") and text:
                body = await resp.json(content_type=None)
            return resp.status, body, resp


async def start(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"
