"""What the hosts share is shared: a session signed in on one host works on the other,
and maintenance mode turned on through one host keeps a member out at the other's
forward-auth endpoint from the next request on (the decision is read from the database
on every request, nothing per host stands between)."""

import redis
from django.conf import settings

from tests.cluster.conftest import GATE, MEMBER, OWNER, REDIS, sign_in, status
from tests.live import post_form, request, wait_for


def test_a_session_signed_in_through_host_1_works_on_host_2(running):
    host1, host2 = running.hosts
    session = sign_in(host1.port, MEMBER)
    cookie = {"Cookie": session.cookie_header}

    answer = request(host2.port, "/environments/", headers=cookie)
    assert answer.status == 200, answer.body[:500]
    assert MEMBER in answer.body
    # cached_db: host 2 found the session in the shared Redis, under Django's key.
    session_key = session.cookies[settings.SESSION_COOKIE_NAME]
    database = int(running.redis_url.rsplit("/", 1)[1])
    keys = redis.Redis.from_url(REDIS, db=database).keys(f"*{session_key}*")
    assert keys, "the session is not in the shared cache"

    # Signing out on host 2 ends the session on host 1 too.
    answer = post_form(session, host2.port, "/accounts/logout/", {}, htmx=False)
    assert answer.status in (200, 302), answer.body[:500]
    answer = request(host1.port, "/environments/", headers=cookie)
    assert answer.status == 302
    assert answer.header("Location").startswith("/accounts/login/")


def test_maintenance_mode_turned_on_through_host_1_refuses_a_member_on_host_2_at_once(running):
    host1, host2 = running.hosts
    # Turning maintenance mode on or off is done once the environment says so: until
    # the test releases it, the environment stays Servicing.
    release = running.state_dir / "gate-release"
    release.touch()
    running.write_drivers(
        {
            GATE: {
                "driver": "command",
                "maintenance_on": ["true"],
                "maintenance_off": ["true"],
                "maintenance_health": ["test", "-e", str(release)],
                "health_interval": 0.05,
            }
        }
    )
    member = {"Cookie": sign_in(host1.port, MEMBER).cookie_header}
    owner = sign_in(host1.port, OWNER)
    auth = f"/environments/{GATE}/auth/"

    # Deployed: the member gets in everywhere, however often each host is asked.
    for _ in range(3):
        for host in running.hosts:
            assert request(host.port, auth, headers=member).status == 204
    answer = request(running.environment_port, "/", headers=member)
    assert answer.status == 200 and f"user={MEMBER}\n" in answer.body, answer.body

    answer = post_form(
        owner, host1.port, f"/environments/{GATE}/maintain/enable_maintenance/", {"reason": "x"}
    )
    assert answer.status == 200, answer.body[:500]
    # The very next request, on the other host and through nginx's forward auth.
    assert request(host2.port, auth, headers=member).status == 403
    assert request(running.environment_port, "/", headers=member).status == 403
    assert wait_for(lambda: status(running, GATE) == "in_maintenance", timeout=30)
    for host in running.hosts:
        assert request(host.port, auth, headers=member).status == 403

    # And back: turned off through host 2, the member gets in on host 1 once it is done.
    owner2 = sign_in(host2.port, OWNER)
    answer = post_form(
        owner2, host2.port, f"/environments/{GATE}/maintain/disable_maintenance/", {"reason": "x"}
    )
    assert answer.status == 200, answer.body[:500]
    assert request(host1.port, auth, headers=member).status == 403, "let in while Servicing"
    assert wait_for(lambda: status(running, GATE) == "deployed", timeout=30)
    assert request(host1.port, auth, headers=member).status == 204
    assert request(running.environment_port, "/", headers=member).status == 200
