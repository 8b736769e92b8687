"""Hiding credentials: the one place that takes passwords out of URLs, messages, logs and status.

Every message built from input passes through `redact_text`; `redact_url` is the form for a
single URL of any scheme, Sentinel's multi-host ones included.
"""

from __future__ import annotations

import re
from urllib.parse import quote, unquote

__all__ = ["redact_text", "redact_url", "url_password"]


def url_password(url: str) -> str | None:
    """The password in a Redis URL of any scheme, decoded, or None; for redaction.

    The userinfo is taken up to the last '@', not where a URL parser ends the host: a
    password with a raw '/' is refused, but must still be hidden in what is said about it.
    """
    _, sep, rest = url.partition("://")
    userinfo, at, _ = rest.rpartition("@")
    _, colon, secret = userinfo.partition(":")
    return unquote(secret) if sep and at and colon and secret else None


def redact_url(url: str) -> str:
    """The URL with any password replaced, safe for logs and errors."""
    return redact_text(url, url_password(url))


# Greedy up to the token's last '@': a password with a raw '@' or '/' is hidden whole.
_URL_USERINFO = re.compile(r"\b([a-z][a-z0-9+.-]*://)(\S*)@", re.IGNORECASE)
# redis-py also takes the password as a query option.
_QUERY_PASSWORD = re.compile(r"([?&]password=)[^&#\s]*", re.IGNORECASE)


def _hide_userinfo(match: re.Match[str]) -> str:
    user, colon, _ = match[2].partition(":")
    if not colon or re.search(r"[/?#]", user):
        return f"{match[1]}***@"  # no telling where a user name would end: hide it all
    return f"{match[1]}{user}:***@"


def redact_text(text: str, *secrets: str | None) -> str:
    """`text` without the password of any URL in it, nor any of `secrets` (as given or
    percent-encoded); the one place that hides credentials in messages, logs and status."""
    for secret in secrets:
        if secret:
            for form in (secret, quote(secret, safe="")):
                text = text.replace(form, "***")
    text = _URL_USERINFO.sub(_hide_userinfo, text)
    return _QUERY_PASSWORD.sub(r"\1***", text)
