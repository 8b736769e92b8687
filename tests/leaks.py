"""Finding any trace of a secret in what a test saw: messages, reprs, chained exceptions."""

from __future__ import annotations


def leaked(text: str, password: str) -> list[str]:
    """Every substring of `password` of length >= 3 found in `text`."""
    n = len(password)
    parts = {password[i:j] for i in range(n) for j in range(i + 3, n + 1)}
    return sorted(p for p in parts if p in text)


def chain_text(exc: BaseException) -> str:
    """What a traceback of `exc` could show: it and every exception chained to it."""
    seen: list[str] = []
    current: BaseException | None = exc
    while current is not None and len(seen) < 20:
        seen += [str(current), repr(current), repr(current.args)]
        current = current.__cause__ or current.__context__
    return "\n".join(seen)
