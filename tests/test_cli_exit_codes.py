"""Each exit code of `portal` means one thing (docs/api.md): 0 done, 1 the operation
failed, 2 the portal refused or the command was used wrongly, 3 --timeout passed (the
operation goes on), 4 the portal could not be reached or understood, 130 interrupted.

Restarts of demo-sandbox are held by its driver until the test touches ``release``, so
that "still running" is a fact of the test, not a race with the clock; every other
environment's driver fails."""

import json
import signal
import subprocess

import pytest

from environments.models import Operation, Outcome
from tests.api_clients import token_for
from tests.cli_live import PORTAL, idle, live_portal, portal_env, run_portal, stand_in
from tests.conftest import make_environment, subprocess_env
from tests.live import free_port, held_drivers, wait_for

HELD = "demo-sandbox"


@pytest.fixture(scope="module")
def live(django_db_setup, django_db_blocker, tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli-exit-codes")
    release, held = held_drivers(folder, HELD)
    failures = folder / "simulated-failures"
    failures.write_text("* *\n")
    with django_db_blocker.unblock():
        env = subprocess_env(**held, SIMULATED_DRIVER_DELAY=0, SIMULATED_DRIVER_FAIL_FILE=failures)
    try:
        with live_portal(folder, env) as url:
            yield {"url": url, "release": release}
    finally:
        release.touch()


@pytest.fixture
def portal(live, transactional_db, manager, tmp_path):
    """`portal ...` as the manager's Maintain token: (exit code, stdout, stderr)."""
    _, secret = token_for(manager, name="cli")
    live["release"].unlink(missing_ok=True)
    env = portal_env(
        PORTAL_URL=live["url"], PORTAL_TOKEN=secret, PORTAL_CONFIG=tmp_path / "config.json"
    )

    def run(*args, **extra_env):
        return run_portal(*args, env={**env, **extra_env})

    run.env = env
    yield run
    live["release"].touch()
    assert wait_for(idle, timeout=60)


@pytest.fixture
def failing(project):
    return make_environment(project, name="Failing sandbox", slug="failing-sandbox")


def test_done_exits_0(portal, live, environment):
    live["release"].touch()
    code, out, err = portal("restart", HELD, "aos", "--reason", "cli", "--wait")
    assert code == 0, out + err
    assert "Succeeded" in out


def test_a_failed_operation_exits_1_and_says_how_to_recover(portal, failing):
    code, out, err = portal("restart", failing.slug, "mr", "--reason", "cli", "--wait")
    assert code == 1, out + err
    assert "Failed" in out and "Simulated failure" in out
    for command in ("resume", "rollback", "abort"):
        assert f"portal {command} failing-sandbox --reason …" in out


def test_a_refusal_exits_2_and_names_the_option_not_the_apis_field(portal, environment):
    code, out, err = portal("restart", HELD, "aos", "--wait")  # a script gives no reason
    assert code == 2, out + err
    assert "Refused (400 Invalid request): Give a reason" in err and "(--reason)." in err
    assert "body" not in err and "reason: Give" not in err  # the API's detail names the field
    assert not Operation.objects.exists()


@pytest.mark.parametrize(
    "args, settings, says",
    [
        (["restart"], {}, "Missing argument 'ENV'"),
        (["restart", HELD, "nginx"], {}, "'nginx' is not one of"),
        (["envs"], {"PORTAL_URL": "portal.example.com"}, "give it with its scheme"),
        (["envs"], {"PORTAL_URL": "", "PORTAL_TOKEN": ""}, "portal login"),
        (["envs"], {"PORTAL_TOKEN": "lcsp_Ab12cD…"}, "not a whole API token"),
        (["login", "--url", "127.0.0.1:8000", "--token-stdin"], {}, "give it with its scheme"),
    ],
)
def test_a_command_used_wrongly_exits_2_and_sends_nothing(portal, args, settings, says):
    code, out, err = portal(*args, **settings)
    assert code == 2 and says in err, out + err
    assert "Traceback" not in err
    assert not Operation.objects.exists()


def test_a_timeout_exits_3_and_the_operation_goes_on(portal, live, environment):
    code, out, err = portal("restart", HELD, "aos", "--reason", "cli", "--wait", "--timeout", "0.5")
    assert code == 3, out + err
    operation = Operation.objects.get()
    assert operation.is_active
    assert f"Follow it with: portal operation {operation.activity_id} --wait" in out

    live["release"].touch()
    code, out, err = portal("operation", str(operation.activity_id), "--wait")
    assert code == 0 and "Succeeded" in out, out + err


def test_ctrl_c_while_waiting_exits_130_and_the_operation_goes_on(portal, live, environment):
    process = subprocess.Popen(
        [str(PORTAL), "restart", HELD, "aos", "--reason", "cli", "--wait"],
        env=portal.env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        started = process.stderr.readline()  # "Restart service: AOS on demo-sandbox: ..."
        first_status = process.stderr.readline()  # printed while it waits
        assert "activity" in started and first_status.startswith("  "), started + first_status
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    operation = Operation.objects.get()
    assert process.returncode == 130, out + err
    assert (
        "Stopped waiting: the operation goes on. Follow it with: "
        f"portal operation {operation.activity_id} --wait"
    ) in err
    assert "Traceback" not in err
    assert operation.is_active

    live["release"].touch()
    code, out, err = portal("operation", str(operation.activity_id), "--wait")
    assert code == 0, out + err
    operation.refresh_from_db()
    assert operation.outcome == Outcome.SUCCEEDED


# --- 4: not reached, or not understood ----------------------------------------------


def portal_at(url, *args):
    env = portal_env(PORTAL_URL=url, PORTAL_TOKEN="lcsp_" + "x" * 40, PORTAL_CONFIG="/nonexistent")
    return run_portal(*(args or ["envs"]), env=env)


def test_a_portal_that_does_not_answer_exits_4():
    url = f"http://127.0.0.1:{free_port()}"
    code, out, err = portal_at(url)
    assert code == 4, out + err
    assert f"Could not reach the portal at {url}/api/v1/environments:" in err


def test_tls_to_something_that_does_not_speak_it_exits_4():
    with stand_in(200, "{}", [("Content-Type", "application/json")]) as url:
        code, out, err = portal_at(url.replace("http://", "https://"))
    assert code == 4, out + err
    assert "Could not reach the portal at https://" in err and "Traceback" not in err


@pytest.mark.parametrize(
    "status, headers, body, says",
    [
        (
            302,
            [("Location", "https://sso.example.com/login?next=/api/v1/environments")],
            "",
            "it answered 302 Found, redirecting to https://sso.example.com/login?next=",
        ),
        (
            200,
            [("Content-Type", "text/html; charset=utf-8")],
            "<!doctype html><title>Sign in</title>",
            "it answered 200 OK with an HTML page",
        ),
        (
            502,
            [("Content-Type", "text/html")],
            "<html><body>Bad Gateway</body></html>",
            "it answered 502 Bad Gateway with an HTML page",
        ),
    ],
)
def test_a_redirect_or_an_html_answer_exits_4_naming_the_url(status, headers, body, says):
    with stand_in(status, body, headers) as url:
        code, out, err = portal_at(url)
    assert code == 4, out + err
    assert f"{url}/api/v1/environments does not look like a portal API: {says}" in err
    assert "Traceback" not in err and out == ""


def test_an_error_shows_the_request_id_the_portal_sent():
    problem = {
        "type": "urn:lcs-portal:problem:busy",
        "title": "Another operation is in progress",
        "status": 409,
        "detail": "Wait for it to finish.",
    }
    headers = [("Content-Type", "application/problem+json"), ("X-Request-Id", "req-7f3a")]
    with stand_in(409, json.dumps(problem), headers) as url:
        code, out, err = portal_at(url, "restart", "x", "aos", "--reason", "r")
    assert code == 2, out + err
    assert "Refused (409 Another operation is in progress): Wait for it to finish." in err
    assert "Request id: req-7f3a" in err


@pytest.mark.parametrize(
    "problem, says",
    [
        (
            {
                "errors": [{"field": "", "message": "Field required"}],
                "detail": "body: Field required",
            },
            "): Field required.",
        ),
        ({"detail": "body.payload: Input should be a valid string"}, "): Input should be"),
        (
            {"errors": [{"field": "payload.starts_at", "message": "Input should have a timezone"}]},
            "): Input should have a timezone (--start).",
        ),
    ],
)
def test_a_refusal_never_shows_the_apis_location_of_a_field(problem, says):
    problem = {"title": "Invalid request", "status": 400, **problem}
    headers = [("Content-Type", "application/problem+json")]
    with stand_in(400, json.dumps(problem), headers) as url:
        code, out, err = portal_at(url)
    assert code == 2 and says in err, out + err
    assert "body" not in err and "payload" not in err


def test_a_server_error_exits_1():
    problem = {"title": "Server error", "status": 500, "detail": "It failed; it is logged."}
    headers = [("Content-Type", "application/problem+json")]
    with stand_in(500, json.dumps(problem), headers) as url:
        code, out, err = portal_at(url)
    assert code == 1, out + err
    assert "The portal failed (500 Server error): It failed; it is logged." in err
