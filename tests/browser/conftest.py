"""Browser tests: Playwright drives Debian's Chromium against the live test server, while
a real db_worker process runs the tasks, so every status change comes from the real
task path."""

import os
from pathlib import Path

import pytest
from django.conf import settings

from tests.conftest import PASSWORD, subprocess_env
from tests.live import start_worker, stop

# Playwright's sync API runs an event loop in this thread; the ORM calls the tests
# make between browser steps are still plain synchronous calls.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
SCREENSHOTS = Path(settings.BASE_DIR) / "docs" / "screenshots"
DRIVER_DELAY = "1.5"


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), (
        f"{CHROMIUM} is missing: install Debian's chromium (scripts/ensure-system-packages)."
    )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield browser
        browser.close()


@pytest.fixture
def failures_file(tmp_path, settings):
    path = tmp_path / "simulated-failures"
    path.write_text("")
    settings.SIMULATED_DRIVER_FAIL_FILE = path
    return path


@pytest.fixture
def worker(transactional_db, failures_file, tmp_path):
    """A real db_worker process on this test's database."""
    process = start_worker(
        tmp_path / "worker.log",
        env=subprocess_env(
            SIMULATED_DRIVER_DELAY=DRIVER_DELAY, SIMULATED_DRIVER_FAIL_FILE=failures_file
        ),
    )
    yield process
    stop(process)


@pytest.fixture
def sign_in(browser, live_server):
    """A new browser context signed in through the real sign-in form."""
    contexts = []

    def _sign_in(username, *, viewport=None):
        context = browser.new_context(viewport=viewport or {"width": 1280, "height": 900})
        context.set_default_timeout(20_000)
        contexts.append(context)
        page = context.new_page()
        page.goto(f"{live_server.url}/accounts/login/")
        page.fill("#id_username", username)
        page.fill("#id_password", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(f"{live_server.url}/environments/")
        return page

    yield _sign_in
    for context in contexts:
        context.close()


def screenshot(page, name):
    """Take the README's screenshot: into docs/screenshots/ with PORTAL_SCREENSHOTS=1
    (make screenshots), else into a temporary folder, so a test run leaves the checkout
    as it found it."""
    folder = SCREENSHOTS if os.environ.get("PORTAL_SCREENSHOTS") == "1" else _scratch()
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / name), full_page=True)


def _scratch():
    import tempfile

    return Path(tempfile.gettempdir()) / "lcs-portal-screenshots"
