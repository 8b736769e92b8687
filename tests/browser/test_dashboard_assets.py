"""The dashboard's files as they ship: nothing from the internet, every reference resolves,
and no API that parses strings as markup or code (no browser needed)."""

from __future__ import annotations

import re
from pathlib import Path

import jobfleet

STATIC = Path(jobfleet.__file__).parent / "admin" / "static"
FILES = sorted(p for p in STATIC.iterdir() if p.is_file())
SCRIPTS = [p for p in FILES if p.suffix == ".js"]
SVG_NAMESPACE = "http://www.w3.org/2000/svg"  # the inline favicon's xmlns


def test_the_dashboard_is_there() -> None:
    names = {p.name for p in FILES}
    assert {"index.html", "app.js", "app.css", "api.js", "dom.js"} <= names


def test_nothing_is_fetched_from_another_origin() -> None:
    # The page's CSP allows only 'self'; a URL to anywhere else would be a CDN in disguise.
    for path in FILES:
        text = path.read_text()
        found = re.findall(r"(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}[^\s\"')]*", text, re.I)
        fetched = [url for url in found if url != SVG_NAMESPACE]  # a name, never fetched
        assert fetched == [], f"{path.name} names another origin: {fetched}"


def test_every_module_import_and_asset_reference_resolves() -> None:
    index = (STATIC / "index.html").read_text()
    assets = re.findall(r'(?:src|href)="assets/([^"]+)"', index)
    assert "app.js" in assets and "app.css" in assets
    imports = [m for p in SCRIPTS for m in re.findall(r'from "\./([^"]+)"', p.read_text())]
    assert imports, "no module imports found: the pattern is stale"
    missing = sorted({name for name in [*assets, *imports] if not (STATIC / name).is_file()})
    assert missing == []


def test_no_string_becomes_markup_or_code() -> None:
    sinks = re.compile(
        r"\.(?:inner|outer)HTML\b|insertAdjacentHTML|document\.write|\beval\(|new Function\(|"
        r"createContextualFragment|setTimeout\(\s*[\"'`]"
    )
    for path in SCRIPTS:
        hits = [line for line in path.read_text().splitlines() if sinks.search(line)]
        assert hits == [], f"{path.name}: {hits}"
    index = (STATIC / "index.html").read_text()
    assert re.findall(r"<script(?![^>]*\bsrc=)", index) == [], "inline script in index.html"
    assert re.findall(r"\son[a-z]+=", index) == [], "inline event handler in index.html"
