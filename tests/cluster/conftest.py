"""The multi-host topology of scripts/cluster.py, started once for the tests of this
folder: two portal hosts (run_portal each) behind nginx, on a PostgreSQL cluster of
their own (ThrowawayPostgres, so that the database cut can stop it without disturbing
anyone) and a Redis database of their own, emptied at the end.

The hosts run the production settings (lcs_portal.settings, DEBUG off, sessions in
Redis with cached_db); only plain HTTP and short deadlines differ. The tests read the
database with plain SQL: it is not the test run's database, which pytest-django owns.

They run in the PostgreSQL run of `make test` (and alone with `make test-cluster`); the
SQLite run leaves them out, since the topology is the same whatever that run's
database is.
"""

import re
from pathlib import Path
from urllib.parse import urlencode

import psycopg
import pytest
from django.conf import settings

from scripts.cluster import Cluster, claim_redis_database, release_redis_database
from tests.live import Session, ThrowawayPostgres, free_ports, request

HERE = Path(__file__).parent
REDIS = "redis://127.0.0.1:6379"

#: The hosts' OPERATION_DEADLINE_SECONDS: short, so that a dead worker's operation
#: settles within the test.
DEADLINE = 15

OWNER = "olivia"
MEMBER = "mark"
PASSWORD = "correct horse battery staple"
RACE = "race-sandbox"
CRASH = "crash-sandbox"
GATE = "gate-sandbox"
CUT = [f"cut-sandbox-{n}" for n in range(1, 5)]
#: Restarted only once the database is back from the cut: the cut may leave every CUT
#: environment Failed (its operation cut in the middle, or queued past its deadline).
AFTER_CUT = "after-cut-sandbox"
DRAIN_PROJECT = "drain"
DRAIN_ENVIRONMENTS = 1000

SEED = f"""
from django.contrib.auth import get_user_model
from environments.models import *
User = get_user_model()
owner = User.objects.create_user({OWNER!r}, password={PASSWORD!r})
member = User.objects.create_user({MEMBER!r}, password={PASSWORD!r})
eligible = dict(tier=2, type="sandbox", subscription="microsoft", deployment="self_service")
projects = {{}}
for slug in ("cluster", {DRAIN_PROJECT!r}):
    projects[slug] = Project.objects.create(name=slug.title(), slug=slug)
    ProjectMembership.objects.create(user=owner, project=projects[slug], role="owner")
ProjectMembership.objects.create(user=member, project=projects["cluster"], role="member")
slugs = [{RACE!r}, {CRASH!r}, {GATE!r}, *{CUT!r}, {AFTER_CUT!r}]
environments = [
    Environment(project=projects["cluster"], name=slug, slug=slug, **eligible) for slug in slugs
] + [
    Environment(
        project=projects[{DRAIN_PROJECT!r}], name=f"drain {{n:04}}", slug=f"drain-{{n:04}}",
        **eligible,
    )
    for n in range({DRAIN_ENVIRONMENTS})
]
environments = Environment.objects.bulk_create(environments)
Service.objects.bulk_create(
    Service(environment=environment, kind=kind)
    for environment in environments
    for kind in ServiceKind.values
)
EnvironmentRole.objects.create(
    user=member, environment=Environment.objects.get(slug={GATE!r}), role="user"
)
"""


def pytest_collection_modifyitems(config, items):
    if settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        return
    mine = [item for item in items if HERE in Path(item.path).parents]
    if mine:
        config.hook.pytest_deselected(items=mine)
        items[:] = [item for item in items if item not in mine]


@pytest.fixture(scope="package")
def cluster(tmp_path_factory):
    """The running topology; ``cluster.postgres`` is its database server."""
    postgres = ThrowawayPostgres()
    redis_number = token = topology = None
    try:
        postgres.init()
        redis_number, token = claim_redis_database(REDIS)
        nginx_port, environment_port, upstream_port, *host_ports = free_ports(5)
        topology = Cluster(
            state_dir=tmp_path_factory.mktemp("cluster"),
            database_url=postgres.url,
            redis_url=f"{REDIS}/{redis_number}",
            host_ports=host_ports,
            nginx_port=nginx_port,
            environment_port=environment_port,
            upstream_port=upstream_port,
            forward_auth_slug=GATE,
            environ={"OPERATION_DEADLINE_SECONDS": DEADLINE, "SIMULATED_DRIVER_DELAY": 0},
        )
        topology.postgres = postgres
        topology.prepare(seed=False)
        topology.manage("shell", "-c", SEED)
        topology.start()
        yield topology
    finally:
        if topology is not None:
            topology.stop()
        if redis_number is not None:
            release_redis_database(REDIS, redis_number, token)
        postgres.destroy()


@pytest.fixture
def running(cluster):
    """The topology with every host up (a test before may have killed one)."""
    cluster.ensure_running()
    return cluster


def query(cluster, sql, *params):
    """Rows of one statement on the cluster's database."""
    with psycopg.connect(cluster.database_url, autocommit=True) as connection:
        return connection.execute(sql, params).fetchall()


def scalar(cluster, sql, *params):
    return query(cluster, sql, *params)[0][0]


def active_operations(cluster, slug):
    return scalar(
        cluster,
        "SELECT count(*) FROM environments_operation o JOIN environments_environment e "
        "ON e.id = o.environment_id WHERE e.slug = %s AND o.outcome IN ('queued', 'running')",
        slug,
    )


def status(cluster, slug):
    return scalar(cluster, "SELECT status FROM environments_environment WHERE slug = %s", slug)


def sign_in(port, username, password=PASSWORD):
    """Sign in through the portal's sign-in form on ``port``: a Session with the portal's
    cookies and the CSRF token its pages hand out."""
    page = request(port, "/accounts/login/")
    assert page.status == 200, page.body[:500]
    csrf_cookie = page.cookies()[settings.CSRF_COOKIE_NAME].value
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.body).group(1)
    answer = request(
        port,
        "/accounts/login/",
        method="POST",
        body=urlencode({"username": username, "password": password, "csrfmiddlewaretoken": token}),
        headers={
            "Cookie": f"{settings.CSRF_COOKIE_NAME}={csrf_cookie}",
            "Content-Type": "application/x-www-form-urlencoded",
        },
    )
    assert answer.status == 302, answer.body[:1000]
    session = Session({name: morsel.value for name, morsel in answer.cookies().items()})
    session.cookies.setdefault(settings.CSRF_COOKIE_NAME, csrf_cookie)
    assert settings.SESSION_COOKIE_NAME in session.cookies
    page = request(port, "/environments/", headers={"Cookie": session.cookie_header})
    assert page.status == 200, page.body[:500]
    session.csrf_token = re.search(r'"X-CSRFToken": "([^"]+)"', page.body).group(1)
    return session
