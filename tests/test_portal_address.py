"""`make run BIND=...` (run_portal --bind) also sets the address that mails, webhook events
and calendar feeds link to (PORTAL_BASE_URL), from a concrete host only."""

import io
import os

import pytest

from environments.demo.run_portal import Command, links_address

DEFAULT = "http://127.0.0.1:8000"


@pytest.mark.parametrize(
    ("bind", "url"),
    [
        ("192.0.2.10:8080", "http://192.0.2.10:8080"),
        ("portal.example:9000", "http://portal.example:9000"),
        ("[2001:db8::1]:8000", "http://[2001:db8::1]:8000"),
        ("127.0.0.1", "http://127.0.0.1:8000"),
    ],
)
def test_a_concrete_bind_gives_the_links_its_address(bind, url):
    assert links_address(bind, None, DEFAULT) == (url, "")


@pytest.mark.parametrize("bind", ["0.0.0.0:8000", "[::]:8000", "unix:/run/portal.sock"])
def test_a_wildcard_bind_keeps_the_default_and_warns(bind):
    url, warning = links_address(bind, None, DEFAULT)

    assert url == DEFAULT
    assert f"listens on {bind}, which is no address to link to" in warning
    assert "Set PORTAL_BASE_URL" in warning


def test_a_configured_address_wins_and_is_warned_about_when_it_differs():
    assert links_address("192.0.2.10:8000", "https://portal.example/", DEFAULT) == (
        "https://portal.example",
        "Links in mails, webhook events and calendar feeds point at https://portal.example "
        "(PORTAL_BASE_URL), not at http://192.0.2.10:8000, where the portal listens: right "
        "behind a proxy; otherwise set PORTAL_BASE_URL to the address people use.",
    )
    assert links_address("192.0.2.10:8000", "http://192.0.2.10:8000", DEFAULT)[1] == ""
    assert links_address("0.0.0.0:8000", "https://portal.example", DEFAULT)[1] == ""


def test_run_portal_hands_the_address_to_its_processes(monkeypatch):
    monkeypatch.delenv("PORTAL_BASE_URL", raising=False)
    monkeypatch.delenv("ALLOWED_HOSTS", raising=False)
    command = Command(stdout=io.StringIO(), stderr=io.StringIO())

    command.set_portal_address("192.0.2.10:8080")

    assert os.environ["PORTAL_BASE_URL"] == "http://192.0.2.10:8080"
    # Pages asked for at that address are not refused as a bad Host.
    assert "192.0.2.10" in os.environ["ALLOWED_HOSTS"].split(",")
    assert command.stderr.getvalue() == ""
