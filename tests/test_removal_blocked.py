"""A revoke that still cannot complete is shown as such: "Removal blocked: <why>" on the
environment's Database Accounts section and in Django admin, while the sweeper retries."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from environments.drivers import DriverError
from environments.drivers.database import LoginNotDropped, SimulatedDatabaseDriver
from environments.models import OperationKind, Outcome
from environments.operations import expire_access, revoke_access
from environments.operations.core import REMOVAL_BLOCKED_AFTER
from tests.conftest import committing, run_worker
from tests.pg_roles import grant

pytestmark = pytest.mark.django_db


def drop_fails(monkeypatch, error):
    def drop_database_account(self, account):
        raise error(account) if callable(error) else error

    monkeypatch.setattr(SimulatedDatabaseDriver, "drop_database_account", drop_database_account)


def details(client, user, environment):
    client.force_login(user)
    return client.get(reverse("environment-detail", args=[environment.slug])).content.decode()


def test_a_revoke_that_cannot_drop_the_login_says_removal_blocked(
    client, admin_client, environment, manager, monkeypatch
):
    account = grant(environment, manager, "read")
    drop_fails(monkeypatch, lambda account: LoginNotDropped(account.username, ["app"], "admin"))
    with committing():
        revoke_access(account, manager)
    run_worker()

    account.refresh_from_db()
    assert account.removed_at is None
    assert account.removal_blocked.startswith(f"Could not drop login {account.username}:")
    page = details(client, manager, environment)
    assert f"Removal blocked: Could not drop login {account.username}: it owns" in page
    assert 'data-testid="removal-blocked"' in page
    assert f'id="revoke-{account.pk}"' not in page  # ended: nothing left to revoke
    blocked = (
        reverse("admin:environments_databaseaccount_changelist") + "?removal_blocked__isempty=0"
    )
    listed = admin_client.get(blocked).content.decode()
    assert account.username in listed and "Removal blocked: Could not drop login" in listed


def test_a_removal_that_keeps_failing_is_shown_blocked_until_one_succeeds(
    client, environment, manager, monkeypatch
):
    account = grant(environment, manager, "read")
    drop_fails(monkeypatch, DriverError("The database server did not answer."))
    with committing():
        revoke_access(account, manager)
    run_worker()
    for failures in range(1, REMOVAL_BLOCKED_AFTER):
        account.refresh_from_db()
        assert account.removal_blocked == "", f"blocked after {failures} failure(s)"
        with committing():
            assert expire_access(now=timezone.now() + timedelta(hours=2)) == [account]
        run_worker()

    account.refresh_from_db()
    removals = account.operations.filter(kind=OperationKind.REVOKE_ACCESS)
    assert removals.filter(outcome=Outcome.FAILED).count() == REMOVAL_BLOCKED_AFTER
    assert account.removal_blocked == "The database server did not answer."
    assert "Removal blocked: The database server did not answer." in details(
        client, manager, environment
    )

    monkeypatch.undo()  # the server answers again
    with committing():
        expire_access(now=timezone.now() + timedelta(hours=2))
    run_worker()
    account.refresh_from_db()
    assert account.removed_at is not None and account.removal_blocked == ""
    page = details(client, manager, environment)
    assert "Removal blocked" not in page
    assert 'data-testid="database-account"' not in page  # gone: no longer listed
