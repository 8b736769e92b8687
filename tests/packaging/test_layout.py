"""The repository's layout rules that tools do not check by themselves."""

from __future__ import annotations

import subprocess
from collections import Counter

from chart_render import REPO


def test_test_file_basenames_are_unique_across_tiers() -> None:
    # The tiers have no __init__.py, so pytest imports each test file by its basename: two
    # files of one name in tests/ and e2e/ break collection of whichever comes second.
    listed = subprocess.run(
        ["git", "ls-files", "tests/**/test_*.py", "e2e/**/test_*.py", "e2e/test_*.py"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    names = Counter(path.rsplit("/", 1)[-1] for path in set(listed.stdout.split()))
    assert len(names) > 40, "the listing found too few test files"
    assert [name for name, n in names.items() if n > 1] == []
