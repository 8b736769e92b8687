"""Tokens: the file and Secret-directory formats, their errors, and reloading while serving
(a rewritten file, a Kubernetes Secret's `..data` symlink swapped)."""

from __future__ import annotations

import os
from pathlib import Path

import aiohttp
import jobfleet
import pytest
from admin_harness import Tokens, new_token, start
from jobfleet.admin.app import create_app
from jobfleet.admin.auth import Role, TokenStore
from leaks import leaked
from waiting import until


def test_a_file_of_role_token_lines(tmp_path: Path):
    tokens = Tokens()
    path = tmp_path / "t"
    path.write_text(tokens.file_text())
    store = TokenStore(path)
    assert store.role(tokens.admin) is Role.ADMIN
    assert store.role(tokens.viewer) is Role.VIEWER
    assert store.role(tokens.wrong) is None
    assert store.role("") is None
    assert tokens.admin not in repr(store)


def secret_dir(root: Path, version: str, keys: dict[str, str]) -> None:
    """What the kubelet makes of a Secret: the keys in a timestamped directory, `..data`
    pointing at it, and each key a link through `..data`; an update swaps `..data`."""
    data = root / f"..{version}"
    data.mkdir()
    for key, value in keys.items():
        (data / key).write_text(value)
    tmp = root / "..data_tmp"
    tmp.symlink_to(data.name)
    os.replace(tmp, root / "..data")
    for key in keys:
        if not (root / key).is_symlink():
            (root / key).symlink_to(f"..data/{key}")


def test_a_secret_directory_of_role_keys(tmp_path: Path):
    tokens = Tokens()
    other = new_token()
    secret_dir(
        tmp_path, "v1", {"admin": f"{tokens.admin}\n", "viewer": f"{tokens.viewer}\n{other}"}
    )
    store = TokenStore(tmp_path)
    assert [store.role(t) for t in (tokens.admin, tokens.viewer, other, tokens.wrong)] == [
        Role.ADMIN,
        Role.VIEWER,
        Role.VIEWER,
        None,
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("admin\n", "line 1: expected '<role> <token>'"),
        ("# c\n\nroot {t}\n", "line 3: unknown role (expected one of viewer, admin)"),
        ("{t} admin\n", "line 1: unknown role"),
        ("admin short\n", "line 1: a token must have at least 16 characters"),
        ("admin {t}\nviewer {t}\n", "a token is listed with two roles"),
        ("# nothing\n", "no tokens"),
    ],
)
def test_mistakes_in_a_file_are_named_without_quoting_it(tmp_path: Path, text, message):
    token = new_token()
    path = tmp_path / "t"
    path.write_text(text.format(t=token))
    with pytest.raises(jobfleet.ConfigError) as err:
        TokenStore(path)
    assert message in str(err.value)
    assert [p for p in leaked(str(err.value), token) if len(p) >= 4] == []


def test_a_secret_directory_with_a_key_that_is_no_role(tmp_path: Path):
    secret_dir(tmp_path, "v1", {"admins": new_token()})
    with pytest.raises(jobfleet.ConfigError, match="key 'admins': unknown role"):
        TokenStore(tmp_path)


def test_a_missing_file(tmp_path: Path):
    with pytest.raises(jobfleet.ConfigError, match=r"cannot read tokens at .*/nope: No such file"):
        TokenStore(tmp_path / "nope")


async def serve_with(redis_url: str, path: Path):
    client = jobfleet.Client(redis_url)
    runner, url = await start(create_app(client, TokenStore(path)))
    return client, runner, url


async def roles(session: aiohttp.ClientSession, url: str, *tokens: str) -> list[str | None]:
    out = []
    for token in tokens:
        headers = {"Authorization": f"Bearer {token}"}
        async with session.get(url + "/api/v1/whoami", headers=headers) as resp:
            out.append((await resp.json())["role"] if resp.status == 200 else None)
    return out


async def test_a_rewritten_file_takes_effect_while_serving(redis_url, tmp_path: Path, caplog):
    old, new = Tokens(), Tokens()
    path = tmp_path / "tokens"
    path.write_text(old.file_text())
    client, runner, url = await serve_with(redis_url, path)
    async with aiohttp.ClientSession() as session:
        assert await roles(session, url, old.admin, new.admin) == ["admin", None]
        staged = tmp_path / "tokens.new"
        staged.write_text(new.file_text())
        os.replace(staged, path)

        async def swapped() -> bool:
            return await roles(session, url, old.admin, new.admin) == [None, "admin"]

        await until(swapped, timeout=30, what="the new tokens")
        # A broken rewrite keeps the tokens that were valid, and the log says why.
        path.write_text("admin\n")

        async def refused() -> bool:
            still = await roles(session, url, new.admin, new.viewer) == ["admin", "viewer"]
            assert still
            return "keeping the previous tokens" in caplog.text

        await until(refused, timeout=30, what="the broken file to be read")
        assert "line 1: expected '<role> <token>'" in caplog.text
    await runner.cleanup()
    await client.aclose()


async def test_a_secret_update_swaps_the_data_link_while_serving(redis_url, tmp_path: Path):
    old, new = Tokens(), Tokens()
    secret_dir(tmp_path, "2026_12_01_a", {"admin": old.admin, "viewer": old.viewer})
    client, runner, url = await serve_with(redis_url, tmp_path)
    async with aiohttp.ClientSession() as session:
        assert await roles(session, url, old.viewer, new.viewer) == ["viewer", None]
        secret_dir(tmp_path, "2026_12_01_b", {"admin": new.admin, "viewer": new.viewer})
        (tmp_path / "..2026_12_01_a" / "admin").unlink()  # the kubelet removes the old copy
        (tmp_path / "..2026_12_01_a" / "viewer").unlink()

        async def swapped() -> bool:
            got = await roles(session, url, old.admin, old.viewer, new.admin, new.viewer)
            return got == [None, None, "admin", "viewer"]

        await until(swapped, timeout=30, what="the swapped Secret's tokens")
    await runner.cleanup()
    await client.aclose()
