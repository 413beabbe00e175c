"""Progress while an operation runs: each driver line is stored as it is written, and
the operation's page (which polls while it is active) and the API show it."""

import threading
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from django.db import connection
from django.utils import timezone

from environments import drivers
from environments.drivers import Driver, OperationLog
from environments.models import Environment, Operation, OperationKind, OperationLogLine, Outcome
from environments.operations.core import run_step
from tests.api_clients import API, api_client

RESTART = OperationKind.RESTART_SERVICE
#: Released by the test: the blocking driver's restart waits for it.
release = threading.Event()
#: Set by the driver once it has written its first line.
wrote = threading.Event()


class BlockingDriver(Driver):
    name = "blocking"

    def restart_service(self, service_kind, step="act"):
        self.log.write(f"stopping {service_kind.upper()}")
        wrote.set()
        # Bounded, so a failing test never leaves the thread behind.
        release.wait(timeout=60)
        self.log.write(f"{service_kind.upper()} is back")
        return None


@pytest.fixture
def blocking_driver(settings, monkeypatch):
    release.clear()
    wrote.clear()
    monkeypatch.setitem(drivers.DRIVERS, "blocking", f"{__name__}.BlockingDriver")
    settings.PORTAL_DRIVER = "blocking"
    yield
    release.set()


def run_in_a_thread(operation):
    """The worker's task in a thread of its own (its own database connection)."""

    def work():
        try:
            run_step.call(operation.pk, 1)
        finally:
            connection.close()

    thread = threading.Thread(target=work)
    thread.start()
    return thread


@pytest.mark.django_db(transaction=True)
def test_a_line_shows_on_the_page_and_in_the_api_while_the_operation_runs(
    blocking_driver, environment, manager, start, client
):
    operation = start(RESTART, environment, manager, service_kind="aos")
    client.force_login(manager)
    client.cookies["tz"] = "Asia/Tokyo"
    api = api_client(manager)
    url = operation.get_absolute_url()
    thread = run_in_a_thread(operation)
    try:
        assert wrote.wait(timeout=30)
        # The driver is still blocked: the operation runs, and its line is there.
        assert Operation.objects.get().outcome == Outcome.RUNNING
        page = client.get(url).content.decode()
        poll = client.get(url, headers={"HX-Request": "true"})
        body = api.get(f"{API}/operations/{operation.activity_id}").json()
    finally:
        release.set()
        thread.join(timeout=60)

    assert "stopping AOS" in page and "AOS is back" not in page
    assert "Times in Asia/Tokyo." in page
    line = OperationLogLine.objects.get(text="stopping AOS")
    tokyo = timezone.localtime(line.at, ZoneInfo("Asia/Tokyo"))
    assert f"{tokyo:%Y-%m-%d %H:%M:%S} JST</time> stopping AOS" in page
    assert 'hx-trigger="every 1s"' in page

    assert poll.status_code == 200  # htmx keeps polling
    assert "stopping AOS" in poll.content.decode()
    assert 'hx-trigger="every 1s"' in poll.content.decode()

    assert body["active"] is True and body["outcome"] == "running"
    assert [entry["text"] for entry in body["log_lines"]][-1] == "stopping AOS"
    at = datetime.fromisoformat(body["log_lines"][-1]["at"])
    # In UTC, to the millisecond (as every time in the API).
    assert at.utcoffset().total_seconds() == 0
    assert at == line.at.replace(microsecond=line.at.microsecond // 1000 * 1000)
    assert " UTC stopping AOS" in body["log"]  # the text's times say their zone

    # Released: the operation ends, and the poll's last answer stops the polling.
    assert Operation.objects.get().outcome == Outcome.SUCCEEDED
    poll = client.get(url, headers={"HX-Request": "true"})
    assert poll.status_code == 286
    assert "AOS is back" in poll.content.decode()
    assert "hx-trigger" not in poll.content.decode()
    assert "hx-trigger" not in client.get(url).content.decode().split('id="operation"')[1]
    body = api.get(f"{API}/operations/{operation.activity_id}").json()
    texts = [entry["text"] for entry in body["log_lines"]]
    assert texts[-2:] == ["stopping AOS", "AOS is back"] and body["active"] is False


def test_each_line_is_its_own_row_and_moves_the_revision(environment, manager, start):
    operation = start(RESTART, environment, manager, service_kind="aos")
    before = Environment.objects.get(pk=environment.pk).revision
    log = OperationLog(operation)

    log.write("one")
    log.write("two")

    assert list(operation.log_lines.values_list("text", flat=True)) == ["one", "two"]
    assert Environment.objects.get(pk=environment.pk).revision == before + 2
    assert operation.log_text.splitlines()[1].endswith(" two")


def test_the_log_is_cut_at_its_bound_and_one_line_says_so(environment, manager, start):
    operation = start(RESTART, environment, manager, service_kind="aos")
    log = OperationLog(operation, limit=20)

    for text in ("a" * 15, "b" * 15, "c", "d"):
        log.write(text)

    assert list(operation.log_lines.values_list("text", flat=True)) == [
        "a" * 15,
        "b" * 5,
        "[log cut at 20 characters]",
    ]


def test_an_operation_from_before_log_lines_shows_its_old_log(environment, manager, start, client):
    operation = start(RESTART, environment, manager, service_kind="aos")
    Operation.objects.filter(pk=operation.pk).update(log="2026-01-01 10:00:00 old line\n")
    client.force_login(manager)

    page = client.get(operation.get_absolute_url()).content.decode()
    body = api_client(manager).get(f"{API}/operations/{operation.activity_id}").json()

    assert "2026-01-01 10:00:00 old line" in page
    assert body["log"] == "2026-01-01 10:00:00 old line\n" and body["log_lines"] == []
