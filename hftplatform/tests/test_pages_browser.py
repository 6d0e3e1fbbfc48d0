"""Headless Chromium drives the landing page, Swagger UI, schema and admin, served by daphne over loopback."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.db import connection
from playwright.sync_api import Page, Request, Response, expect, sync_playwright

from hftplatform.tests.live import LiveServer, start_daphne

CHROMIUM = Path("/usr/bin/chromium")
# Without the background-networking flags Chromium reaches for Google services, and on a closed
# network those refused connections make page loads flaky.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
UI_TIMEOUT_MS = 15_000
SEEDED_TIERS = ["Free", "Basic", "Professional", "Enterprise", "HFT"]
CAROL_PASSWORD = "carol-browser-test-password"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Chromium not installed (apt-get install chromium)"),
    # The server is another process, so it only sees committed rows. serialized_rollback restores the
    # tiers seeded by migration even if an earlier transactional test flushed them.
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


@dataclass
class FailedRequests:
    """Same-origin requests that failed or answered >= 400, seen by one page."""

    origin: str
    failures: list[str] = field(default_factory=list)

    def watch(self, page: Page) -> None:
        page.on("requestfailed", self._on_request_failed)
        page.on("response", self._on_response)

    def _is_ours(self, url: str) -> bool:
        return url.startswith(self.origin + "/")

    def _on_request_failed(self, request: Request) -> None:
        if self._is_ours(request.url):
            self.failures.append(f"{request.method} {request.url}: {request.failure}")

    def _on_response(self, response: Response) -> None:
        if self._is_ours(response.url) and response.status >= 400:
            self.failures.append(f"{response.request.method} {response.url}: HTTP {response.status}")


@pytest.fixture
def carol(transactional_db: None) -> User:
    """Carol, a staff superuser."""
    return User.objects.create_superuser("carol", "carol@example.com", CAROL_PASSWORD)


@pytest.fixture
def live_server_daphne(carol: User, tmp_path: Path) -> Iterator[LiveServer]:
    """Daphne serving the platform on loopback, against the test database.

    Carol is created first because SQLite's in-memory test database is copied when the server starts.
    """
    server = start_daphne(tmp_path)
    try:
        yield server
    finally:
        # The server must be gone before the test database is flushed or dropped: PostgreSQL refuses to
        # drop a database with open connections.
        server.stop()


@pytest.fixture
def page(live_server_daphne: LiveServer) -> Iterator[Page]:
    """A fresh Chromium page on a serving daphne, started after the database work of the fixtures.

    Playwright's sync API keeps an event loop running, and Django refuses ORM calls while one runs; so
    the browser starts after the fixtures have written and stops before the database is flushed.
    Chromium is launched before waiting for daphne because both take seconds to start.
    """
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        live_server_daphne.wait_until_serving()
        context = browser.new_context(base_url=live_server_daphne.url)
        context.set_default_timeout(UI_TIMEOUT_MS)
        try:
            yield context.new_page()
        finally:
            context.close()
            browser.close()


def expected_mode() -> str:
    # The server reads REDIS_URL from the environment it inherits, not from this process's settings.
    return "production" if os.environ.get("REDIS_URL") else "embedded"


def expected_database() -> str:
    # The landing page names the backend module ("sqlite3", "postgresql") the server was given.
    return str(connection.settings_dict["ENGINE"]).rsplit(".", 1)[-1]


def test_landing_page_shows_running_mode_and_seeded_tiers(page: Page, tmp_path: Path) -> None:
    page.goto("/")
    expect(page.locator("#status")).to_contain_text("running")
    expect(page.locator("#status")).to_contain_text(f"in {expected_mode()} mode")
    expect(page.locator("#status")).to_contain_text(f"database {expected_database()}")
    expect(page.locator("#tiers tbody tr td:first-child")).to_have_text(SEEDED_TIERS)
    expect(page.locator("#docs-link")).to_have_attribute("href", "/api/docs/")
    expect(page.locator("#admin-link")).to_have_attribute("href", "/admin/")
    page.screenshot(path=tmp_path / "landing.png", full_page=True)


def test_docs_link_opens_swagger_ui_from_local_static_files(
    page: Page, live_server_daphne: LiveServer, tmp_path: Path
) -> None:
    failed = FailedRequests(live_server_daphne.url)
    failed.watch(page)
    page.goto("/")
    page.locator("#docs-link").click()
    page.wait_for_url("**/api/docs/")
    # Swagger UI renders one .opblock per operation once the bundle has run and fetched the schema.
    expect(page.locator(".opblock", has_text="/api/hft/rate-limits")).to_be_visible()
    page.wait_for_load_state("networkidle")
    page.screenshot(path=tmp_path / "swagger.png", full_page=True)
    assert failed.failures == []


def test_schema_link_downloads_openapi_3_yaml(page: Page) -> None:
    page.goto("/")
    # The schema's media type (application/vnd.oai.openapi) is not one Chromium displays, so it downloads.
    with page.expect_download() as download:
        page.get_by_role("link", name="OpenAPI 3 schema").click()
    assert download.value.url.endswith("/api/schema/")
    assert "openapi: 3" in Path(download.value.path()).read_text()


def test_staff_user_logs_in_to_admin_through_the_form(page: Page, carol: User) -> None:
    page.goto("/admin/")
    page.wait_for_url("**/admin/login/?next=/admin/")
    page.locator("#id_username").fill(carol.username)
    page.locator("#id_password").fill(CAROL_PASSWORD)
    page.locator("input[type=submit]").click()
    page.wait_for_url("**/admin/")
    # Either header passes: the site header may be renamed from Django's default to "hftplatform admin".
    expect(page.locator("body")).to_contain_text(re.compile("hftplatform admin|Site administration"))
    expect(page.locator("#logout-form")).to_be_attached()
