"""The command line sends one Idempotency-Key per invocation with its change, the same on
its own retries (an answer lost on the way, a duplicate still in flight), and
--idempotency-key lets a script choose it. Against a stand-in transport: no portal."""

import functools
import json

import httpx
from click.testing import CliRunner

from portal_cli import client, main
from portal_cli.client import Api

OPERATION = {
    "activity_id": "9364b868-814b-4a11-afe6-dffb8b6da0fe",
    "activity": "Restart service: AOS",
    "active": True,
    "outcome": "queued",
    "outcome_label": "Queued",
    "environment_status_label": "Restarting service",
}


def portal(*answers):
    """A transport answering with ``answers`` in turn (an exception is raised instead);
    the requests it saw."""
    seen = []
    answers = list(answers)

    def handle(request):
        seen.append(request)
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    return httpx.MockTransport(handle), seen


def accepted():
    return httpx.Response(202, json=OPERATION)


def test_a_write_whose_answer_was_lost_is_sent_again_with_the_same_key(monkeypatch):
    monkeypatch.setattr(client.time, "sleep", lambda seconds: None)
    transport, seen = portal(httpx.ReadError("connection reset"), accepted())
    api = Api("http://portal", "t", transport=transport)
    assert api.post("environments/e/operations", {"action": "resume"}) == OPERATION
    keys = [request.headers["Idempotency-Key"] for request in seen]
    assert len(keys) == 2 and keys[0] == keys[1]
    assert json.loads(seen[0].content) == json.loads(seen[1].content)


def test_a_duplicate_in_flight_is_waited_for_with_the_same_key(monkeypatch):
    waits = []
    monkeypatch.setattr(client.time, "sleep", waits.append)
    in_flight = httpx.Response(
        409,
        json={"type": client.IN_FLIGHT, "title": "In flight", "status": 409},
        headers={"Content-Type": "application/problem+json", "Retry-After": "1"},
    )
    transport, seen = portal(in_flight, accepted())
    Api("http://portal", "t", transport=transport).delete("firewall-rules/1")
    assert waits == [1.0]
    assert seen[0].headers["Idempotency-Key"] == seen[1].headers["Idempotency-Key"]


def test_reads_carry_no_key_and_each_invocation_has_its_own():
    transport, seen = portal(httpx.Response(200, json=[]), accepted(), accepted())
    Api("http://portal", "t", transport=transport).get("environments")
    Api("http://portal", "t", transport=transport).post("x", {})
    Api("http://portal", "t", transport=transport).post("x", {})
    assert "Idempotency-Key" not in seen[0].headers
    assert seen[1].headers["Idempotency-Key"] != seen[2].headers["Idempotency-Key"]


def test_a_lost_answer_is_given_up_on_after_two_retries(monkeypatch):
    monkeypatch.setattr(client.time, "sleep", lambda seconds: None)
    transport, seen = portal(*[httpx.ReadError("reset")] * 3)
    api = Api("http://portal", "t", transport=transport)
    try:
        api.post("x", {})
    except httpx.ReadError:
        pass
    else:
        raise AssertionError("a third lost answer should be reported")
    assert len(seen) == 3


def test_idempotency_key_option_chooses_the_key(monkeypatch):
    transport, seen = portal(accepted())
    monkeypatch.setattr(main, "Api", functools.partial(Api, transport=transport))
    monkeypatch.setenv("PORTAL_URL", "http://portal")
    monkeypatch.setenv("PORTAL_TOKEN", "lcsp_" + "a" * 40)
    CliRunner().invoke(
        main.cli,
        ["restart", "env", "aos", "--reason", "nightly", "--idempotency-key", "nightly-1207"],
    )  # what it prints of the stand-in's short answer is not the point here
    assert len(seen) == 1 and seen[0].headers["Idempotency-Key"] == "nightly-1207"
