"""Bearer tokens and their roles, read from a file or a mounted Secret and reloaded on change."""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import time
from enum import StrEnum
from pathlib import Path

from ..errors import ConfigError

log = logging.getLogger("jobfleet.admin")

MIN_TOKEN_LENGTH = 16
RELOAD_INTERVAL = 1.0  # seconds between two looks at the tokens' files


class Role(StrEnum):
    """What a token may do: `viewer` reads (GET), `admin` does everything."""

    VIEWER = "viewer"
    ADMIN = "admin"

    def allows(self, needed: Role) -> bool:
        return self is Role.ADMIN or needed is Role.VIEWER


ROLE_NAMES = ", ".join(r.value for r in Role)


def _digest(token: str) -> bytes:
    # Compared as fixed-length digests: compare_digest on the raw strings would return early
    # on a length mismatch, and the raw tokens need not be kept in memory at all.
    return hashlib.sha256(token.encode()).digest()


def _role(name: str, where: str) -> Role:
    try:
        return Role(name)
    except ValueError:
        # The word is not quoted: in a file whose columns were swapped it is the token.
        raise ConfigError(f"{where}: unknown role (expected one of {ROLE_NAMES})") from None


def _token(token: str, where: str) -> str:
    if len(token) < MIN_TOKEN_LENGTH:
        raise ConfigError(f"{where}: a token must have at least {MIN_TOKEN_LENGTH} characters")
    return token


def _lines(text: str) -> list[tuple[int, str]]:
    return [
        (n, line.strip())
        for n, line in enumerate(text.splitlines(), 1)
        if line.strip() and not line.lstrip().startswith("#")
    ]


def parse_file(text: str, name: str) -> list[tuple[str, Role]]:
    """A tokens file: one `<role> <token>` a line; blank lines and `#` comments skipped."""
    out = []
    for n, line in _lines(text):
        words = line.split()
        where = f"{name}, line {n}"
        if len(words) != 2:
            raise ConfigError(f"{where}: expected '<role> <token>'")
        role = _role(words[0], where)  # first: swapped columns are the likelier mistake
        out.append((_token(words[1], where), role))
    return out


def parse_dir(directory: Path) -> list[tuple[str, Role]]:
    """A mounted Secret: one file per role (`admin`, `viewer`), one token a line.

    Entries starting with '.' are skipped: Kubernetes keeps its `..data` link and the
    timestamped directory it points to beside the keys.
    """
    out = []
    for entry in sorted(directory.iterdir()):
        if entry.name.startswith("."):
            continue
        role = _role(entry.name, f"{directory}: key {entry.name!r}")
        for n, line in _lines(entry.read_text()):
            where = f"{directory / entry.name}, line {n}"
            if len(line.split()) != 1:
                raise ConfigError(f"{where}: expected one token a line")
            out.append((_token(line, where), role))
    return out


def load(path: Path) -> dict[bytes, Role]:
    """The digests of the tokens at `path` (a file or a directory) and their roles."""
    try:
        pairs = parse_dir(path) if path.is_dir() else parse_file(path.read_text(), str(path))
    except OSError as exc:
        raise ConfigError(f"cannot read tokens at {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"tokens at {path} are not UTF-8 text") from None
    tokens: dict[bytes, Role] = {}
    for token, role in pairs:
        digest = _digest(token)
        if tokens.setdefault(digest, role) is not role:
            raise ConfigError(f"{path}: a token is listed with two roles")
    if not tokens:
        raise ConfigError(f"{path}: no tokens (expected '<role> <token>' lines)")
    return tokens


class TokenStore:
    """The tokens the server accepts, re-read at most once per `interval` when asked.

    A reload that fails (a half-written file, a Secret being swapped) keeps the tokens that
    were valid before and logs why, without any of the file's content.
    """

    def __init__(self, path: Path | str, *, interval: float = RELOAD_INTERVAL) -> None:
        self.path = Path(path)
        self.interval = interval
        self._tokens = load(self.path)  # the first load must succeed: ConfigError otherwise
        self._checked = time.monotonic()
        self._failing = False

    def refresh(self) -> None:
        """Re-read the tokens if `interval` has passed since the last look."""
        now = time.monotonic()
        if now - self._checked < self.interval:
            return
        self._checked = now
        try:
            tokens = load(self.path)
        except ConfigError as exc:
            if not self._failing:
                log.warning("keeping the previous tokens: %s", exc)
            self._failing = True
            return
        if self._failing:
            log.info("tokens at %s readable again", self.path)
        self._failing = False
        if tokens != self._tokens:
            log.info("tokens reloaded from %s (%d tokens)", self.path, len(tokens))
            self._tokens = tokens

    def role(self, token: str) -> Role | None:
        """The role of `token`, or None; every known token is compared, in constant time."""
        self.refresh()
        given = _digest(token)
        found: Role | None = None
        for digest, role in self._tokens.items():
            if hmac.compare_digest(digest, given):
                found = role
        return found

    def __repr__(self) -> str:
        return f"TokenStore({os.fspath(self.path)!r}, {len(self._tokens)} tokens)"
