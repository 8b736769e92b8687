"""The dashboard in a real browser: Debian's Chromium (headless, driven by playwright; no
browser download) against the real admin server, real workers and a real redis-server.

Every expectation waits (playwright's `expect`, 45 s) for the page to show a value; nothing
sleeps. Screenshots go to test-artifacts/browser/ (CI keeps them); with
JOBFLEET_UPDATE_SCREENSHOT=1 the wide overview also replaces docs/dashboard.png.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from dash_stack import FAILED, AdminServer, Jobs, Workers

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts" / "browser"
# Read at import: the root conftest removes every JOBFLEET_* variable before each test.
UPDATE_SCREENSHOT = os.environ.get("JOBFLEET_UPDATE_SCREENSHOT") == "1"
CHROMIUM = os.environ.get("DASHBOARD_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
]

if not Path(CHROMIUM).exists():
    pytest.skip(
        f"{CHROMIUM} not found: the browser tier needs Debian's chromium package "
        "(scripts/bootstrap.sh installs it: apt-get install chromium)",
        allow_module_level=True,
    )
pytest.importorskip("playwright", reason="playwright comes with the dev extra (make venv)")

from playwright.sync_api import (  # noqa: E402 - only once the browser is known to be there
    Browser,
    ConsoleMessage,
    Locator,
    Page,
    expect,
    sync_playwright,
)

# A deadline only bounds a hang; the machine is shared and has two cores.
expect.set_options(timeout=45_000)

# A job name and payload that would run script if any were parsed as markup.
XSS_NAME = '<img src=x onerror="window.__xss=1">'
XSS_PAYLOAD = {"html": "<img src=x onerror=window.__xss=2>", "s": "<script>window.__xss=3</script>"}

# Remembers a queue's overview row and counts rows later taken out of the table.
MARK_ROW = """queue => {
  window.__row = document.querySelector(`tr[data-queue="${queue}"]`);
  window.__rowsRemoved = 0;
  new MutationObserver(changes => {
    for (const change of changes) window.__rowsRemoved += change.removedNodes.length;
  }).observe(window.__row.parentElement, {childList: true});
}"""


@dataclass
class Seen:
    """What the pages printed beyond the DOM, over the whole module."""

    console: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def seen() -> Seen:
    return Seen()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    shutil.rmtree(ARTIFACTS, ignore_errors=True)  # this run's pictures only
    ARTIFACTS.mkdir(parents=True)
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def open_page(
    browser: Browser, admin: AdminServer, seen: Seen, request: pytest.FixtureRequest
) -> Iterator[Callable[..., Page]]:
    """Pages in fresh browser contexts (each its own sessionStorage) on the dashboard; a
    failing test leaves a screenshot of each page in the artifacts."""
    pages: list[Page] = []

    def new_page(width: int = 1280, height: int = 860) -> Page:
        context = browser.new_context(viewport={"width": width, "height": height})
        page = context.new_page()

        def on_console(message: ConsoleMessage) -> None:
            seen.console.append(f"{message.type}: {message.text}")

        page.on("console", on_console)
        page.on("pageerror", lambda error: seen.errors.append(str(error)))
        page.goto(admin.url)
        pages.append(page)
        return page

    yield new_page
    for n, page in enumerate(pages):
        if request.node.stash.get(FAILED, True):
            page.screenshot(path=ARTIFACTS / f"{request.node.name}-{n}.png", full_page=True)
        page.context.close()


@pytest.fixture
def client(admin: AdminServer) -> Iterator[Jobs]:
    jobs = Jobs(admin.redis_url)
    yield jobs
    jobs.close()


def sign_in(page: Page, token: str) -> None:
    page.get_by_label("API token").fill(token)
    page.get_by_role("button", name="Sign in").click()


def go(page: Page, admin: AdminServer, route: str) -> None:
    page.goto(admin.url + route)


def queue_row(page: Page, queue: str) -> Locator:
    return page.locator(f'tr[data-queue="{queue}"]')


def cell(row: Locator, name: str) -> Locator:
    return row.locator(f'[data-field="{name}"]')


def tab_count(page: Page, state: str) -> Locator:
    return page.locator(f'[data-count="{state}"]')


def badge(page: Page) -> Locator:
    return page.locator("main h1 .badge")


def dialog(page: Page) -> Locator:
    return page.get_by_role("dialog")


def shot(page: Page, name: str) -> Path:
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=path, full_page=True)
    return path


def no_horizontal_overflow(page: Page) -> bool:
    return bool(page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"))


def test_counts_move_while_jobs_run_and_dead_letters_replay(
    open_page: Callable[..., Page],
    admin: AdminServer,
    workers: Workers,
    client: Jobs,
    tmp_path: Path,
) -> None:
    page = open_page()
    sign_in(page, admin.admin_token)
    expect(page.locator(".role")).to_have_text("admin")

    gate, heal = tmp_path / "gate", tmp_path / "heal"
    gated = client.enqueue("emails", {"to": "slow@example.com", "gate": str(gate)})
    for n in range(3):
        client.enqueue("emails", {"to": f"ok{n}@example.com"})
    failing = {"fail_unless": str(heal)}
    dead = [client.enqueue("emails", {"to": f"bad{n}@x.org", **failing}) for n in "01"]
    expect(cell(queue_row(page, "emails"), "waiting")).to_have_text("6")

    # Pause from the page before a worker starts, so the jobs stay waiting until Resume.
    page.get_by_role("link", name="emails", exact=True).click()
    expect(badge(page)).to_have_text("running")
    expect(tab_count(page, "waiting")).to_have_text("6")
    page.get_by_role("button", name="Pause").click()
    expect(badge(page)).to_have_text("paused")
    workers.start("emails", max_attempts=2, concurrency=10)

    page.get_by_role("button", name="Resume").click()
    expect(badge(page)).to_have_text("running")
    expect(tab_count(page, "completed")).to_have_text("3")
    expect(tab_count(page, "dead")).to_have_text("2")
    expect(tab_count(page, "active")).to_have_text("1")  # the gated job, until the gate opens
    expect(tab_count(page, "waiting")).to_have_text("0")

    page.get_by_role("link", name="jobfleet", exact=True).click()
    row = queue_row(page, "emails")
    expect(cell(row, "active")).to_have_text("1")
    expect(cell(row, "dead")).to_have_text("2")
    expect(cell(row, "completed")).to_have_text("3")
    shot(page, "overview-running")

    # The running job's page: progress, then its result once the gate opens.
    go(page, admin, f"#/queues/emails/jobs/{gated}")
    expect(badge(page)).to_have_text("active")
    expect(page.locator(".progress-line")).to_contain_text("50 % · gate · waiting for the gate")
    gate.touch()
    expect(badge(page)).to_have_text("completed")
    expect(page.locator("pre", has_text='"sent"')).to_contain_text("slow@example.com")

    # Dead letters: filter by error type, then replay one from the list (confirmed).
    go(page, admin, "#/queues/emails?state=dead")
    rows = page.locator("table.jobs tbody tr")
    expect(rows).to_have_count(2)
    page.get_by_label("Error type").fill("NoSuchError")
    page.get_by_role("button", name="Filter").click()
    expect(page.get_by_text("No dead letter matches.")).to_be_visible()
    page.get_by_label("Error type").fill("MailboxRefused")
    page.get_by_role("button", name="Filter").click()
    expect(rows).to_have_count(2)
    expect(rows.first.locator('[data-field="error"]')).to_contain_text("MailboxRefused: mailbox")

    heal.touch()  # from now on the handler succeeds
    page.locator(f'tr[data-job="{dead[0]}"] input[type="checkbox"]').check()
    page.get_by_role("button", name="Replay selected").click()
    expect(dialog(page)).to_be_visible()
    expect(dialog(page)).to_contain_text("Replay 1 selected dead letter?")
    shot(page, "replay-dialog")
    dialog(page).get_by_role("button", name="Replay").click()
    expect(dialog(page)).to_be_hidden()
    expect(page.get_by_role("status")).to_have_text("Replayed 1 dead letter.")
    expect(page.locator(f'tr[data-job="{dead[0]}"]')).to_have_count(0)
    expect(tab_count(page, "dead")).to_have_text("1")

    # The other one from its own page: error and traceback, then Retry (confirmed).
    page.locator(f'tr[data-job="{dead[1]}"] a').click()
    expect(badge(page)).to_have_text("dead")
    expect(page.locator(".error-line")).to_contain_text("MailboxRefused: mailbox bad1@x.org")
    expect(page.locator(".traceback")).to_contain_text("raise MailboxRefused")
    shot(page, "dead-letter")
    page.get_by_role("button", name="Retry").click()
    dialog(page).get_by_role("button", name="Retry").click()
    expect(badge(page)).to_have_text("completed")

    go(page, admin, f"#/queues/emails/jobs/{dead[0]}")
    expect(badge(page)).to_have_text("completed")
    page.get_by_role("link", name="jobfleet", exact=True).click()
    expect(cell(row, "dead")).to_have_text("0")
    expect(cell(row, "completed")).to_have_text("6")

    # Refreshes update rows in place: the same row element, no row removed or re-added.
    page.evaluate(MARK_ROW, "emails")
    client.enqueue("emails", {"to": "one-more@example.com"})
    expect(cell(row, "completed")).to_have_text("7")
    assert page.evaluate("[window.__row.isConnected, window.__rowsRemoved]") == [True, 0]


def test_pages_search_cancel_remove_and_problem_details(
    open_page: Callable[..., Page], admin: AdminServer, client: Jobs
) -> None:
    client.pause("invoices")
    ids = [client.enqueue("invoices", {"n": n}) for n in range(45)]
    page = open_page()
    sign_in(page, admin.admin_token)
    go(page, admin, "#/queues/invoices")
    rows = page.locator("table.jobs tbody tr")
    expect(rows).to_have_count(20)
    expect(rows.first).to_have_attribute("data-job", ids[0])
    page.get_by_role("button", name="Next page").click()
    expect(page.locator(".pager")).to_contain_text("Page 2")
    expect(rows.first).to_have_attribute("data-job", ids[20])
    page.get_by_role("button", name="Next page").click()
    expect(rows).to_have_count(5)
    expect(rows.last).to_have_attribute("data-job", ids[44])
    expect(page.get_by_role("button", name="Next page")).to_be_disabled()
    page.get_by_role("button", name="Previous").click()
    expect(rows.first).to_have_attribute("data-job", ids[20])

    page.get_by_label("Job id").fill(ids[7])
    page.get_by_role("button", name="Open").click()
    expect(page).to_have_url(re.compile(rf"#/queues/invoices/jobs/{ids[7]}$"))
    expect(page.locator("pre").first).to_have_text('{\n  "n": 7\n}')

    # Remove it and cancel another, each confirmed: both leave the line.
    page.get_by_role("button", name="Remove").click()
    dialog(page).get_by_role("button", name="Remove").click()
    expect(page).to_have_url(re.compile(r"#/queues/invoices$"))
    expect(page.get_by_role("status")).to_have_text(f"Job {ids[7]} removed.")
    go(page, admin, f"#/queues/invoices/jobs/{ids[8]}")
    expect(badge(page)).to_have_text("waiting")
    page.get_by_role("button", name="Cancel job").click()
    expect(dialog(page)).to_contain_text("It leaves the line and ends cancelled")
    dialog(page).get_by_role("button", name="Cancel job").click()
    expect(badge(page)).to_have_text("cancelled")
    go(page, admin, "#/queues/invoices")
    expect(tab_count(page, "waiting")).to_have_text("43")

    go(page, admin, "#/queues/invoices")
    page.get_by_label("Job id").fill("no-such-job")
    page.get_by_role("button", name="Open").click()
    alert = page.get_by_role("alert")
    expect(alert).to_be_visible()
    expect(alert).to_contain_text("no-such-job")  # the problem's detail, not just its status


def test_a_viewer_sees_no_write_buttons(
    open_page: Callable[..., Page],
    admin: AdminServer,
    workers: Workers,
    client: Jobs,
    tmp_path: Path,
) -> None:
    never = tmp_path / "never"
    failed = client.enqueue("reports", {"fail_unless": str(never)}, max_attempts=1)
    workers.start("reports")

    page = open_page()
    sign_in(page, "not-a-token-this-server-knows")
    expect(page.get_by_role("alert")).to_contain_text("Sign-in failed")
    expect(page.get_by_label("API token")).to_be_visible()

    sign_in(page, admin.viewer_token)
    expect(page.locator(".role")).to_have_text("viewer")
    expect(cell(queue_row(page, "reports"), "dead")).to_have_text("1")

    go(page, admin, "#/queues/reports?state=dead")
    expect(badge(page)).to_have_text("running")
    expect(page.locator(f'tr[data-job="{failed}"]')).to_be_visible()
    writes = ["Pause", "Resume", "Replay selected", "Purge selected", "Replay all matching"]
    for name in [*writes, "Purge all matching"]:
        expect(page.get_by_role("button", name=name)).to_have_count(0)
    expect(page.locator('input[type="checkbox"]:visible')).to_have_count(1)  # only "live"

    page.locator(f'tr[data-job="{failed}"] a').click()
    expect(badge(page)).to_have_text("dead")
    expect(page.locator(".error-line")).to_contain_text("MailboxRefused")
    for name in ["Retry", "Cancel job", "Remove"]:
        expect(page.get_by_role("button", name=name)).to_have_count(0)
    expect(page.locator("[data-admin]:visible")).to_have_count(0)
    shot(page, "viewer-dead-letter")

    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_label("API token")).to_be_visible()
    assert page.evaluate("sessionStorage.length") == 0


def test_a_revoked_token_signs_the_page_out(
    open_page: Callable[..., Page], admin: AdminServer
) -> None:
    page = open_page()
    sign_in(page, admin.revocable_token)
    expect(page.locator(".role")).to_have_text("viewer")
    expect(page.get_by_role("heading", name="Queues")).to_be_visible()
    admin.revoke()  # the server re-reads its tokens file; the next refresh gets a 401
    expect(page.get_by_role("alert")).to_contain_text("Signed out: the server refused the token")
    expect(page.get_by_label("API token")).to_be_visible()
    assert page.evaluate("sessionStorage.length") == 0


def test_payloads_and_names_are_text_not_markup(
    open_page: Callable[..., Page],
    admin: AdminServer,
    workers: Workers,
    client: Jobs,
) -> None:
    # No handler has this name: the worker dead-letters it (UnknownHandler) with the name in
    # its message, so name, payload and error all reach the page.
    job = client.enqueue("webhooks", XSS_PAYLOAD, name=XSS_NAME, max_attempts=1)
    workers.start("webhooks")
    page = open_page()
    sign_in(page, admin.admin_token)
    expect(cell(queue_row(page, "webhooks"), "dead")).to_have_text("1")

    go(page, admin, "#/queues/webhooks?state=dead")
    row = page.locator(f'tr[data-job="{job}"]')
    expect(cell(row, "name")).to_have_text(XSS_NAME)
    expect(cell(row, "error")).to_contain_text(XSS_NAME)
    go(page, admin, f"#/queues/webhooks/jobs/{job}")
    expect(page.locator("pre").first).to_contain_text("<script>window.__xss=3</script>")
    expect(page.locator(".error-line")).to_contain_text(XSS_NAME)
    expect(page.locator("img")).to_have_count(0)
    expect(page.locator("main script")).to_have_count(0)
    assert page.evaluate("window.__xss") is None

    # Purge every dead letter that matches the filter, after the dialog.
    go(page, admin, "#/queues/webhooks?state=dead&error_type=UnknownHandler")
    expect(page.locator(f'tr[data-job="{job}"]')).to_be_visible()
    page.get_by_role("button", name="Purge all matching").click()
    expect(dialog(page)).to_contain_text("error type “UnknownHandler”")
    dialog(page).get_by_role("button", name="Purge").click()
    expect(page.get_by_role("status")).to_have_text("Purged 1 dead letter.")
    expect(tab_count(page, "dead")).to_have_text("0")


def test_narrow_phone_viewport_has_no_horizontal_scroll(
    open_page: Callable[..., Page], admin: AdminServer, client: Jobs
) -> None:
    queue = "push-notifications-eu-west-and-asia-pacific"
    job = client.enqueue(queue, {"to": "a-rather-long-address@example.com"}, delay=3600)
    page = open_page(390, 844)
    sign_in(page, admin.admin_token)
    expect(cell(queue_row(page, queue), "delayed")).to_have_text("1")
    assert no_horizontal_overflow(page)
    shot(page, "phone-overview")

    go(page, admin, f"#/queues/{queue}?state=delayed")
    expect(page.locator(f'tr[data-job="{job}"]')).to_be_visible()
    assert no_horizontal_overflow(page)
    shot(page, "phone-queue")

    go(page, admin, f"#/queues/{queue}/jobs/{job}")
    expect(badge(page)).to_have_text("delayed")
    assert no_horizontal_overflow(page)
    shot(page, "phone-job")


def test_overview_screenshot(
    open_page: Callable[..., Page],
    admin: AdminServer,
    workers: Workers,
    client: Jobs,
    tmp_path: Path,
) -> None:
    client.pause("images")
    for n in range(12):
        client.enqueue("images", {"n": n}, name="resize", priority="high" if n % 3 else "normal")
    for n in range(3):
        client.enqueue("images", {"n": n}, name="resize", delay=600)
    # A queue at work: three jobs running (held at a gate) and five waiting behind them.
    gate = tmp_path / "gate"
    for n in range(8):
        client.enqueue("thumbnails", {"to": f"t{n}@example.com", "gate": str(gate)})
    workers.start("thumbnails", concurrency=3)
    page = open_page(1280, 440)
    sign_in(page, admin.admin_token)
    row = queue_row(page, "images")
    expect(cell(row, "waiting")).to_have_text("12")
    expect(cell(row, "paused")).to_have_text("paused")
    expect(cell(row, "delayed")).to_have_text("3")
    busy = queue_row(page, "thumbnails")
    expect(cell(busy, "active")).to_have_text("3")
    expect(cell(busy, "waiting")).to_have_text("5")
    path = shot(page, "overview-wide")
    if UPDATE_SCREENSHOT:
        shutil.copyfile(path, REPO / "docs" / "dashboard.png")
    gate.touch()
    expect(cell(busy, "completed")).to_have_text("8")


def test_no_token_script_error_or_csp_refusal_in_output(admin: AdminServer, seen: Seen) -> None:
    # Last in the module: what every page above printed, and what the server logged.
    assert seen.errors == []
    assert [line for line in seen.console if "Content Security Policy" in line] == []
    text = "\n".join([*seen.console, admin.output()])
    for token in (admin.admin_token, admin.viewer_token, admin.revocable_token):
        pieces = {token[i : i + 8] for i in range(len(token) - 7)}
        assert [p for p in pieces if p in text] == []
