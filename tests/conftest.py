"""The cast: one user per role, and environments to act on.

alice owns the project, mona manages its environments, tom is a team member, maya is
a Maintenance mode user on the environment, olga is an outsider (owner of another
project), and root is a superuser.
"""

import itertools
import os
import time
from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.utils import timezone

from environments.models import (
    AccessLevel,
    DatabaseAccount,
    Deployment,
    Environment,
    EnvironmentRole,
    EnvironmentRoleKind,
    EnvironmentType,
    FirewallRule,
    Project,
    ProjectMembership,
    ProjectRole,
    Service,
    ServiceAccount,
    ServiceKind,
    Status,
    Subscription,
    TokenScope,
    UserSettings,
)
from tests.api_clients import api_client

PASSWORD = "correct horse battery staple"
_counter = itertools.count(1)


@pytest.fixture(autouse=True)
def _fresh_cache():
    """Each test starts with an empty cache: tests roll back, and ids and revisions come
    again."""
    cache.clear()


def make_user(username, **fields):
    return get_user_model().objects.create_user(username=username, password=PASSWORD, **fields)


def make_environment(project, **fields):
    n = next(_counter)
    values = dict(
        name=f"Sandbox {n}",
        slug=f"sandbox-{n}",
        tier=2,
        type=EnvironmentType.SANDBOX,
        subscription=Subscription.MICROSOFT,
        deployment=Deployment.SELF_SERVICE,
        url=f"https://sandbox-{n}.erp.contoso.net/",
        database_server="local",
        database_name=f"sandbox_{n}",
    )
    values.update(fields)
    environment = Environment.objects.create(project=project, **values)
    for kind in ServiceKind.values:
        Service.objects.create(environment=environment, kind=kind)
    return environment


@pytest.fixture
def project(db):
    return Project.objects.create(name="Contoso", slug="contoso")


@pytest.fixture
def other_project(db):
    return Project.objects.create(name="Fabrikam", slug="fabrikam")


@pytest.fixture
def environment(project):
    return make_environment(project, name="Demo sandbox", slug="demo-sandbox")


@pytest.fixture
def other_environment(other_project):
    return make_environment(other_project, name="Fabrikam sandbox", slug="fabrikam-sandbox")


def _member(username, project, role):
    user = make_user(username)
    ProjectMembership.objects.create(user=user, project=project, role=role)
    return user


@pytest.fixture
def owner(project):
    return _member("alice", project, ProjectRole.OWNER)


@pytest.fixture
def manager(project):
    return _member("mona", project, ProjectRole.MANAGER)


@pytest.fixture
def member(project):
    return _member("tom", project, ProjectRole.MEMBER)


@pytest.fixture
def maint(project, environment):
    user = _member("maya", project, ProjectRole.MEMBER)
    EnvironmentRole.objects.create(
        user=user, environment=environment, role=EnvironmentRoleKind.MAINTENANCE_MODE_USER
    )
    return user


@pytest.fixture
def outsider(other_project):
    return _member("olga", other_project, ProjectRole.OWNER)


@pytest.fixture
def service_account(project):
    """nightly-restarts, a service account and an Environment manager of the owner's
    (alice's) project."""
    user = get_user_model()(username="nightly-restarts")
    user.set_unusable_password()
    user.save()
    ServiceAccount.objects.create(user=user, description="The nightly restart pipeline")
    ProjectMembership.objects.create(user=user, project=project, role=ProjectRole.MANAGER)
    return user


@pytest.fixture
def superuser(db):
    return get_user_model().objects.create_superuser(username="root", password=PASSWORD)


@pytest.fixture
def users(owner, manager, member, outsider, superuser):
    return {
        "owner": owner,
        "manager": manager,
        "member": member,
        "outsider": outsider,
        "superuser": superuser,
    }


@pytest.fixture
def as_manager(client, manager):
    """The pages, signed in as the environment manager (mona)."""
    client.force_login(manager)
    return client


@pytest.fixture
def api_as_manager(manager):
    """The API with a Maintain token of the manager's named "nightly" (history says
    "API (nightly)")."""
    return api_client(manager, name="nightly")


@pytest.fixture(scope="session")
def oidc_server(tmp_path_factory):
    """One real OpenID provider (tests/oidc_provider.py) for every single sign-on test
    that the test client drives; each test sets its accounts (the ``provider`` fixtures)."""
    from tests.oidc_provider import BASE, start_provider, stop_provider

    provider, process = start_provider(tmp_path_factory.mktemp("oidc"), [BASE], {})
    yield provider
    stop_provider(process)


@pytest.fixture
def t0():
    """A window's start: two days from now, on the hour. Nothing it enqueues falls due
    in run_worker."""
    return (timezone.now() + timedelta(days=2)).replace(minute=0, second=0, microsecond=0)


@pytest.fixture
def world(environment, owner, manager, member, maint, outsider, superuser, service_account):
    """The whole cast, and the environment with some history, an active firewall rule and
    database account (both granted to the owner, the operation is the rule's) and a
    maintenance window the owner scheduled a day ahead, and a token of the owner's
    service account. "values" fills the placeholders of the authorization matrices'
    paths; the calendar is the outsider's own address."""
    from environments import operations, tokens, windows

    rule_operation = operations.enable_access(
        environment, owner, name="office", cidr="203.0.113.7/32", reason="support"
    )
    operations.complete_operation(rule_operation.pk)
    account_operation = operations.request_access(
        environment, owner, level=AccessLevel.READ, reason="support"
    )
    operations.complete_operation(account_operation.pk)
    assert Environment.objects.get(pk=environment.pk).status == Status.DEPLOYED
    starts_at = timezone.now() + timedelta(days=1)
    window = windows.schedule(
        environment, owner, starts_at=starts_at, ends_at=starts_at + timedelta(hours=1), reason="x"
    )
    users = {
        "anonymous": None,
        "outsider": outsider,
        "member": member,
        "maint": maint,
        "manager": manager,
        "owner": owner,
        "superuser": superuser,
    }
    return {
        "environment": environment,
        "users": users,
        "values": {
            "slug": environment.slug,
            "rule": FirewallRule.objects.get().pk,
            "account": DatabaseAccount.objects.get().pk,
            "activity": rule_operation.activity_id,
            "admin": django_settings.ADMIN_PATH,
            "window": window.pk,
            "token": tokens.issue(service_account, name="ci", scope=TokenScope.MAINTAIN)[0].pk,
            "calendar": UserSettings.objects.get_or_create(user=outsider)[0].calendar_token,
        },
    }


@pytest.fixture
def start(django_capture_on_commit_callbacks):
    """Start a Maintain action as a view does, running its on-commit enqueue."""
    from environments import operations

    def _start(kind, environment, user, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return operations.START_FUNCTIONS[kind](environment, user, **kwargs)

    return _start


def committing():
    """Run the on-commit callbacks (task enqueues) of what happens inside, as a real
    commit would; the test's own transaction never commits."""
    from django.test import TestCase

    return TestCase.captureOnCommitCallbacks(execute=True)


def run_worker(horizon=10.0):
    """Run every task that is due, as db_worker does (claim, then run_task), and go on
    with the operations' steps due within ``horizon`` seconds (a next health check),
    waiting for them as the worker would; return when no step is due that soon (other
    tasks due later, an expiry or a window's start, wait for the test).

    db_worker's own loop closes the database connection between tasks, which a test
    inside a transaction cannot survive; tests that need the real process start one.
    """
    from django.utils import timezone
    from django_tasks_db.management.commands.db_worker import Worker
    from django_tasks_db.models import DBTaskResult

    worker = Worker(
        queue_names=["*"],
        interval=0,
        batch=True,
        backend_name="default",
        startup_delay=False,
        max_tasks=None,
        worker_id="pytest",
        excluded_queue_names=[],
    )
    while True:
        task_result = DBTaskResult.objects.ready().first()
        if task_result is None:
            soon = (
                DBTaskResult.objects.filter(
                    task_path="environments.operations.core.run_step",
                    status="READY",
                    run_after__lte=timezone.now() + timedelta(seconds=horizon),
                )
                .order_by("run_after")
                .first()
            )
            if soon is None:
                return
            time.sleep(max(0.0, (soon.run_after - timezone.now()).total_seconds()) + 0.01)
            continue
        task_result.claim(worker.worker_id)
        with committing():
            worker.run_task(task_result)
        task_result.refresh_from_db()
        assert task_result.status == "SUCCESSFUL", task_result.traceback


@pytest.fixture
def fail_driver(settings, tmp_path):
    """Tell the simulated driver to fail an action: fail_driver("demo-sandbox restart_service")."""
    settings.SIMULATED_DRIVER_FAIL_FILE = tmp_path / "failures"

    def _fail(*lines):
        settings.SIMULATED_DRIVER_FAIL_FILE.write_text("\n".join(lines) + "\n")

    return _fail


def subprocess_env(**overrides):
    """Environment variables for a process (db_worker, gunicorn) that must use this
    test run's database and settings."""
    from django.db import connection

    db = connection.settings_dict
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="lcs_portal.settings_test")
    if db["ENGINE"].endswith("sqlite3"):
        env["DATABASE_URL"] = f"sqlite:///{db['NAME']}"
    else:
        host = db["HOST"] or "127.0.0.1"
        env["DATABASE_URL"] = f"postgres://{db['USER']}@{host}:{db['PORT'] or 5432}/{db['NAME']}"
    env.update({key: str(value) for key, value in overrides.items()})
    return env
