"""The outcomes a worker owes Redis: completions and failures (sent with the next claim) and
releases (sent on exit)."""

from __future__ import annotations

from .engine import ClaimedJob, Failure


class Outbox:
    """Finished jobs' outcomes, kept until Redis has them; a failed send puts them back first
    in line, and the lease token makes a resend Redis already applied a no-op."""

    __slots__ = ("completions", "failures", "releases")

    def __init__(self) -> None:
        self.completions: list[tuple[str, str, str]] = []  # (id, token, result JSON)
        self.failures: list[Failure] = []
        self.releases: list[tuple[str, str]] = []  # (id, token): back in line, attempt uncounted

    @property
    def has_acks(self) -> bool:
        """Completions or failures wait: a reason to call `claim` even for no new jobs."""
        return bool(self.completions or self.failures)

    def __bool__(self) -> bool:
        return bool(self.completions or self.failures or self.releases)

    def complete(self, job: ClaimedJob, result_json: str) -> None:
        self.completions.append((job.id, job.token, result_json))

    def fail(self, failure: Failure) -> None:
        self.failures.append(failure)

    def release(self, job: ClaimedJob) -> None:
        self.releases.append((job.id, job.token))

    def take_acks(self) -> tuple[list[tuple[str, str, str]], list[Failure]]:
        """Everything to acknowledge, for one claim; `restore_acks` if it fails."""
        acks = self.completions, self.failures
        self.completions, self.failures = [], []
        return acks

    def restore_acks(
        self, completions: list[tuple[str, str, str]], failures: list[Failure]
    ) -> None:
        # At the front: outcomes finished meanwhile stay behind the older ones.
        self.completions[:0] = completions
        self.failures[:0] = failures

    def take_releases(self) -> list[tuple[str, str]]:
        """Everything to release, for one call; `restore_releases` if it fails."""
        releases, self.releases = self.releases, []
        return releases

    def restore_releases(self, releases: list[tuple[str, str]]) -> None:
        self.releases[:0] = releases
