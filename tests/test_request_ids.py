"""Every answer carries X-Request-Id (the client's own when sane, else a new UUID);
problems name it as their instance, and the request's log lines carry it."""

import logging
import uuid

from django.test import Client

from lcs_portal.logs import RequestId
from tests.api_clients import API


def test_an_answer_without_an_id_sent_gets_a_new_uuid(db):
    first, second = (Client().get(f"{API}/environments") for _ in range(2))
    ids = [answer["X-Request-Id"] for answer in (first, second)]
    assert all(uuid.UUID(i).version == 4 for i in ids) and ids[0] != ids[1]
    assert first.json()["instance"] == f"urn:uuid:{ids[0]}"


def test_a_sane_id_of_the_clients_is_kept(db):
    answer = Client(headers={"X-Request-Id": "cron-42.restart_a"}).get(f"{API}/environments")
    assert answer["X-Request-Id"] == "cron-42.restart_a"
    assert answer.json()["instance"] == "urn:lcs-portal:request:cron-42.restart_a"


def test_an_id_too_long_or_with_other_characters_is_replaced(db):
    for sent in ["x" * 129, "two words", "a/b", "é"]:
        answer = Client(headers={"X-Request-Id": sent}).get("/healthz")
        assert answer["X-Request-Id"] != sent
        uuid.UUID(answer["X-Request-Id"])


def test_pages_carry_it_too(db):
    assert Client().get("/accounts/login/").has_header("X-Request-Id")


class Kept(logging.Handler):
    def __init__(self):
        super().__init__()
        self.records = []
        self.addFilter(RequestId())

    def emit(self, record):
        self.records.append(record)


def test_the_requests_log_lines_carry_its_id(db):
    handler = Kept()
    logger = logging.getLogger("django.request")
    logger.addHandler(handler)
    try:
        Client(headers={"X-Request-Id": "find-me"}).get(f"{API}/no-such-thing")
    finally:
        logger.removeHandler(handler)
    assert [record.request_id for record in handler.records] == ["find-me"]
    record = logging.makeLogRecord({})  # after the request: not of it
    assert RequestId().filter(record) and record.request_id == "-"
